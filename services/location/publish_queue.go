package location

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// QueuePolicy says what the publish queue does with a position when it is
// full.
type QueuePolicy string

// Queue policies.
const (
	// DropOldest drops the oldest queued position to make room: positions
	// are state, and the newest is worth more (the default).
	DropOldest QueuePolicy = "drop_oldest"
	// Reject drops the new position.
	Reject QueuePolicy = "reject"
)

// positionPublisher is what the publish queue needs of a Stream.
type positionPublisher interface {
	Publish(ctx context.Context, p Position) error
}

// publishQueue is the bounded queue between the WebSocket readers and the
// stream: offer never blocks, and workers publish in batches. Every
// position dropped is counted as rejected with reason queue_full.
type publishQueue struct {
	ch      chan Position
	policy  QueuePolicy
	pub     positionPublisher
	batch   int
	timeout time.Duration
	m       *Metrics
	errLog  *logLimiter
}

func newPublishQueue(size int, policy QueuePolicy, pub positionPublisher, batch int, timeout time.Duration, m *Metrics, log *slog.Logger) *publishQueue {
	q := &publishQueue{ch: make(chan Position, size), policy: policy, pub: pub, batch: batch, timeout: timeout, m: m,
		errLog: &logLimiter{log: log, every: 5 * time.Second}}
	m.queueDepth.set(func() float64 { return float64(len(q.ch)) })
	return q
}

// offer queues p and reports whether p itself was queued. Under DropOldest
// a full queue gives up its oldest position and p is queued.
func (q *publishQueue) offer(p Position) bool {
	select {
	case q.ch <- p:
		return true
	default:
	}
	if q.policy == Reject {
		q.m.rejected[catalog.LocationRejectQueueFull].Inc()
		return false
	}
	for range 4 { // other readers race for the freed slot; a few tries settle it
		select {
		case <-q.ch:
			q.m.rejected[catalog.LocationRejectQueueFull].Inc()
		default:
		}
		select {
		case q.ch <- p:
			return true
		default:
		}
	}
	q.m.rejected[catalog.LocationRejectQueueFull].Inc()
	return false
}

// run publishes with n workers until stop is closed, then drains what is
// queued for at most drain.
func (q *publishQueue) run(stop <-chan struct{}, n int, drain time.Duration) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { q.work(stop, drain) })
	}
	wg.Wait()
}

func (q *publishQueue) work(stop <-chan struct{}, drain time.Duration) {
	batch := make([]Position, 0, q.batch)
	for {
		select {
		case <-stop:
			deadline := time.Now().Add(drain)
			for time.Now().Before(deadline) {
				select {
				case p := <-q.ch:
					q.publish(q.fill(append(batch[:0], p)))
				default:
					return
				}
			}
			return
		case p := <-q.ch:
			q.publish(q.fill(append(batch[:0], p)))
		}
	}
}

// fill adds queued positions to batch without waiting, up to the batch
// size.
func (q *publishQueue) fill(batch []Position) []Position {
	for len(batch) < cap(batch) {
		select {
		case p := <-q.ch:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

func (q *publishQueue) publish(batch []Position) {
	ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
	defer cancel()
	var err error
	if bp, ok := q.pub.(batchPublisher); ok && len(batch) > 1 {
		err = bp.PublishBatch(ctx, batch)
	} else {
		for i, p := range batch {
			if err = q.pub.Publish(ctx, p); err != nil {
				q.m.published.Add(float64(i))
				batch = batch[i:]
				break
			}
		}
	}
	if err != nil {
		q.m.rejected[catalog.LocationRejectPublishError].Add(float64(len(batch)))
		q.errLog.warn("publishing positions failed; they are dropped", "positions", len(batch), "err", err)
		return
	}
	q.m.published.Add(float64(len(batch)))
}

// logLimiter logs a repeated warning at most once per interval, with the
// number of occurrences suppressed since the last one.
type logLimiter struct {
	log        *slog.Logger
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed atomic.Int64
}

func (l *logLimiter) warn(msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last) < l.every {
		l.mu.Unlock()
		l.suppressed.Add(1)
		return
	}
	l.last = now
	l.mu.Unlock()
	if n := l.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	l.log.Warn(msg, args...)
}

// String implements fmt.Stringer for flags and logs.
func (p QueuePolicy) String() string { return string(p) }

func (p QueuePolicy) validate() error {
	switch p {
	case DropOldest, Reject:
		return nil
	}
	return fmt.Errorf("queue policy %q is unknown; use %q or %q", string(p), DropOldest, Reject)
}
