package order

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
)

// job is one ride looking for a driver.
type job struct {
	rideID  int64
	pickup  LatLng
	first   time.Time // when the ride was created
	attempt int       // attempts made so far
	// parent is the creating request's span: every attempt is its child,
	// so one ride is one trace.
	parent trace.SpanContext
	// done receives the ride after the first attempt (nil afterwards, or
	// when nobody waits).
	done chan Ride
}

// dispatcher matches rides to drivers with a bounded pool: Workers
// goroutines (started by Service.Run) take jobs from a queue of QueueSize.
// A slot in the queue is reserved before a ride is written, so a full
// queue refuses a new ride at once (503) with nothing written, and an
// enqueue after a reservation never blocks. Rides no driver was found for
// wait in a heap ordered by due time; Run's ticker moves due ones into the
// queue when it has room (else they wait for the next tick).
type dispatcher struct {
	s     *Service
	slots chan struct{} // one token per reserved or queued job
	jobs  chan *job

	mu      sync.Mutex
	retries retryHeap
}

func newDispatcher(s *Service) *dispatcher {
	n := s.cfg.Dispatch.QueueSize
	return &dispatcher{s: s, slots: make(chan struct{}, n), jobs: make(chan *job, n)}
}

// reserve takes a queue slot without waiting; false when the queue is full.
func (d *dispatcher) reserve() bool {
	select {
	case d.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// unreserve gives back a slot that was not used.
func (d *dispatcher) unreserve() { <-d.slots }

// enqueue queues j on a reserved slot; it never blocks.
func (d *dispatcher) enqueue(j *job) {
	d.jobs <- j
	d.s.tel.add(d.s.tel.queued, 1)
}

// work is one worker: it runs attempts until ctx ends.
func (d *dispatcher) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-d.jobs:
			<-d.slots
			d.s.tel.add(d.s.tel.queued, -1)
			d.attempt(ctx, j)
		}
	}
}

// schedule puts j back to be tried at due.
func (d *dispatcher) schedule(j *job, due time.Time) {
	d.mu.Lock()
	heap.Push(&d.retries, retryItem{due: due, j: j})
	d.mu.Unlock()
}

// dispatchDue moves the retries due at now into the queue, as long as it
// has room. It returns how many it moved.
func (d *dispatcher) dispatchDue(now time.Time) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for d.retries.Len() > 0 && !d.retries[0].due.After(now) {
		if !d.reserve() {
			break
		}
		it := heap.Pop(&d.retries).(retryItem)
		d.enqueue(it.j)
		n++
	}
	return n
}

// waiting returns the number of rides waiting for a retry.
func (d *dispatcher) waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.retries.Len()
}

// attempt looks for a driver for j once, then schedules a retry, gives up
// (cancels the ride with a reason), or stops because the ride is matched
// or no longer requested.
func (d *dispatcher) attempt(ctx context.Context, j *job) {
	s := d.s
	start := time.Now()
	if j.parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, j.parent)
	}
	ctx, span := s.tel.span(ctx, "dispatch match_driver", internalSpan)
	if span.IsRecording() {
		span.SetAttributes(spanAttrRide(j.rideID), attribute.Int("dispatch.attempt", j.attempt+1))
	}
	r, res, err := d.match(ctx, j)
	if s.tel.on && res != matchGone {
		obs := s.tel.matchOK
		switch {
		case err != nil:
			obs = s.tel.matchErr
		case res == matchNone:
			obs = s.tel.matchNone
		}
		s.tel.observe(obs, time.Since(start).Seconds(), span)
	}
	endSpan(span, err)
	if j.done != nil {
		j.done <- r // buffered, sent once
		j.done = nil
	}
	if res != matchNone {
		return
	}
	if err != nil {
		s.tel.logf(ctx, slog.LevelWarn, "dispatch attempt failed", "ride_id", j.rideID, "attempt", j.attempt+1, "err", err)
	}
	j.attempt++
	now := s.now()
	if j.attempt < s.cfg.Dispatch.MaxAttempts && now.Sub(j.first) < s.cfg.Dispatch.MaxWait {
		d.schedule(j, now.Add(s.cfg.Dispatch.RetryInterval))
		return
	}
	d.giveUp(ctx, j, now, err)
}

