package pricing

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for deterministic tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestDemandWindowSlides(t *testing.T) {
	clock := newFakeClock()
	d := newDemandWindow(time.Minute, 6) // 10 s buckets
	for i := 1; i <= 3; i++ {
		if got := d.add("u4pruy", clock.Now()); got != i {
			t.Fatalf("add %d returned %d", i, got)
		}
	}
	if got := d.count("other", clock.Now()); got != 0 {
		t.Fatalf("another cell counts %d", got)
	}
	clock.Advance(30 * time.Second)
	d.add("u4pruy", clock.Now())
	if got := d.count("u4pruy", clock.Now()); got != 4 {
		t.Fatalf("after 30 s: %d, want 4", got)
	}
	// The first three fall out once their bucket leaves the window
	// (between 50 and 60 s after them).
	clock.Advance(30 * time.Second)
	if got := d.count("u4pruy", clock.Now()); got != 1 {
		t.Fatalf("after 60 s: %d, want 1", got)
	}
	if left := d.sweep(clock.Now()); left != 1 {
		t.Fatalf("sweep kept %d cells, want 1", left)
	}
	clock.Advance(time.Minute)
	if got := d.count("u4pruy", clock.Now()); got != 0 {
		t.Fatalf("after 120 s: %d, want 0", got)
	}
	if left := d.sweep(clock.Now()); left != 0 {
		t.Fatalf("sweep kept %d cells, want 0", left)
	}
}

func TestDemandWindowReusesStaleSlots(t *testing.T) {
	clock := newFakeClock()
	d := newDemandWindow(time.Minute, 6)
	for range 5 {
		d.add("c", clock.Now())
	}
	// Exactly one window later the same slot comes round again: its old
	// count must not leak into the new bucket.
	clock.Advance(time.Minute)
	if got := d.add("c", clock.Now()); got != 1 {
		t.Fatalf("got %d, want 1", got)
	}
}

func TestDemandWindowConcurrentAdds(t *testing.T) {
	clock := newFakeClock()
	d := newDemandWindow(time.Minute, 6)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 500 {
				d.add("c", clock.Now())
				d.add("other-"+string(rune('a'+g)), clock.Now())
			}
		})
	}
	wg.Wait()
	if got := d.count("c", clock.Now()); got != 4000 {
		t.Fatalf("got %d, want 4000", got)
	}
}
