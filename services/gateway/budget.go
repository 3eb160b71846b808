package gateway

import (
	"sync"
	"time"
)

// budgetSlots is the number of buckets the retry budget's window is cut into.
const budgetSlots = 10

// retryBudget caps retries as a share of requests over a sliding window (as
// Finagle's and Envoy's retry budgets do): a retry is allowed while the
// window's retries are fewer than ratio × its requests plus a floor of
// minPerSecond × the window's seconds. With ratio 0.1 that is at most one
// retry per ten requests, so a dying region adds at most 10 % load to the
// others at high traffic; the floor (Finagle's minRetriesPerSec) keeps
// retries possible at low traffic, where a region that dies takes several
// requests before it is ejected and ten requests a window would allow
// only one retry. The window slides in tenths.
//
// Safe for concurrent use.
type retryBudget struct {
	ratio float64
	floor float64 // retries always allowed per window
	slot  time.Duration

	mu      sync.Mutex
	buckets [budgetSlots]budgetBucket
}

type budgetBucket struct {
	epoch             int64 // the slot number this bucket counts; stale when older than the window
	requests, retries int64
}

func newRetryBudget(ratio float64, window time.Duration, minPerSecond float64) *retryBudget {
	slot := window / budgetSlots
	if slot <= 0 {
		slot = 1
	}
	return &retryBudget{ratio: ratio, floor: max(minPerSecond, 0) * window.Seconds(), slot: slot}
}

// bucketLocked returns the bucket of now, emptied when it last counted an
// older slot.
func (b *retryBudget) bucketLocked(epoch int64) *budgetBucket {
	k := &b.buckets[epoch%budgetSlots]
	if k.epoch != epoch {
		*k = budgetBucket{epoch: epoch}
	}
	return k
}

// request counts one request.
func (b *retryBudget) request(now time.Time) {
	epoch := now.UnixNano() / int64(b.slot)
	b.mu.Lock()
	b.bucketLocked(epoch).requests++
	b.mu.Unlock()
}

// tryRetry reports whether one more retry fits the budget and, if it does,
// counts it.
func (b *retryBudget) tryRetry(now time.Time) bool {
	epoch := now.UnixNano() / int64(b.slot)
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.bucketLocked(epoch)
	var requests, retries int64
	for i := range b.buckets {
		if k := &b.buckets[i]; k.epoch > epoch-budgetSlots {
			requests += k.requests
			retries += k.retries
		}
	}
	if float64(retries) >= b.ratio*float64(requests)+b.floor {
		return false
	}
	cur.retries++
	return true
}
