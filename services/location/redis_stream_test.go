package location

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// These tests run against a real redis-server 7 started by realserver; they
// fail (never skip) when it is not installed.

func newTestRedisStream(t *testing.T, addr, name string, claimAfter time.Duration) *RedisStream {
	t.Helper()
	s, err := NewRedisStream(RedisStreamConfig{Addr: addr, Name: name, ClaimAfter: claimAfter, ClaimInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// xinfoLag returns the lag field of XINFO GROUPS for group (-1 when nil).
func xinfoLag(t *testing.T, rdb redis.UniversalClient, stream, group string) int64 {
	t.Helper()
	groups, err := rdb.XInfoGroups(context.Background(), stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g.Name == group {
			return g.Lag
		}
	}
	t.Fatalf("group %s not in XINFO GROUPS", group)
	return 0
}

func TestRedisStream(t *testing.T) {
	srv := realserver.StartRedis(t)
	ctx := context.Background()

	t.Run("XADD, XREADGROUP and XACK carry positions through a group.", func(t *testing.T) {
		s := newTestRedisStream(t, srv.Addr, "flow", time.Minute)
		if err := s.CreateGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateGroup(ctx, "g"); err != nil {
			t.Fatalf("creating the group again: %v", err)
		}
		ts := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
		const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		want := []Position{
			{DriverID: "d1", Lat: 52.52, Lng: 13.405, TS: ts, TraceParent: tp},
			{DriverID: "d2", Lat: -33.8688, Lng: 151.2093, TS: ts.Add(time.Second)},
		}
		if err := s.Publish(ctx, want[0]); err != nil {
			t.Fatal(err)
		}
		if err := s.PublishBatch(ctx, want[1:]); err != nil {
			t.Fatal(err)
		}
		if n := s.Client().XLen(ctx, "flow").Val(); n != 2 {
			t.Fatalf("XLEN = %d", n)
		}
		msgs, err := s.Read(ctx, "g", "c1", 10, 100*time.Millisecond)
		if err != nil || len(msgs) != 2 {
			t.Fatalf("read %v %v", msgs, err)
		}
		for i, m := range msgs {
			if m.Err != nil || m.Redelivered || m.Added.IsZero() {
				t.Fatalf("message %+v", m)
			}
			got := m.Position
			if !got.TS.Equal(want[i].TS) {
				t.Fatalf("ts %v, want %v", got.TS, want[i].TS)
			}
			got.TS = want[i].TS
			if got != want[i] {
				t.Fatalf("read %+v, want %+v", got, want[i])
			}
		}
		if p := s.Client().XPending(ctx, "flow", "g").Val(); p.Count != 2 {
			t.Fatalf("XPENDING count %d, want 2", p.Count)
		}
		if err := s.Ack(ctx, "g", msgIDs(msgs)...); err != nil {
			t.Fatal(err)
		}
		if p := s.Client().XPending(ctx, "flow", "g").Val(); p.Count != 0 {
			t.Fatalf("XPENDING count %d after XACK", p.Count)
		}
		if msgs, err := s.Read(ctx, "g", "c1", 10, 10*time.Millisecond); err != nil || len(msgs) != 0 {
			t.Fatalf("an idle read returned %v %v", msgs, err)
		}
	})

	t.Run("A killed consumer's pending entries are reclaimed by another.", func(t *testing.T) {
		// Two stream values with their own connections stand for two processes.
		dead := newTestRedisStream(t, srv.Addr, "reclaim", 200*time.Millisecond)
		alive := newTestRedisStream(t, srv.Addr, "reclaim", 200*time.Millisecond)
		_ = dead.CreateGroup(ctx, "g")
		publishN(t, dead, 0, 5)
		taken, err := dead.Read(ctx, "g", "dead", 3, 0)
		if err != nil || len(taken) != 3 {
			t.Fatalf("read %v %v", taken, err)
		}
		_ = dead.Close() // killed before acknowledging

		got, err := alive.Read(ctx, "g", "alive", 10, 0)
		if err != nil || !slices.Equal(drivers(got), []string{"d3", "d4"}) {
			t.Fatalf("before the claim timeout alive read %v %v, want only the new d3 d4", drivers(got), err)
		}
		_ = alive.Ack(ctx, "g", msgIDs(got)...)
		var reclaimed []Message
		waitFor(t, 5*time.Second, "the dead consumer's entries to be reclaimed", func() bool {
			msgs, err := alive.Read(ctx, "g", "alive", 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			reclaimed = append(reclaimed, msgs...)
			return len(reclaimed) >= 3
		})
		if !slices.Equal(drivers(reclaimed), []string{"d0", "d1", "d2"}) {
			t.Fatalf("reclaimed %v", drivers(reclaimed))
		}
		for _, m := range reclaimed {
			if !m.Redelivered {
				t.Fatalf("%s not marked redelivered", m.ID)
			}
		}
		consumers := alive.Client().XInfoConsumers(ctx, "reclaim", "g").Val()
		for _, c := range consumers {
			if c.Name == "alive" && c.Pending != 3 || c.Name == "dead" && c.Pending != 0 {
				t.Fatalf("after XAUTOCLAIM consumer %s holds %d", c.Name, c.Pending)
			}
		}
		if err := alive.Ack(ctx, "g", msgIDs(reclaimed)...); err != nil {
			t.Fatal(err)
		}
		if p := alive.Client().XPending(ctx, "reclaim", "g").Val(); p.Count != 0 {
			t.Fatalf("XPENDING %d after acknowledging the reclaimed entries", p.Count)
		}
	})

	t.Run("Lag agrees with XINFO GROUPS lag.", func(t *testing.T) {
		s := newTestRedisStream(t, srv.Addr, "lag", time.Minute)
		_ = s.CreateGroup(ctx, "g")
		check := func(step string, want int64) {
			t.Helper()
			n, oldest, err := s.Lag(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			if x := xinfoLag(t, s.Client(), "lag", "g"); n != want || x != want {
				t.Fatalf("%s: Lag %d, XINFO lag %d, want %d", step, n, x, want)
			}
			if (n == 0) != oldest.IsZero() {
				t.Fatalf("%s: oldest %v with lag %d", step, oldest, n)
			}
		}
		check("An empty stream has no lag.", 0)
		publishN(t, s, 0, 10)
		check("Ten unread messages are ten of lag.", 10)
		msgs, _ := s.Read(ctx, "g", "c", 4, 0)
		check("Four delivered leave six.", 6)
		_ = s.Ack(ctx, "g", msgIDs(msgs)...)
		check("Acknowledging does not change the lag.", 6)
		_, oldest, _ := s.Lag(ctx, "g")
		next, _ := s.Read(ctx, "g", "c", 1, 0)
		if !oldest.Equal(next[0].Added) {
			t.Fatalf("oldest %v, want the time of the next undelivered entry %v", oldest, next[0].Added)
		}
		check("One more delivered leaves five.", 5)
		_, _ = s.Read(ctx, "g", "c", 100, 0)
		check("Everything delivered is no lag.", 0)
	})

	t.Run("A nil XINFO lag is counted instead.", func(t *testing.T) {
		s := newTestRedisStream(t, srv.Addr, "nillag", time.Minute)
		_ = s.CreateGroup(ctx, "g")
		publishN(t, s, 0, 6)
		msgs, _ := s.Read(ctx, "g", "c", 2, 0)
		// XDEL after the group's position makes Redis give up on the lag.
		all := s.Client().XRange(ctx, "nillag", "-", "+").Val()
		if err := s.Client().XDel(ctx, "nillag", all[4].ID).Err(); err != nil {
			t.Fatal(err)
		}
		if x := xinfoLag(t, s.Client(), "nillag", "g"); x != -1 {
			t.Fatalf("XINFO lag %d, want nil (-1) after the XDEL", x)
		}
		n, oldest, err := s.Lag(ctx, "g")
		if err != nil || n != 3 {
			t.Fatalf("Lag %d %v, want the 3 entries after %s", n, err, msgs[1].ID)
		}
		if id, _ := parseStreamID(all[2].ID); !oldest.Equal(time.UnixMilli(int64(id.ms))) {
			t.Fatalf("oldest %v, want the time of %s", oldest, all[2].ID)
		}
		// A group created at an explicit id has a nil lag too.
		if err := s.Client().XGroupCreate(ctx, "nillag", "late", all[1].ID).Err(); err != nil {
			t.Fatal(err)
		}
		if n, _, err := s.Lag(ctx, "late"); err != nil || n != 3 {
			t.Fatalf("Lag of a group created at an id: %d %v, want 3", n, err)
		}
	})

	t.Run("Trimming past a group is lag of what is retained.", func(t *testing.T) {
		s := newTestRedisStream(t, srv.Addr, "trim", time.Minute)
		_ = s.CreateGroup(ctx, "g")
		publishN(t, s, 0, 5)
		_, _ = s.Read(ctx, "g", "c", 2, 0)
		publishN(t, s, 5, 10)
		if err := s.Client().XTrimMaxLen(ctx, "trim", 3).Err(); err != nil {
			t.Fatal(err)
		}
		if n, _, err := s.Lag(ctx, "g"); err != nil || n != 3 {
			t.Fatalf("Lag %d %v, want the 3 retained entries", n, err)
		}
		got, _ := s.Read(ctx, "g", "c", 100, 0)
		if !slices.Equal(drivers(got), []string{"d12", "d13", "d14"}) {
			t.Fatalf("read %v after the trim", drivers(got))
		}
		// Redis 7.0 keeps counting the trimmed entries in XINFO's lag; Lag does not.
		n, _, err := s.Lag(ctx, "g")
		if err != nil || n != 0 {
			t.Fatalf("Lag %d %v after reading everything (XINFO says %d)", n, err, xinfoLag(t, s.Client(), "trim", "g"))
		}
		t.Logf("XINFO GROUPS lag after reading everything: %d (Lag says 0)", xinfoLag(t, s.Client(), "trim", "g"))
	})

	t.Run("MAXLEN ~ bounds the stream.", func(t *testing.T) {
		s, err := NewRedisStream(RedisStreamConfig{Addr: srv.Addr, Name: "bounded", MaxLen: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ps := make([]Position, 1000)
		for i := range ps {
			ps[i] = Position{DriverID: fmt.Sprintf("d%d", i), TS: time.Unix(int64(i), 0)}
		}
		for i := 0; i < len(ps); i += 50 {
			if err := s.PublishBatch(ctx, ps[i:i+50]); err != nil {
				t.Fatal(err)
			}
		}
		if n := s.Client().XLen(ctx, "bounded").Val(); n < 100 || n > 300 {
			t.Fatalf("XLEN %d after 1000 XADD MAXLEN ~ 100", n)
		}
	})

	t.Run("Unknown groups and foreign entries are reported.", func(t *testing.T) {
		s := newTestRedisStream(t, srv.Addr, "odd", time.Minute)
		if _, _, err := s.Lag(ctx, "g"); !errors.Is(err, ErrUnknownGroup) {
			t.Fatalf("Lag on a missing stream: %v", err)
		}
		_ = s.CreateGroup(ctx, "g")
		if _, _, err := s.Lag(ctx, "other"); !errors.Is(err, ErrUnknownGroup) {
			t.Fatalf("Lag of a missing group: %v", err)
		}
		if _, err := s.Read(ctx, "other", "c", 1, 0); !errors.Is(err, ErrUnknownGroup) {
			t.Fatalf("Read of a missing group: %v", err)
		}
		s.Client().XAdd(ctx, &redis.XAddArgs{Stream: "odd", Values: []string{"hello", "world"}})
		msgs, err := s.Read(ctx, "g", "c", 10, 0)
		if err != nil || len(msgs) != 1 || msgs[0].Err == nil {
			t.Fatalf("a foreign entry read as %+v %v", msgs, err)
		}
	})
}

// TestServiceOnRedis: drivers' positions reach the index through Redis
// Streams, and the exporter's Lag is zero once they are consumed.
func TestServiceOnRedis(t *testing.T) {
	srv := realserver.StartRedis(t)
	ts := startService(t, Config{RedisAddr: srv.Addr})
	ctx := context.Background()
	base := time.Now()
	for d := range 3 {
		c, err := DialStream(ctx, fmt.Sprintf("%s?driver_id=d%d", ts.wsURL, d))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range 4 {
			_ = c.Send(Position{DriverID: fmt.Sprintf("d%d", d), Lat: 48.85, Lng: 2.35 + float64(i)*0.001, TS: base.Add(time.Duration(i) * time.Millisecond)})
		}
	}
	waitFor(t, 10*time.Second, "positions through Redis", func() bool {
		for d := range 3 {
			if p, ok := ts.Index().Get(fmt.Sprintf("d%d", d)); !ok || p.Lng != 2.35+0.003 {
				return false
			}
		}
		return true
	})
	rdb := ts.Stream().(*RedisStream).Client()
	if n := rdb.XLen(ctx, "carpool:location:eu").Val(); n != 12 {
		t.Fatalf("XLEN %d, want 12", n)
	}
	waitFor(t, 5*time.Second, "lag and pending to drain", func() bool {
		n, _, err := ts.Stream().Lag(ctx, ts.Group())
		return err == nil && n == 0 && rdb.XPending(ctx, "carpool:location:eu", ts.Group()).Val().Count == 0
	})
}
