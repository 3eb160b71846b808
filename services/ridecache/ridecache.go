// Package ridecache is the ride-state read cache (the seed's §2.3): reads of
// a ride's state go through a concurrent local cache, bounded in size and
// with a TTL, and a miss loads the state once however many readers miss at
// the same moment.
//
// A miss goes through three guards before it loads:
//
//  1. Within the process, concurrent misses of one key share one load (a
//     flight); the readers that join it get its result.
//  2. The flight takes a distributed lock on the key (Locker: LocalLocker in
//     process by default, RedisLocker across processes), so that at most one
//     process loads a key at a time.
//  3. With a Shared tier (RedisShared), the flight reads it before taking
//     the lock and again once it holds the lock: a process that waited for
//     another's load finds its value there and does not load. Without a
//     shared tier, each process loads once per miss, one after another.
//
// Invalidate drops a key on every ride transition (the order service and
// the replication applier call it): from the local cache, from a flight in
// progress (whose value then reaches its waiting readers but is not
// cached), and from the shared tier, whose generation check keeps a load
// that raced with the transition from storing the older state. Other
// processes' local caches learn of the transition when their entry's TTL
// ends, so Config.TTL bounds how stale another process can read.
//
// A miss that cannot take the lock within Config.LockWait (the lock
// service is down, or a holder is slow) loads without it and is counted:
// availability over deduplication.
package ridecache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Loader reads a ride's state from the backing store. It must honour ctx.
type Loader[V any] func(ctx context.Context, key string) (V, error)

// Config configures a Cache.
type Config struct {
	// Region labels metrics and logs.
	Region string
	// MaxEntries bounds the local cache (default 100,000); the least
	// recently used entries go first.
	MaxEntries int
	// TTL is how long a local entry is served (default 5s). It bounds how
	// long another process's transition can go unseen here.
	TTL time.Duration
	// LockTTL is the distributed lock's lease (default 2s); it must be at
	// least LoadTimeout so that a lock outlives the load it guards.
	LockTTL time.Duration
	// LockWait is how long a miss waits for the lock before loading
	// without it (default 1s).
	LockWait time.Duration
	// LoadTimeout bounds one load (default 2s).
	LoadTimeout time.Duration
	// LockPrefix is put before a key to name its lock (default
	// "ridecache:lock:").
	LockPrefix string
	// Shared is the optional tier shared by processes (nil: none).
	Shared Shared
	// SharedTTL is how long a value lives in the shared tier (default 30s).
	SharedTTL time.Duration
	// SharedTimeout bounds one call to the shared tier, Invalidate's
	// included (default 250ms).
	SharedTimeout time.Duration
	// Codec encodes values for the shared tier (default JSONCodec).
	Codec Codec
	// Now is the local cache's clock (default time.Now).
	Now func() time.Time
	// TracerProvider makes a span per load (default no-op).
	TracerProvider trace.TracerProvider
}