type matchResult int

const (
	matchNone    matchResult = iota // no driver (or an error): retry
	matchMatched                    // a driver is assigned
	matchGone                       // the ride is no longer requested: stop
)

// match makes one attempt. An error leaves the ride requested (matchNone).
func (d *dispatcher) match(ctx context.Context, j *job) (Ride, matchResult, error) {
	s := d.s
	if err := s.cfg.Faults.Apply(ctx, serviceDispatch); err != nil {
		return Ride{}, matchNone, fmt.Errorf("dispatching ride %d: %w", j.rideID, err)
	}
	r, err := s.load(ctx, j.rideID)
	if errors.Is(err, ErrNotFound) {
		return Ride{}, matchGone, nil
	}
	if err != nil {
		return Ride{}, matchNone, err
	}
	if r.State != lifecycle.Requested {
		return r, matchGone, nil
	}
	nctx, span := s.tel.span(ctx, "location.Nearby", clientSpan)
	nctx, cancel := context.WithTimeout(nctx, s.cfg.Dispatch.NearbyTimeout)
	cands, err := s.deps.Drivers.Nearby(nctx, j.pickup, s.cfg.Dispatch.Candidates)
	cancel()
	endSpan(span, err)
	if err != nil {
		return r, matchNone, fmt.Errorf("finding drivers near ride %d: %w", j.rideID, err)
	}
	for _, c := range cands {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		ok, err := s.deps.Claims.Claim(cctx, c.ID, j.rideID)
		cancel()
		if err != nil {
			return r, matchNone, fmt.Errorf("claiming driver %s for ride %d: %w", c.ID, j.rideID, err)
		}
		if !ok {
			continue // serving another ride
		}
		m, applied, err := s.assignDriver(ctx, j.rideID, c.ID)
		if err != nil || !applied {
			s.release(ctx, c.ID, j.rideID)
		}
		switch {
		case err != nil:
			return r, matchNone, fmt.Errorf("assigning driver %s to ride %d: %w", c.ID, j.rideID, err)
		case !applied:
			return m, matchGone, nil
		}
		return m, matchMatched, nil
	}
	return r, matchNone, nil
}

// giveUp cancels a ride no driver was found for, if it is still requested.
// When the cancellation cannot be written the job is retried later.
func (d *dispatcher) giveUp(ctx context.Context, j *job, now time.Time, lastErr error) {
	s := d.s
	reason := fmt.Sprintf("no driver available after %d attempts over %s", j.attempt, now.Sub(j.first).Round(time.Millisecond))
	if lastErr != nil {
		reason += fmt.Sprintf(" (last attempt: %v)", lastErr)
	}
	cancelled, err := do(ctx, s.actors, j.rideID, func(ctx context.Context) (bool, error) {
		r, err := s.load(ctx, j.rideID)
		if err != nil || r.State != lifecycle.Requested {
			return false, err
		}
		_, err = s.apply(ctx, r, lifecycle.Cancelled, reason)
		return err == nil, err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.tel.logf(ctx, slog.LevelWarn, "cancelling a ride without driver failed; will retry", "ride_id", j.rideID, "err", err)
		d.schedule(j, now.Add(s.cfg.Dispatch.RetryInterval))
		return
	}
	if cancelled {
		s.tel.inc(s.tel.abandoned)
		s.tel.logf(ctx, slog.LevelInfo, "ride cancelled: no driver", "ride_id", j.rideID, "reason", reason)
	}
}

type retryItem struct {
	due time.Time
	j   *job
}

// retryHeap is a min-heap of retries by due time (container/heap).
type retryHeap []retryItem

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, k int) bool { return h[i].due.Before(h[k].due) }
func (h retryHeap) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(retryItem)) }
func (h *retryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = retryItem{}
	*h = old[:len(old)-1]
	return it
}
