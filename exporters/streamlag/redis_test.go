package streamlag

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// base is the time of the first entry the tests add; entry i is added at
// base + i seconds (explicit ids <ms>-0), so lag seconds are exact against
// the fake clock.
var base = time.UnixMilli(1_800_000_000_000)

func entryID(i int) string {
	return fmt.Sprintf("%d-0", base.Add(time.Duration(i)*time.Second).UnixMilli())
}

// addEntries adds entries from..to-1 to stream.
func addEntries(t *testing.T, rdb *redis.Client, stream string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, ID: entryID(i), Values: []any{"n", i}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// readGroup delivers n entries of stream to group.
func readGroup(t *testing.T, rdb *redis.Client, stream, group string, n int64) []redis.XMessage {
	t.Helper()
	res, err := rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{stream, ">"}, Count: n, Block: -1}).Result()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	if len(res) == 0 {
		return nil
	}
	return res[0].Messages
}

func createGroup(t *testing.T, rdb *redis.Client, stream, group, start string) {
	t.Helper()
	if err := rdb.XGroupCreateMkStream(context.Background(), stream, group, start).Err(); err != nil {
		t.Fatal(err)
	}
}

// xinfoLag is XINFO GROUPS lag of a group (-1 for nil).
func xinfoLag(t *testing.T, rdb *redis.Client, stream, group string) int64 {
	t.Helper()
	gs, err := rdb.XInfoGroups(context.Background(), stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.Name == group {
			return g.Lag
		}
	}
	t.Fatalf("no group %s on %s", group, stream)
	return 0
}

