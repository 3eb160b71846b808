package order

import (
	"strconv"
	"sync"
	"time"
)

// idempotency remembers, per rider and Idempotency-Key, the ride a request
// created, and makes concurrent requests with the same key wait for the
// first one instead of creating twice. A failed creation is forgotten at
// once, so a retry tries again. Finished keys are forgotten after ttl, or
// oldest first past max keys.
type idempotency struct {
	mu    sync.Mutex
	m     map[string]*idemEntry
	order []idemRef // insertion order, for eviction
	ttl   time.Duration
	max   int
}

type idemEntry struct {
	done     chan struct{} // closed when finished
	fp       string        // fingerprint of the request
	finished bool
	at       time.Time
	ride     Ride
	err      error
}

type idemRef struct {
	key string
	e   *idemEntry
}

func newIdempotency(ttl time.Duration, max int) *idempotency {
	return &idempotency{m: map[string]*idemEntry{}, ttl: ttl, max: max}
}

// begin returns the entry for key, and whether the caller leads (must
// create the ride and call finish) or follows (must wait on done).
func (x *idempotency) begin(key, fp string, now time.Time) (*idemEntry, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.evictLocked(now)
	if e, ok := x.m[key]; ok {
		return e, false
	}
	e := &idemEntry{done: make(chan struct{}), fp: fp}
	x.m[key] = e
	x.order = append(x.order, idemRef{key, e})
	return e, true
}

// finish records the leader's result and wakes the followers.
func (x *idempotency) finish(key string, e *idemEntry, r Ride, err error, now time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e.ride, e.err, e.at, e.finished = r, err, now, true
	if err != nil && x.m[key] == e {
		delete(x.m, key)
	}
	close(e.done)
}

func (x *idempotency) evictLocked(now time.Time) {
	for len(x.order) > 0 {
		ref := x.order[0]
		if cur, ok := x.m[ref.key]; !ok || cur != ref.e {
			x.order = x.order[1:] // forgotten already (a failure)
			continue
		}
		if !ref.e.finished || (now.Sub(ref.e.at) < x.ttl && len(x.m) <= x.max) {
			return
		}
		delete(x.m, ref.key)
		x.order[0] = idemRef{}
		x.order = x.order[1:]
	}
}

func (x *idempotency) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.m)
}

// fingerprint identifies a creation request, to tell a retry from a key
// reused for another ride.
func fingerprint(riderID string, pickup, dropoff LatLng) string {
	b := make([]byte, 0, len(riderID)+64)
	b = append(b, riderID...)
	for _, f := range []float64{pickup.Lat, pickup.Lng, dropoff.Lat, dropoff.Lng} {
		b = append(b, '|')
		b = strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	return string(b)
}
