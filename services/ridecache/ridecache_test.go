package ridecache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// rideState stands for the order service's ride.
type rideState struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Version int    `json:"version"`
}

// store is a fake backing store that counts its loads, can hold them at a
// gate, and tracks how many run at once.
type store struct {
	mu    sync.Mutex
	rides map[string]rideState
	err   error
	gate  chan struct{}

	loads, inflight, maxInflight atomic.Int64
}

func newStore() *store { return &store{rides: map[string]rideState{}} }

func (s *store) set(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rides[id]
	s.rides[id] = rideState{ID: id, State: state, Version: r.Version + 1}
}

func (s *store) hold() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = make(chan struct{})
	var once sync.Once
	g := s.gate
	return func() { once.Do(func() { close(g) }) }
}

func (s *store) load(ctx context.Context, id string) (rideState, error) {
	s.loads.Add(1)
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for {
		m := s.maxInflight.Load()
		if n <= m || s.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return rideState{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rideState{}, s.err
	}
	r, ok := s.rides[id]
	if !ok {
		return rideState{}, fmt.Errorf("ride %s not found", id)
	}
	return r, nil
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitFor polls cond every millisecond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func count(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

type fixture struct {
	cache *Cache[rideState]
	store *store
	clock *fakeClock
}

func newFixture(t *testing.T, cfg Config, locker Locker) *fixture {
	t.Helper()
	f := &fixture{store: newStore(), clock: &fakeClock{t: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}}
	if cfg.Now == nil {
		cfg.Now = f.clock.Now
	}
	cfg.Region = "sh-a"
	c, err := New(cfg, f.store.load, locker, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.cache = c
	return f
}

func TestConcurrentMissesLoadOnce(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	f.store.set("42", "matched")
	release := f.store.hold()
	const n = 100
	got := make([]rideState, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = f.cache.Get(context.Background(), "42") })
	}
	// Every reader has missed (and joined the flight) before the load ends.
	waitFor(t, "100 misses", func() bool { return count(f.cache.misses) == n })
	release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i].State != "matched" {
			t.Fatalf("reader %d: %+v %v", i, got[i], errs[i])
		}
	}
	if l := f.store.loads.Load(); l != 1 {
		t.Fatalf("%d loads for %d concurrent misses", l, n)
	}
	if _, err := f.cache.Get(context.Background(), "42"); err != nil || count(f.cache.hits) != 1 {
		t.Fatalf("the next read is not a hit: %v, hits %v", err, count(f.cache.hits))
	}
	if count(f.cache.loadsOK) != 1 {
		t.Fatal("the load was not counted")
	}
}

func TestEntriesExpireAfterTheTTL(t *testing.T) {
	f := newFixture(t, Config{TTL: 5 * time.Second}, nil)
	f.store.set("1", "requested")
	ctx := context.Background()
	steps := []struct {
		advance   time.Duration
		wantLoads int64
	}{{0, 1}, {0, 1}, {4 * time.Second, 1}, {time.Second, 2}, {4 * time.Second, 2}}
	for i, s := range steps {
		f.clock.Add(s.advance)
		if _, err := f.cache.Get(ctx, "1"); err != nil {
			t.Fatal(err)
		}
		if l := f.store.loads.Load(); l != s.wantLoads {
			t.Fatalf("step %d: %d loads, want %d", i, l, s.wantLoads)
		}
	}
}

func TestInvalidateOnTransition(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	ctx := context.Background()
	f.store.set("1", "requested")
	if r, _ := f.cache.Get(ctx, "1"); r.State != "requested" {
		t.Fatalf("got %+v", r)
	}
	f.store.set("1", "matched")
	if r, _ := f.cache.Get(ctx, "1"); r.State != "requested" {
		t.Fatalf("without invalidation the cache still serves its entry, got %+v", r)
	}
	f.cache.Invalidate("1")
	if r, _ := f.cache.Get(ctx, "1"); r.State != "matched" || f.store.loads.Load() != 2 {
		t.Fatalf("after invalidation: %+v, %d loads", r, f.store.loads.Load())
	}
	if count(f.cache.invalidations) != 1 {
		t.Fatal("invalidation not counted")
	}
	f.cache.Invalidate("never-read") // harmless
}

func TestInvalidateDuringALoadKeepsItsValueOutOfTheCache(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	ctx := context.Background()
	f.store.set("1", "requested")
	release := f.store.hold()
	first := make(chan rideState)
	go func() { r, _ := f.cache.Get(ctx, "1"); first <- r }()
	waitFor(t, "the load to start", func() bool { return f.store.loads.Load() == 1 })
	// The transition commits while the load is reading the old state.
	f.cache.Invalidate("1")
	f.store.mu.Lock()
	f.store.gate = nil // later loads pass
	f.store.mu.Unlock()
	release()
	if r := <-first; r.State != "requested" {
		t.Fatalf("the reader that asked before the transition got %+v", r)
	}
	f.store.set("1", "matched")
	if r, _ := f.cache.Get(ctx, "1"); r.State != "matched" || f.store.loads.Load() != 2 {
		t.Fatalf("the value loaded before the transition was cached: %+v after %d loads", r, f.store.loads.Load())
	}
}