func newRedisScraper(t *testing.T, addr string, clock *fakeClock, cfg RedisConfig) *Scraper {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	cfg.Client = rdb
	if cfg.Region == "" {
		cfg.Region = "sh-a"
	}
	r, err := NewRedisReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Readers: []Reader{r}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRedisStreamLag runs the Redis reader against a real redis-server.
func TestRedisStreamLag(t *testing.T) {
	srv := realserver.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	clock := &fakeClock{now: base.Add(30 * time.Second)}

	t.Run("N produced and M consumed is N−M behind, as old as entry M.", func(t *testing.T) {
		createGroup(t, rdb, "basic", "g", "0")
		reg := registry(t, newRedisScraper(t, srv.Addr, clock, RedisConfig{Streams: []string{"basic"}}))
		out := scrape(t, reg)
		wantUp(t, out, 1)
		wantLag(t, out, "sh-a", "basic", "g", 0, 0)

		addEntries(t, rdb, "basic", 0, 10)
		readGroup(t, rdb, "basic", "g", 4)
		out = scrape(t, reg)
		wantLag(t, out, "sh-a", "basic", "g", 6, 30-4)
		promtoolCheck(t, out)

		clock.Set(base.Add(40 * time.Second))
		wantLag(t, scrape(t, reg), "sh-a", "basic", "g", 6, 40-4)

		readGroup(t, rdb, "basic", "g", 100)
		wantLag(t, scrape(t, reg), "sh-a", "basic", "g", 0, 0)
		clock.Set(base.Add(30 * time.Second))
	})

	t.Run("A nil XINFO lag is counted from the last-delivered-id.", func(t *testing.T) {
		createGroup(t, rdb, "nillag", "g", "0")
		addEntries(t, rdb, "nillag", 0, 6)
		readGroup(t, rdb, "nillag", "g", 2)
		// XDEL past the group's position makes Redis give up on the lag.
		if err := rdb.XDel(context.Background(), "nillag", entryID(4)).Err(); err != nil {
			t.Fatal(err)
		}
		if x := xinfoLag(t, rdb, "nillag", "g"); x != -1 {
			t.Fatalf("XINFO lag %d, want nil after the XDEL", x)
		}
		// A group created at an explicit id without ENTRIESREAD: nil too.
		createGroup(t, rdb, "nillag", "late", entryID(1))
		if x := xinfoLag(t, rdb, "nillag", "late"); x != -1 {
			t.Fatalf("XINFO lag of a group created at an id %d, want nil", x)
		}
		out := scrape(t, registry(t, newRedisScraper(t, srv.Addr, clock, RedisConfig{Streams: []string{"nillag"}})))
		wantLag(t, out, "sh-a", "nillag", "g", 3, 30-2)    // entries 2, 3 and 5
		wantLag(t, out, "sh-a", "nillag", "late", 3, 30-2) // the same
	})

	t.Run("Trimming past a group leaves every retained entry behind.", func(t *testing.T) {
		createGroup(t, rdb, "trim", "g", "0")
		addEntries(t, rdb, "trim", 0, 5)
		readGroup(t, rdb, "trim", "g", 2)
		addEntries(t, rdb, "trim", 5, 15)
		if err := rdb.XTrimMaxLen(context.Background(), "trim", 3).Err(); err != nil {
			t.Fatal(err)
		}
		reg := registry(t, newRedisScraper(t, srv.Addr, clock, RedisConfig{Streams: []string{"trim"}}))
		wantLag(t, scrape(t, reg), "sh-a", "trim", "g", 3, 30-12)
		// Redis 7.0 keeps counting the trimmed entries the group never read.
		readGroup(t, rdb, "trim", "g", 1)
		x := xinfoLag(t, rdb, "trim", "g")
		wantLag(t, scrape(t, reg), "sh-a", "trim", "g", 2, 30-13)
		t.Logf("XINFO GROUPS lag with 2 entries undelivered: %d", x)
	})

	t.Run("A trim that overtook a group long ago is exact with AlwaysCount.", func(t *testing.T) {
		// The group read 1 of 5, a trim to 3 removed 1 entry it never read,
		// then it read 13 of 20 more: 10 behind, and Redis 7.0 says 11.
		createGroup(t, rdb, "overtaken", "g", "0")
		addEntries(t, rdb, "overtaken", 0, 5)
		readGroup(t, rdb, "overtaken", "g", 1)
		if err := rdb.XTrimMaxLen(context.Background(), "overtaken", 3).Err(); err != nil {
			t.Fatal(err)
		}
		addEntries(t, rdb, "overtaken", 5, 25)
		readGroup(t, rdb, "overtaken", "g", 13)
		x := xinfoLag(t, rdb, "overtaken", "g")
		out := scrape(t, registry(t, newRedisScraper(t, srv.Addr, clock, RedisConfig{Streams: []string{"overtaken"}})))
		ms, _ := lagSeries("sh-a", "overtaken", "g")
		got, _ := value(out, ms)
		if got != float64(x) || (x != 10 && x != 11) {
			t.Fatalf("default reader says %v, XINFO %d", got, x)
		}
		t.Logf("residual error of trusting XINFO lag after an old overtake: %v reported, 10 true", got)
		out = scrape(t, registry(t, newRedisScraper(t, srv.Addr, clock, RedisConfig{Streams: []string{"overtaken"}, AlwaysCount: true})))
		wantLag(t, out, "sh-a", "overtaken", "g", 10, 30-15)
	})

	t.Run("Counting stops at the count limit.", func(t *testing.T) {
		createGroup(t, rdb, "limit", "g", "0")
		addEntries(t, rdb, "limit", 0, 8)
		createGroup(t, rdb, "limit", "late", entryID(0))
		out := scrape(t, registry(t, newRedisScraper(t, srv.Addr, clock, RedisConfig{Streams: []string{"limit"}, CountLimit: 5})))
		wantLag(t, out, "sh-a", "limit", "g", 8, 30)
		wantLag(t, out, "sh-a", "limit", "late", 7, 30-1)
		out = scrape(t, registry(t, newRedisScraper(t, srv.Addr, clock, RedisConfig{Streams: []string{"limit"}, CountLimit: 5, AlwaysCount: true})))
		wantLag(t, out, "sh-a", "limit", "g", 8, 30)      // before the first entry: the length, exact
		wantLag(t, out, "sh-a", "limit", "late", 5, 30-1) // a lower bound
	})

	t.Run("Patterns match streams only, and a missing named stream is an error.", func(t *testing.T) {
		createGroup(t, rdb, "pos:a", "g", "$")
		createGroup(t, rdb, "pos:b", "g", "$")
		if err := rdb.Set(context.Background(), "pos:not-a-stream", "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		reg := registry(t, newRedisScraper(t, srv.Addr, clock, RedisConfig{Streams: []string{"pos:*"}}))
		out := scrape(t, reg)
		wantUp(t, out, 1)
		wantLag(t, out, "sh-a", "pos:a", "g", 0, 0)
		wantLag(t, out, "sh-a", "pos:b", "g", 0, 0)
		if strings.Contains(out, "not-a-stream") {
			t.Fatalf("a string key was read as a stream:\n%s", out)
		}
		reg = registry(t, newRedisScraper(t, srv.Addr, clock, RedisConfig{Streams: []string{"missing", "pos:not-a-stream", "pos:a"}}))
		out = scrape(t, reg)
		wantUp(t, out, 0)
		wantLag(t, out, "sh-a", "pos:a", "g", 0, 0)
	})

	t.Run("A server that goes down is up 0 and recovers by itself.", func(t *testing.T) {
		createGroup(t, rdb, "flaky", "g", "0")
		addEntries(t, rdb, "flaky", 0, 3)
		p := startProxy(t, srv.Addr)
		reg := registry(t, newRedisScraper(t, p.addr, clock, RedisConfig{Streams: []string{"flaky"}}))
		out := scrape(t, reg)
		wantUp(t, out, 1)
		wantLag(t, out, "sh-a", "flaky", "g", 3, 30)

		p.down()
		out = scrape(t, reg)
		wantUp(t, out, 0)
		if _, ok := value(out, `carpool_exporter_scrape_errors_total{exporter="streamlag"}`); !ok {
			t.Fatalf("no error counter:\n%s", out)
		}
		if ms, _ := lagSeries("sh-a", "flaky", "g"); strings.Contains(out, ms) {
			t.Fatalf("a lag was exported while the server was down:\n%s", out)
		}
		p.up()
		realserver.WaitFor(t, 5*time.Second, "the exporter to recover", func() (bool, error) {
			v, _ := value(scrape(t, reg), `carpool_exporter_up{exporter="streamlag"}`)
			return v == 1, nil
		})
		wantLag(t, scrape(t, reg), "sh-a", "flaky", "g", 3, 30)
	})
}
