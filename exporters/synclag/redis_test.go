package synclag

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

func TestRedisReplicaLagGrowsWhileDetachedAndFallsBackAfter(t *testing.T) {
	primary, replica := realserver.StartRedis(t), realserver.StartRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: replica.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	host, port, _ := strings.Cut(primary.Addr, ":")
	// A full resync waits 5 s by default for more replicas to share it.
	pc := redis.NewClient(&redis.Options{Addr: primary.Addr})
	t.Cleanup(func() { _ = pc.Close() })
	if err := pc.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	src, err := OpenRedis(RedisConfig{Addr: primary.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	dst, err := OpenRedis(RedisConfig{Addr: "redis://" + replica.Addr + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dst.Close() })
	w, err := NewWriter(WriterConfig{Region: "a", Backend: src, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: dst, Sources: []string{"a"}}}, Written: []HeartbeatReader{w}})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r, w)
	realserver.WaitFor(t, 15*time.Second, "the heartbeat replicated with lag under 0.5 s", func() (bool, error) {
		sc := s.scrape(t)
		_, applied := sc.get("carpool_sync_heartbeat_applied_timestamp_seconds", "source_region", "a", "target_region", "b")
		lag, _ := sc.lag("a", "b")
		return applied && lag < 0.5 && sc.up() == 1, fmt.Errorf("applied %v, lag %v, up %v", applied, lag, sc.up())
	})
	promtoolCheck(t, s.text(t))

	// Detach the replica: it keeps its data and stops following.
	if err := admin.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	detached := time.Now()
	realserver.WaitFor(t, 10*time.Second, "the lag past 1.5 s", func() (bool, error) {
		lag, _ := s.scrape(t).lag("a", "b")
		if real := time.Since(detached).Seconds(); lag > real+2 {
			return false, fmt.Errorf("lag %v beyond reality %v + 2 s", lag, real)
		}
		return lag > 1.5, fmt.Errorf("lag %v", lag)
	})
	if err := admin.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	realserver.WaitFor(t, 15*time.Second, "the lag back under 0.5 s", func() (bool, error) {
		lag, _ := s.scrape(t).lag("a", "b")
		return lag < 0.5, fmt.Errorf("lag %v", lag)
	})
}

func TestAnUnreachableRedisShowsAsDownAndRecoversByItself(t *testing.T) {
	srv := realserver.StartRedis(t)
	p := startProxy(t, srv.Addr)
	b, err := OpenRedis(RedisConfig{Addr: p.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	clk := newClock()
	if err := b.Write(ctx, "a", t0); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: b}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r)
	if sc := s.scrape(t); sc.up() != 1 {
		t.Fatalf("up = %v", sc.up())
	}
	p.cut()
	if sc := s.scrape(t); sc.up() != 0 {
		t.Fatalf("up = %v with Redis unreachable", sc.up())
	}
	p.restore()
	realserver.WaitFor(t, 10*time.Second, "the exporter back up", func() (bool, error) {
		sc := s.scrape(t)
		_, ok := sc.lag("a", "b")
		return sc.up() == 1 && ok, nil
	})
}

func TestARedisFieldThatIsNotMicrosecondsIsAnError(t *testing.T) {
	srv := realserver.StartRedis(t)
	b, err := OpenRedis(RedisConfig{Addr: srv.Addr, Key: "hb"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.c.HSet(ctx, "hb", "a", "yesterday").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(ctx); err == nil || !strings.Contains(err.Error(), "not Unix microseconds") {
		t.Fatalf("got %v", err)
	}
}

func TestOpenRedisChecksTheAddress(t *testing.T) {
	for name, tc := range map[string]struct {
		addr, want string
	}{
		"An empty address should fail.":          {"", "address is empty"},
		"An address without a port should fail.": {"localhost", "has no port"},
		"A URL that does not parse should fail.": {"redis://host:port:x/abc", "does not parse"},
		"host:port should pass.":                 {"127.0.0.1:6379", ""},
		"A redis:// URL with a password passes.": {"redis://:pw@127.0.0.1:6379/2", ""},
	} {
		b, err := OpenRedis(RedisConfig{Addr: tc.addr})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s\n got %v, want an error containing %q", name, err, tc.want)
		}
		if b != nil {
			_ = b.Close()
		}
	}
}