func (c *Config) defaults() {
	if c.MaxEntries == 0 {
		c.MaxEntries = 100_000
	}
	if c.TTL == 0 {
		c.TTL = 5 * time.Second
	}
	if c.LockTTL == 0 {
		c.LockTTL = 2 * time.Second
	}
	if c.LockWait == 0 {
		c.LockWait = time.Second
	}
	if c.LoadTimeout == 0 {
		c.LoadTimeout = 2 * time.Second
	}
	if c.LockPrefix == "" {
		c.LockPrefix = "ridecache:lock:"
	}
	if c.SharedTTL == 0 {
		c.SharedTTL = 30 * time.Second
	}
	if c.SharedTimeout == 0 {
		c.SharedTimeout = 250 * time.Millisecond
	}
	if c.Codec == nil {
		c.Codec = JSONCodec{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
}

// Validate checks the configuration, fields against each other.
func (c Config) Validate() error {
	switch {
	case c.MaxEntries < 1:
		return errors.New("ridecache config: max_entries must be at least 1")
	case c.TTL < 0 || c.LockTTL < 0 || c.LockWait < 0 || c.LoadTimeout < 0 || c.SharedTTL < 0 || c.SharedTimeout < 0:
		return errors.New("ridecache config: durations must not be negative")
	case c.LockTTL < c.LoadTimeout:
		return fmt.Errorf("ridecache config: lock_ttl %s is shorter than load_timeout %s; a lock would lapse while its load runs", c.LockTTL, c.LoadTimeout)
	}
	return nil
}

// Cache is the ride-state cache for values of type V. It is safe for
// concurrent use.
type Cache[V any] struct {
	cfg    Config
	load   Loader[V]
	locker Locker
	local  *local[V]
	log    *slog.Logger
	tracer trace.Tracer

	hits, misses, sharedHits    prometheus.Counter
	loadsOK, loadsErr           prometheus.Counter
	lockFailures, invalidations prometheus.Counter
	evictions                   prometheus.Counter
}

// New returns a cache that loads misses with load under locker's lock (nil:
// a LocalLocker). It registers its metrics with reg (nil: unregistered);
// caches of several regions may share one registry.
func New[V any](cfg Config, load Loader[V], locker Locker, reg prometheus.Registerer, log *slog.Logger) (*Cache[V], error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if load == nil {
		return nil, errors.New("ridecache: a loader is needed")
	}
	if locker == nil {
		locker = NewLocalLocker()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	vecs := map[string]*prometheus.CounterVec{}
	for _, m := range []catalog.Metric{catalog.RideCacheRequests, catalog.RideCacheSharedHits, catalog.RideCacheLoads,
		catalog.RideCacheLockFailures, catalog.RideCacheInvalidations, catalog.RideCacheEvictions} {
		v := telemetry.NewCounterVec(m)
		if reg != nil {
			var err error
			if v, err = register(reg, v); err != nil {
				return nil, err
			}
		}
		vecs[m.Name] = v
	}
	r := cfg.Region
	return &Cache[V]{
		cfg:           cfg,
		load:          load,
		locker:        locker,
		local:         newLocal[V](cfg.MaxEntries),
		log:           log.With(catalog.LabelRegion, r, catalog.LabelService, "ridecache"),
		tracer:        cfg.TracerProvider.Tracer("github.com/carpoolsla/carpoolsla/services/ridecache"),
		hits:          vecs[catalog.RideCacheRequests.Name].WithLabelValues(r, catalog.RideCacheHit),
		misses:        vecs[catalog.RideCacheRequests.Name].WithLabelValues(r, catalog.RideCacheMiss),
		sharedHits:    vecs[catalog.RideCacheSharedHits.Name].WithLabelValues(r),
		loadsOK:       vecs[catalog.RideCacheLoads.Name].WithLabelValues(r, catalog.OutcomeOK),
		loadsErr:      vecs[catalog.RideCacheLoads.Name].WithLabelValues(r, catalog.OutcomeError),
		lockFailures:  vecs[catalog.RideCacheLockFailures.Name].WithLabelValues(r),
		invalidations: vecs[catalog.RideCacheInvalidations.Name].WithLabelValues(r),
		evictions:     vecs[catalog.RideCacheEvictions.Name].WithLabelValues(r),
	}, nil
}

// register registers c, or returns the equal collector registered before.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("registering the ride cache metrics: %w", err)
	}
	return c, nil
}

// Get returns key's state: from the local cache, or from the one load in
// flight for it, or from a new load (see the package comment). A load's
// error is returned to every reader that waited for it and is not cached.
// When ctx ends first, Get returns ctx's error and the load goes on for the
// others.
func (c *Cache[V]) Get(ctx context.Context, key string) (V, error) {
	s := c.local.shard(key)
	s.mu.Lock()
	if v, ok := s.getLocked(key, c.cfg.Now()); ok {
		s.mu.Unlock()
		c.hits.Inc()
		return v, nil
	}
	c.misses.Inc()
	f, ok := s.flights[key]
	if !ok {
		f = &flight[V]{done: make(chan struct{})}
		s.flights[key] = f
		// The load outlives the reader that started it: the others
		// waiting for it must not fail because that one gave up.
		go c.fly(context.WithoutCancel(ctx), key, s, f)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		var zero V
		return zero, fmt.Errorf("reading ride %s through the cache: %w", key, ctx.Err())
	}
}

// fly runs f's load and caches its value unless the key was invalidated
// meanwhile.
func (c *Cache[V]) fly(ctx context.Context, key string, s *shard[V], f *flight[V]) {
	v, err := c.fill(ctx, key)
	s.mu.Lock()
	if s.flights[key] == f {
		delete(s.flights, key)
	}
	evicted := 0
	if err == nil && !f.stale {
		evicted = s.putLocked(key, v, c.cfg.Now().Add(c.cfg.TTL), c.local.perShard)
	}
	s.mu.Unlock()
	if evicted > 0 {
		c.evictions.Add(float64(evicted))
	}
	f.v, f.err = v, err
	close(f.done)
}

// fill finds key's value in the shared tier or loads it, under the lock.
func (c *Cache[V]) fill(ctx context.Context, key string) (v V, err error) {
	ctx, span := c.tracer.Start(ctx, "ridecache.fill", trace.WithAttributes(attribute.String("ride.id", key)))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()

	gen, found := int64(0), false
	if c.cfg.Shared != nil {
		if v, gen, found = c.sharedGet(ctx, key); found {
			span.SetAttributes(attribute.String("ridecache.source", "shared"))
			return v, nil
		}
	}

	lctx, cancel := context.WithTimeout(ctx, c.cfg.LockWait)
	unlock, lerr := c.locker.Lock(lctx, c.cfg.LockPrefix+key, c.cfg.LockTTL)
	cancel()
	if lerr != nil {
		c.lockFailures.Inc()
		c.log.WarnContext(ctx, "loading a ride without the cache lock", "ride_id", key, "err", lerr)
	} else {
		defer func() {
			uctx, cancel := context.WithTimeout(ctx, c.cfg.SharedTimeout)
			defer cancel()
			if err := unlock(uctx); err != nil {
				c.log.WarnContext(ctx, "releasing the cache lock", "ride_id", key, "err", err)
			}
		}()
		// Whoever held the lock before us may have filled the shared tier.
		if c.cfg.Shared != nil {
			if v, gen, found = c.sharedGet(ctx, key); found {
				span.SetAttributes(attribute.String("ridecache.source", "shared"))
				return v, nil
			}
		}
	}

	span.SetAttributes(attribute.String("ridecache.source", "load"))
	lctx, cancel = context.WithTimeout(ctx, c.cfg.LoadTimeout)
	v, err = c.load(lctx, key)
	cancel()
	if err != nil {
		c.loadsErr.Inc()
		return v, fmt.Errorf("loading ride %s: %w", key, err)
	}
	c.loadsOK.Inc()
	if c.cfg.Shared != nil {
		c.sharedFill(ctx, key, gen, v)
	}
	return v, nil
}

// sharedGet reads key from the shared tier; an error or an undecodable
// value is logged and reads as a miss.
func (c *Cache[V]) sharedGet(ctx context.Context, key string) (v V, gen int64, found bool) {
	sctx, cancel := context.WithTimeout(ctx, c.cfg.SharedTimeout)
	defer cancel()
	b, ok, gen, err := c.cfg.Shared.Get(sctx, key)
	if err != nil {
		c.log.WarnContext(ctx, "reading the shared ride cache", "ride_id", key, "err", err)
		return v, 0, false
	}
	if !ok {
		return v, gen, false
	}
	if err := c.cfg.Codec.Unmarshal(b, &v); err != nil {
		c.log.WarnContext(ctx, "decoding a ride from the shared cache", "ride_id", key, "err", err)
		var zero V
		return zero, gen, false
	}
	c.sharedHits.Inc()
	return v, gen, true
}

func (c *Cache[V]) sharedFill(ctx context.Context, key string, gen int64, v V) {
	b, err := c.cfg.Codec.Marshal(v)
	if err != nil {
		c.log.WarnContext(ctx, "encoding a ride for the shared cache", "ride_id", key, "err", err)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, c.cfg.SharedTimeout)
	defer cancel()
	if _, err := c.cfg.Shared.Fill(sctx, key, gen, b, c.cfg.SharedTTL); err != nil {
		c.log.WarnContext(ctx, "filling the shared ride cache", "ride_id", key, "err", err)
	}
}

// Invalidate drops key after a transition of its ride: from the shared
// tier first, then from the local cache and from a load in flight (whose
// value will reach its waiting readers but not the cache). In that order, a
// load that starts after Invalidate can only read the new state. A
// shared-tier failure is logged; the shared value then lives until its
// SharedTTL.
func (c *Cache[V]) Invalidate(key string) {
	if c.cfg.Shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.SharedTimeout)
		if err := c.cfg.Shared.Invalidate(ctx, key); err != nil {
			c.log.Warn("invalidating the shared ride cache", "ride_id", key, "err", err)
		}
		cancel()
	}
	s := c.local.shard(key)
	s.mu.Lock()
	if it, ok := s.items[key]; ok {
		s.removeLocked(it)
	}
	if f, ok := s.flights[key]; ok {
		f.stale = true
		delete(s.flights, key)
	}
	s.mu.Unlock()
	c.invalidations.Inc()
}

// Len returns the number of entries in the local cache.
func (c *Cache[V]) Len() int { return c.local.len() }
