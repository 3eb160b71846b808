package ridecache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// TestWithRealRedis runs the Redis locker and shared tier against a real
// Redis 7 server, one server for every subtest (each on its own keys).
func TestWithRealRedis(t *testing.T) {
	srv := realserver.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()

	t.Run("A lock is SET NX with a PX ttl, and a second taker waits until its context ends.", func(t *testing.T) {
		l := NewRedisLocker(client)
		unlock, err := l.Lock(ctx, "lock:a", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if pttl := client.PTTL(ctx, "lock:a").Val(); pttl <= 0 || pttl > 10*time.Second {
			t.Fatalf("PTTL %s", pttl)
		}
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := l.Lock(wctx, "lock:a", time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a second taker: %v", err)
		}
		if err := unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if n := client.Exists(ctx, "lock:a").Val(); n != 0 {
			t.Fatal("unlock left the key")
		}
	})

	t.Run("A waiting taker gets the lock once the holder unlocks.", func(t *testing.T) {
		l := NewRedisLocker(client)
		unlock, err := l.Lock(ctx, "lock:b", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error)
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			u, err := l.Lock(wctx, "lock:b", 10*time.Second)
			if err == nil {
				err = u(ctx)
			}
			got <- err
		}()
		if err := unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("When the holder's ttl runs out another takes the lock, and the stale holder cannot release it.", func(t *testing.T) {
		l := NewRedisLocker(client)
		unlockA, err := l.Lock(ctx, "lock:c", 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		// A "dies" holding the lock; B waits for the ttl to free it.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		unlockB, err := l.Lock(wctx, "lock:c", 10*time.Second)
		if err != nil {
			t.Fatalf("the lapsed lock was not taken: %v", err)
		}
		tokenB := client.Get(ctx, "lock:c").Val()
		if err := unlockA(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("the stale holder's unlock: %v", err)
		}
		if got := client.Get(ctx, "lock:c").Val(); got != tokenB {
			t.Fatalf("the stale unlock touched B's lock: %q, want %q", got, tokenB)
		}
		if err := unlockB(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("A token that is not the holder's cannot delete the lock.", func(t *testing.T) {
		if err := client.Set(ctx, "lock:d", "someone-else", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		l := NewRedisLocker(client)
		if err := l.unlock(ctx, "lock:d", "my-old-token"); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("got %v", err)
		}
		if got := client.Get(ctx, "lock:d").Val(); got != "someone-else" {
			t.Fatalf("the lock now holds %q", got)
		}
	})

	t.Run("The Redis shared tier keeps a fill from before an invalidation out.", func(t *testing.T) {
		sh := NewRedisShared(client, "test:gen:")
		testSharedGeneration(t, sh, "ride-1")
		if pttl := client.PTTL(ctx, "test:gen:{ride-1}:g").Val(); pttl <= 0 || pttl > time.Hour {
			t.Fatalf("the generation's PTTL is %s", pttl)
		}
		if ok, err := sh.Fill(ctx, "ride-2", 0, []byte("x"), 30*time.Second); err != nil || !ok {
			t.Fatalf("fill: %v %v", ok, err)
		}
		if pttl := client.PTTL(ctx, "test:gen:{ride-2}:v").Val(); pttl <= 0 || pttl > 30*time.Second {
			t.Fatalf("the value's PTTL is %s", pttl)
		}
	})

	twoCaches := func(t *testing.T, prefix string, shared bool) ([2]*Cache[rideState], *store) {
		st := newStore()
		st.set("9", "in_progress")
		var caches [2]*Cache[rideState]
		for i := range caches {
			// Each cache has its own client, as a process would.
			cl := redis.NewClient(&redis.Options{Addr: srv.Addr})
			t.Cleanup(func() { _ = cl.Close() })
			cfg := Config{Region: "sh-a", LockPrefix: prefix + "lock:"}
			if shared {
				cfg.Shared = NewRedisShared(cl, prefix)
			}
			c, err := New(cfg, st.load, NewRedisLocker(cl), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			caches[i] = c
		}
		return caches, st
	}

	t.Run("Two caches with the Redis lock and shared tier load a burst of misses once.", func(t *testing.T) {
		caches, st := twoCaches(t, "burst1:", true)
		testTwoCaches(t, caches, st, 1)
	})

	t.Run("Two caches with the Redis lock alone load once each, never at the same time.", func(t *testing.T) {
		caches, st := twoCaches(t, "burst2:", false)
		testTwoCaches(t, caches, st, 2)
	})

	t.Run("An invalidation in one process reaches the other through the shared tier.", func(t *testing.T) {
		caches, st := twoCaches(t, "inval:", true)
		a, b := caches[0], caches[1]
		if r, err := a.Get(ctx, "9"); err != nil || r.State != "in_progress" {
			t.Fatalf("%+v %v", r, err)
		}
		st.set("9", "completed")
		a.Invalidate("9") // the transition happened in a's process
		if r, err := b.Get(ctx, "9"); err != nil || r.State != "completed" {
			t.Fatalf("b read %+v %v after a's invalidation", r, err)
		}
		if st.loads.Load() != 2 {
			t.Fatalf("%d loads", st.loads.Load())
		}
	})
}
