package location

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// recordingPublisher records what it publishes; it fails while failing is
// set.
type recordingPublisher struct {
	mu      sync.Mutex
	got     []string
	batches int
	failing bool
}

func (p *recordingPublisher) Publish(_ context.Context, pos Position) error {
	return p.PublishBatch(context.Background(), []Position{pos})
}

func (p *recordingPublisher) PublishBatch(_ context.Context, ps []Position) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing {
		return errors.New("redis down")
	}
	p.batches++
	for _, pos := range ps {
		p.got = append(p.got, pos.DriverID)
	}
	return nil
}

func (p *recordingPublisher) published() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func newTestQueue(t *testing.T, size int, policy QueuePolicy, pub positionPublisher) (*publishQueue, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry(), "eu", "s", "g")
	if err != nil {
		t.Fatal(err)
	}
	return newPublishQueue(size, policy, pub, 8, time.Second, m, quietLogger()), m
}

func TestPublishQueuePolicies(t *testing.T) {
	tests := map[string]struct {
		policy   QueuePolicy
		accepted []bool
		queued   []string
	}{
		"A full queue under drop_oldest drops its oldest position for the new one.": {
			policy: DropOldest, accepted: []bool{true, true, true}, queued: []string{"p2", "p3"},
		},
		"A full queue under reject drops the new position.": {
			policy: Reject, accepted: []bool{true, true, false}, queued: []string{"p1", "p2"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q, m := newTestQueue(t, 2, tc.policy, &recordingPublisher{})
			for i, want := range tc.accepted {
				if got := q.offer(Position{DriverID: []string{"p1", "p2", "p3"}[i]}); got != want {
					t.Fatalf("offer %d = %v, want %v", i+1, got, want)
				}
			}
			var queued []string
			for len(q.ch) > 0 {
				queued = append(queued, (<-q.ch).DriverID)
			}
			if !slices.Equal(queued, tc.queued) {
				t.Fatalf("queued %v, want %v", queued, tc.queued)
			}
			if v := valueOf(m.rejected[catalog.LocationRejectQueueFull]); v != 1 {
				t.Fatalf("rejected{queue_full} = %v, want 1", v)
			}
		})
	}
}

func TestPublishQueueWorkersBatchAndDrain(t *testing.T) {
	pub := &recordingPublisher{}
	q, m := newTestQueue(t, 100, DropOldest, pub)
	for i := range 20 {
		q.offer(Position{DriverID: string(rune('a' + i))})
	}
	stop := make(chan struct{})
	close(stop) // stopped before starting: the workers only drain
	q.run(stop, 2, 5*time.Second)
	if got := len(pub.published()); got != 20 {
		t.Fatalf("drained %d of 20", got)
	}
	if pub.batches > 4 {
		t.Fatalf("%d batches for 20 positions with batch size 8", pub.batches)
	}
	if v := valueOf(m.published); v != 20 {
		t.Fatalf("published = %v", v)
	}
}

func TestPublishErrorsAreCounted(t *testing.T) {
	pub := &recordingPublisher{failing: true}
	q, m := newTestQueue(t, 100, DropOldest, pub)
	for range 3 {
		q.offer(Position{DriverID: "d"})
	}
	stop := make(chan struct{})
	close(stop)
	q.run(stop, 1, 5*time.Second)
	if v := valueOf(m.rejected[catalog.LocationRejectPublishError]); v != 3 {
		t.Fatalf("rejected{publish_error} = %v, want 3", v)
	}
	if v := valueOf(m.published); v != 0 {
		t.Fatalf("published = %v", v)
	}
}