func TestALoadErrorIsSharedButNotCached(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	ctx := context.Background()
	f.store.err = errors.New("store unavailable")
	release := f.store.hold()
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() { _, errs[i] = f.cache.Get(ctx, "1") })
	}
	waitFor(t, "10 misses", func() bool { return count(f.cache.misses) == 10 })
	release()
	wg.Wait()
	for i, err := range errs {
		if err == nil || !errors.Is(err, f.store.err) {
			t.Fatalf("reader %d: %v", i, err)
		}
	}
	if f.store.loads.Load() != 1 || count(f.cache.loadsErr) != 1 {
		t.Fatalf("%d loads, %v errors counted", f.store.loads.Load(), count(f.cache.loadsErr))
	}
	f.store.mu.Lock()
	f.store.err = nil
	f.store.mu.Unlock()
	f.store.set("1", "requested")
	if r, err := f.cache.Get(ctx, "1"); err != nil || r.State != "requested" {
		t.Fatalf("after the store came back: %+v %v", r, err)
	}
}

func TestAReaderThatGivesUpDoesNotStopTheLoad(t *testing.T) {
	f := newFixture(t, Config{}, nil)
	f.store.set("1", "requested")
	release := f.store.hold()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := f.cache.Get(ctx, "1"); done <- err }()
	waitFor(t, "the load to start", func() bool { return f.store.loads.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	release()
	waitFor(t, "the load to fill the cache", func() bool { return f.cache.Len() == 1 })
	if r, err := f.cache.Get(context.Background(), "1"); err != nil || r.State != "requested" || f.store.loads.Load() != 1 {
		t.Fatalf("%+v %v after %d loads", r, err, f.store.loads.Load())
	}
}

func TestTheCacheIsBounded(t *testing.T) {
	f := newFixture(t, Config{MaxEntries: 64}, nil)
	ctx := context.Background()
	for i := range 1000 {
		id := fmt.Sprint(i)
		f.store.set(id, "requested")
		if _, err := f.cache.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.cache.Len(); n > 64 {
		t.Fatalf("%d entries in a cache bounded to 64", n)
	}
	if ev := count(f.cache.evictions); int(ev) != 1000-f.cache.Len() {
		t.Fatalf("%v evictions for %d entries left", ev, f.cache.Len())
	}
}

func TestShardEvictsTheLeastRecentlyUsed(t *testing.T) {
	l := newLocal[int](numShards * 2)
	s := &l.shards[0]
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	far := now.Add(time.Hour)
	s.putLocked("a", 1, far, 2)
	s.putLocked("b", 2, far, 2)
	if _, ok := s.getLocked("a", now); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	if n := s.putLocked("c", 3, far, 2); n != 1 {
		t.Fatalf("evicted %d", n)
	}
	if _, ok := s.getLocked("b", now); ok {
		t.Fatal("b, the least recently used, survived")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := s.getLocked(k, now); !ok {
			t.Fatalf("%s was evicted", k)
		}
	}
	s.putLocked("a", 10, far, 2) // update in place
	if v, _ := s.getLocked("a", now); v != 10 || len(s.items) != 2 {
		t.Fatalf("update: %d, %d items", v, len(s.items))
	}
	if _, ok := s.getLocked("c", far); ok {
		t.Fatal("an expired entry was served")
	}
	if len(s.items) != 1 || s.head != s.tail || s.head.key != "a" {
		t.Fatal("the list and the map disagree")
	}
}

// failingLocker never grants the lock.
type failingLocker struct{ calls atomic.Int64 }

func (l *failingLocker) Lock(context.Context, string, time.Duration) (func(context.Context) error, error) {
	l.calls.Add(1)
	return nil, errors.New("redis: connection refused")
}

func TestAMissLoadsWithoutTheLockWhenItCannotBeTaken(t *testing.T) {
	lk := &failingLocker{}
	f := newFixture(t, Config{}, lk)
	f.store.set("1", "requested")
	if r, err := f.cache.Get(context.Background(), "1"); err != nil || r.State != "requested" {
		t.Fatalf("%+v %v", r, err)
	}
	if lk.calls.Load() != 1 || count(f.cache.lockFailures) != 1 {
		t.Fatalf("lock calls %d, failures counted %v", lk.calls.Load(), count(f.cache.lockFailures))
	}
}

// recordingLocker is a LocalLocker that remembers the keys it locked.
type recordingLocker struct {
	LocalLocker
	mu   sync.Mutex
	keys []string
}

func (l *recordingLocker) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	l.mu.Lock()
	l.keys = append(l.keys, fmt.Sprintf("%s/%s", key, ttl))
	l.mu.Unlock()
	return l.LocalLocker.Lock(ctx, key, ttl)
}

func TestAMissTakesTheLockOnItsKey(t *testing.T) {
	lk := &recordingLocker{}
	f := newFixture(t, Config{LockTTL: 3 * time.Second}, lk)
	f.store.set("7", "requested")
	for range 3 {
		if _, err := f.cache.Get(context.Background(), "7"); err != nil {
			t.Fatal(err)
		}
	}
	if len(lk.keys) != 1 || lk.keys[0] != "ridecache:lock:7/3s" {
		t.Fatalf("locked %v", lk.keys)
	}
	if len(lk.held) != 0 {
		t.Fatal("the lock was not released")
	}
}

// TestTwoCachesShareATier runs two caches, as two processes would, over one
// shared tier and one lock service (in process here; redis_test.go does it
// with Redis).
func TestTwoCachesShareATier(t *testing.T) {
	tests := map[string]struct {
		shared    bool
		wantLoads int64
	}{
		"With a shared tier, the cache that waited for the lock finds the other's value.": {true, 1},
		"Without one, each cache loads once, one after the other.":                        {false, 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := newStore()
			st.set("9", "in_progress")
			locker := NewLocalLocker()
			var sh Shared
			if tc.shared {
				sh = &MemShared{}
			}
			var caches [2]*Cache[rideState]
			for i := range caches {
				c, err := New(Config{Region: "sh-a", Shared: sh}, st.load, locker, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				caches[i] = c
			}
			testTwoCaches(t, caches, st, tc.wantLoads)
		})
	}
}

// testTwoCaches sends 50 concurrent reads of one key to each cache and
// checks the loads.
func testTwoCaches(t *testing.T, caches [2]*Cache[rideState], st *store, wantLoads int64) {
	t.Helper()
	release := st.hold()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		c := caches[i%2]
		wg.Go(func() {
			r, err := c.Get(context.Background(), "9")
			if err == nil && r.State != "in_progress" {
				err = fmt.Errorf("read %+v", r)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	waitFor(t, "every read to miss", func() bool { return count(caches[0].misses)+count(caches[1].misses) == 100 })
	waitFor(t, "a load to start", func() bool { return st.loads.Load() == 1 })
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if l := st.loads.Load(); l != wantLoads {
		t.Fatalf("%d loads, want %d", l, wantLoads)
	}
	if m := st.maxInflight.Load(); m != 1 {
		t.Fatalf("%d loads ran at once; the lock should serialise them", m)
	}
	if wantLoads == 1 && count(caches[0].sharedHits)+count(caches[1].sharedHits) != 1 {
		t.Fatal("the second cache did not read the shared tier")
	}
}

func TestSharedTierGenerationGuardsFills(t *testing.T) {
	testSharedGeneration(t, &MemShared{}, "k")
}

// testSharedGeneration checks a Shared implementation's generation rule.
func testSharedGeneration(t *testing.T, sh Shared, key string) {
	t.Helper()
	ctx := context.Background()
	_, ok, gen, err := sh.Get(ctx, key)
	if err != nil || ok {
		t.Fatalf("empty tier: ok=%v err=%v", ok, err)
	}
	// A load reads generation gen, a transition invalidates, the load's
	// fill must not land.
	if err := sh.Invalidate(ctx, key); err != nil {
		t.Fatal(err)
	}
	if stored, err := sh.Fill(ctx, key, gen, []byte("old"), time.Minute); err != nil || stored {
		t.Fatalf("a fill from before the invalidation: stored=%v err=%v", stored, err)
	}
	_, ok, gen2, err := sh.Get(ctx, key)
	if err != nil || ok || gen2 == gen {
		t.Fatalf("after invalidation: ok=%v gen %d→%d err=%v", ok, gen, gen2, err)
	}
	if stored, err := sh.Fill(ctx, key, gen2, []byte("new"), time.Minute); err != nil || !stored {
		t.Fatalf("a current fill: stored=%v err=%v", stored, err)
	}
	if b, ok, _, err := sh.Get(ctx, key); err != nil || !ok || string(b) != "new" {
		t.Fatalf("read back %q ok=%v err=%v", b, ok, err)
	}
	if err := sh.Invalidate(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, ok, _, _ := sh.Get(ctx, key); ok {
		t.Fatal("the value survived invalidation")
	}
}

func TestMemSharedValuesExpire(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	sh := &MemShared{Now: clk.Now}
	ctx := context.Background()
	if ok, _ := sh.Fill(ctx, "k", 0, []byte("v"), time.Second); !ok {
		t.Fatal("not stored")
	}
	clk.Add(time.Second)
	if _, ok, _, _ := sh.Get(ctx, "k"); ok {
		t.Fatal("served after its ttl")
	}
}

func TestConfigValidation(t *testing.T) {
	load := newStore().load
	tests := map[string]Config{
		"A lock that lapses before its load times out is refused.": {LockTTL: time.Second, LoadTimeout: 2 * time.Second},
		"A cache that holds nothing is refused.":                   {MaxEntries: -1},
		"A negative TTL is refused.":                               {TTL: -time.Second},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg, load, nil, nil, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := New[rideState](Config{}, nil, nil, nil, nil); err == nil {
		t.Fatal("a cache without a loader was accepted")
	}
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := New(Config{Region: "sh-a"}, load, nil, reg, nil); err != nil {
			t.Fatalf("two caches on one registry: %v", err)
		}
	}
}
