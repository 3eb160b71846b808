package order

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestActorsAreBoundedAndExitWhenIdle(t *testing.T) {
	var mu sync.Mutex
	active := 0
	a := newActors(2, 2, func(d float64) { mu.Lock(); active += int(d); mu.Unlock() })
	gate := make(chan struct{})
	started := make(chan struct{}, 2)
	block := func() { started <- struct{}{}; <-gate }
	var order []int
	record := func(i int) func() { return func() { mu.Lock(); order = append(order, i); mu.Unlock() } }

	if err := a.send(1, block); err != nil {
		t.Fatal(err)
	}
	if err := a.send(2, block); err != nil {
		t.Fatal(err)
	}
	if err := a.send(3, block); !errors.Is(err, errBusy) {
		t.Fatalf("a third actor: %v; want errBusy", err)
	}
	<-started
	<-started // both actors took their first message out of the mailbox
	// Ride 1's mailbox holds two more, in order; a third is refused.
	for i := range 2 {
		if err := a.send(1, record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.send(1, record(9)); !errors.Is(err, errBusy) {
		t.Fatalf("a full mailbox: %v; want errBusy", err)
	}
	if a.running() != 2 {
		t.Fatalf("%d actors; want 2", a.running())
	}
	close(gate)
	waitFor(t, "idle actors to exit", func() bool { return a.running() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(order, []int{0, 1}) || active != 0 {
		t.Fatalf("ran %v with %d active; want [0 1] and 0", order, active)
	}
}

// One ride's messages never run at the same time, whoever sends them.
func TestOneRideOneOwner(t *testing.T) {
	a := newActors(100, 1000, func(float64) {})
	var inside, maxInside, ran int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			_, err := do(context.Background(), a, 7, func(context.Context) (int, error) {
				mu.Lock()
				inside++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				time.Sleep(10 * time.Microsecond) // widen the window a race would need
				mu.Lock()
				inside--
				ran++
				mu.Unlock()
				return 0, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if maxInside != 1 || ran != 200 {
		t.Fatalf("at most %d at once over %d runs; want 1 and 200", maxInside, ran)
	}
}

func TestDoReturnsWhenTheCallerGivesUp(t *testing.T) {
	a := newActors(10, 10, func(float64) {})
	gate := make(chan struct{})
	defer close(gate)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := do(ctx, a, 1, func(context.Context) (int, error) { <-gate; return 1, nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want context.Canceled", err)
	}
}
