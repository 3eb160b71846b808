package catalog

// Ride-state cache metrics, produced by services/ridecache.
var (
	RideCacheRequests = Metric{
		Name: "carpool_ridecache_requests_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Reads of ride state through the local cache, by result: hit (served from the local cache) or miss.",
		Labels: []string{LabelRegion, "result"},
	}
	RideCacheSharedHits = Metric{
		Name: "carpool_ridecache_shared_hits_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Local-cache misses answered by the shared (Redis) tier without loading.",
		Labels: []string{LabelRegion},
	}
	RideCacheLoads = Metric{
		Name: "carpool_ridecache_loads_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Loads of ride state from the backing store after a miss, by outcome (ok or error).",
		Labels: []string{LabelRegion, LabelOutcome},
	}
	RideCacheLockFailures = Metric{
		Name: "carpool_ridecache_lock_failures_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Misses that could not take the distributed lock within the lock wait and loaded without it.",
		Labels: []string{LabelRegion},
	}
	RideCacheInvalidations = Metric{
		Name: "carpool_ridecache_invalidations_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Ride-state cache invalidations (one per ride transition, local or replicated).",
		Labels: []string{LabelRegion},
	}
	RideCacheEvictions = Metric{
		Name: "carpool_ridecache_evictions_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Entries dropped from the local ride-state cache to stay within its size bound.",
		Labels: []string{LabelRegion},
	}
)

// Values of the result label of RideCacheRequests.
const (
	RideCacheHit  = "hit"
	RideCacheMiss = "miss"
)

func init() {
	register(RideCacheRequests, RideCacheSharedHits, RideCacheLoads, RideCacheLockFailures, RideCacheInvalidations, RideCacheEvictions)
}
