package order

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
)

func noWait(c *Config) { c.Dispatch.MatchWait = -1 }

// A full dispatch queue refuses a new ride at once, before pricing or ids
// are asked and before anything is written; the queued rides are matched
// once workers run.
func TestDispatchQueueSaturation(t *testing.T) {
	e := newEnv(t, envOpt{noRun: true, cfg: func(c *Config) { noWait(c); c.Dispatch.QueueSize = 2 }})
	queued := []Ride{e.createRide(t), e.createRide(t)}
	for _, r := range queued {
		if r.State != lifecycle.Requested {
			t.Fatalf("queued ride is %s; want requested", r.State)
		}
	}
	start := time.Now()
	w := e.do("POST", "/v1/rides", rideBody)
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusing took %s; it must not wait for the queue", took)
	}
	if w.Code != 503 || !strings.Contains(w.Body.String(), ReasonSaturated) || w.Header().Get("Retry-After") == "" {
		t.Fatalf("third ride: %d %s (Retry-After %q); want 503 %s with Retry-After", w.Code, w.Body, w.Header().Get("Retry-After"), ReasonSaturated)
	}
	if e.store.Len() != 2 || e.ids.calls.Load() != 2 || e.quoter.calls.Load() != 2 {
		t.Errorf("the refused ride reached a dependency: rides %d, ids %d, quotes %d", e.store.Len(), e.ids.calls.Load(), e.quoter.calls.Load())
	}
	if v := toFloat64(e.svc.tel.rejected); v != 1 {
		t.Errorf("rejected = %v; want 1", v)
	}
	if v := toFloat64(e.svc.tel.queued); v != 2 {
		t.Errorf("queued gauge = %v; want 2", v)
	}
	e.run(t)
	for _, r := range queued {
		waitFor(t, fmt.Sprintf("ride %d to be matched", r.ID), func() bool {
			got, _, _ := e.store.GetRide(t.Context(), r.ID)
			return got.State == lifecycle.Matched
		})
	}
	if w := e.do("POST", "/v1/rides", rideBody); w.Code != 201 {
		t.Fatalf("after the queue drained: %d %s", w.Code, w.Body)
	}
}

// With every worker stuck on a slow driver index, the pool holds Workers
// attempts plus QueueSize waiting rides, and refuses the next at once.
func TestDispatchPoolBoundWithBusyWorkers(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, envOpt{cfg: func(c *Config) { noWait(c); c.Dispatch.Workers = 2; c.Dispatch.QueueSize = 3 }})
	e.drivers.set(func(ctx context.Context, p LatLng, n int) ([]Driver, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	for i := range 5 {
		if w := e.do("POST", "/v1/rides", rideBody); w.Code != 201 {
			t.Fatalf("ride %d: %d %s", i, w.Code, w.Body)
		}
		if i == 1 {
			waitFor(t, "both workers to be busy", func() bool { return e.drivers.calls.Load() == 2 })
		}
	}
	if w := e.do("POST", "/v1/rides", rideBody); w.Code != 503 {
		t.Fatalf("sixth ride: %d %s; want 503", w.Code, w.Body)
	}
	close(release)
}

// A ride without a driver stays requested and is retried every
// RetryInterval (on the injected clock) until MaxAttempts, then cancelled
// with a reason.
func TestDispatchRetriesThenGivesUp(t *testing.T) {
	e := newEnv(t, envOpt{noRun: true, cfg: func(c *Config) {
		noWait(c)
		c.Dispatch.MaxAttempts, c.Dispatch.RetryInterval, c.Dispatch.MaxWait = 3, 2*time.Second, time.Minute
	}})
	e.drivers.set(noDrivers)
	r := e.createRide(t)
	for attempt := 1; attempt <= 3; attempt++ {
		if n := e.drain(); n != 1 {
			t.Fatalf("attempt %d: ran %d jobs; want 1", attempt, n)
		}
		got, _, _ := e.store.GetRide(t.Context(), r.ID)
		if attempt < 3 {
			if got.State != lifecycle.Requested || e.svc.disp.waiting() != 1 {
				t.Fatalf("after attempt %d: %s, %d waiting; want requested and one retry", attempt, got.State, e.svc.disp.waiting())
			}
			if n := e.svc.disp.dispatchDue(e.clock.Now()); n != 0 {
				t.Fatalf("a retry ran before its interval")
			}
			e.clock.Advance(2 * time.Second)
			if n := e.svc.disp.dispatchDue(e.clock.Now()); n != 1 {
				t.Fatalf("the retry did not run after its interval")
			}
			continue
		}
		if got.State != lifecycle.Cancelled || !strings.Contains(got.Reason, "no driver available after 3 attempts") {
			t.Fatalf("after the last attempt: %s %q", got.State, got.Reason)
		}
	}
	if e.svc.disp.waiting() != 0 || e.drivers.calls.Load() != 3 {
		t.Errorf("%d retries left, %d index calls; want 0 and 3", e.svc.disp.waiting(), e.drivers.calls.Load())
	}
	if v := toFloat64(e.svc.tel.abandoned); v != 1 {
		t.Errorf("abandoned = %v; want 1", v)
	}
	if v := e.transitions(lifecycle.Requested, lifecycle.Cancelled); v != 1 {
		t.Errorf("requested→cancelled = %v; want 1", v)
	}
}

func TestDispatchGivesUpAfterMaxWait(t *testing.T) {
	e := newEnv(t, envOpt{noRun: true, cfg: func(c *Config) {
		noWait(c)
		c.Dispatch.MaxAttempts, c.Dispatch.RetryInterval, c.Dispatch.MaxWait = 100, 2*time.Second, 5*time.Second
	}})
	e.drivers.set(noDrivers)
	r := e.createRide(t)
	attempts := 0
	for range 10 {
		attempts += e.drain()
		if got, _, _ := e.store.GetRide(t.Context(), r.ID); got.State == lifecycle.Cancelled {
			break
		}
		e.clock.Advance(2 * time.Second)
		e.svc.disp.dispatchDue(e.clock.Now())
	}
	// Attempts at 0 s, 2 s, 4 s (still under 5 s: retry) and 6 s (over: give up).
	if attempts != 4 {
		t.Fatalf("%d attempts; want 4", attempts)
	}
	got, _, _ := e.store.GetRide(t.Context(), r.ID)
	if got.State != lifecycle.Cancelled || !strings.Contains(got.Reason, "over 6s") {
		t.Fatalf("ride %s %q; want cancelled after 6s", got.State, got.Reason)
	}
}

func TestDispatchRetryScenarios(t *testing.T) {
	tests := map[string]struct {
		// between runs after the first, failed, attempt.
		between   func(e *env, r Ride)
		wantState lifecycle.State
		wantCalls int64 // index calls
	}{
		"A driver found on a retry matches the ride.": {
			between: func(e *env, r Ride) {
				e.drivers.set(func(context.Context, LatLng, int) ([]Driver, error) { return []Driver{{ID: "late"}}, nil })
			},
			wantState: lifecycle.Matched, wantCalls: 2,
		},
		"A ride cancelled while waiting is dropped without asking the index.": {
			between: func(e *env, r Ride) {
				if _, err := e.svc.Cancel(context.Background(), r.ID, ""); err != nil {
					panic(err)
				}
			},
			wantState: lifecycle.Cancelled, wantCalls: 1,
		},
		"A driver held by another ride is skipped.": {
			between: func(e *env, r Ride) {
				_, _ = e.claims.Claim(context.Background(), "busy", 1)
				e.drivers.set(func(context.Context, LatLng, int) ([]Driver, error) {
					return []Driver{{ID: "busy"}, {ID: "free"}}, nil
				})
			},
			wantState: lifecycle.Matched, wantCalls: 2,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOpt{noRun: true, cfg: noWait})
			e.drivers.set(noDrivers)
			r := e.createRide(t)
			e.drain()
			tc.between(e, r)
			e.clock.Advance(2 * time.Second)
			e.svc.disp.dispatchDue(e.clock.Now())
			e.drain()
			got, _, _ := e.store.GetRide(t.Context(), r.ID)
			if got.State != tc.wantState || e.drivers.calls.Load() != tc.wantCalls {
				t.Fatalf("ride %s after %d index calls; want %s after %d", got.State, e.drivers.calls.Load(), tc.wantState, tc.wantCalls)
			}
			if got.State == lifecycle.Matched && got.DriverID == "busy" {
				t.Fatal("matched a driver another ride holds")
			}
			if e.svc.disp.waiting() != 0 {
				t.Fatalf("%d retries still waiting", e.svc.disp.waiting())
			}
		})
	}
}

// Index errors and injected dispatch faults count as failed attempts
// (outcome error on match_driver) and are retried.
func TestDispatchFailuresAreRetried(t *testing.T) {
	in := &faults.Injector{}
	e := newEnv(t, envOpt{noRun: true, cfg: func(c *Config) { noWait(c); c.Faults = in }})
	_ = in.Set(faults.State{Services: map[string]faults.ServiceFaults{"dispatch": {ErrorRate: 1}}})
	r := e.createRide(t)
	e.drain()
	in.Clear()
	e.drivers.set(func(context.Context, LatLng, int) ([]Driver, error) { return nil, errors.New("index down (test)") })
	e.clock.Advance(2 * time.Second)
	e.svc.disp.dispatchDue(e.clock.Now())
	e.drain()
	e.drivers.set(nil)
	e.clock.Advance(2 * time.Second)
	e.svc.disp.dispatchDue(e.clock.Now())
	e.drain()
	got, _, _ := e.store.GetRide(t.Context(), r.ID)
	if got.State != lifecycle.Matched {
		t.Fatalf("ride %s; want matched on the third attempt", got.State)
	}
	if n := histCount(t, e, "dispatch", "match_driver", "503", "error"); n != 2 {
		t.Errorf("match_driver errors = %d; want 2", n)
	}
	if n := histCount(t, e, "dispatch", "match_driver", "200", "ok"); n != 1 {
		t.Errorf("match_driver matches = %d; want 1", n)
	}
}

// Many rides compete for a few drivers: a driver never serves two rides,
// and drivers freed by completed rides serve the waiting ones.
func TestDriversAreNeverDoubleClaimed(t *testing.T) {
	pool := []Driver{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}, {ID: "e"}}
	e := newEnv(t, envOpt{cfg: func(c *Config) {
		noWait(c)
		c.Dispatch.MaxAttempts, c.Dispatch.RetryInterval, c.Dispatch.MaxWait = 1000, time.Second, time.Hour
	}})
	e.drivers.set(func(context.Context, LatLng, int) ([]Driver, error) { return pool, nil })
	const n = 40
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i] = e.createRide(t).ID })
	}
	wg.Wait()
	done := map[int64]bool{}
	for round := 0; len(done) < n; round++ {
		if round > n {
			t.Fatalf("only %d of %d rides served", len(done), n)
		}
		waitFor(t, "the free drivers to be matched", func() bool {
			return countMatched(t, e, ids, done) == min(len(pool), n-len(done))
		})
		serving := map[string]int64{}
		for _, id := range ids {
			r, _, _ := e.store.GetRide(t.Context(), id)
			if r.State != lifecycle.Matched {
				continue
			}
			if other, dup := serving[r.DriverID]; dup {
				t.Fatalf("driver %s serves rides %d and %d", r.DriverID, other, id)
			}
			serving[r.DriverID] = id
			if held, _ := e.claims.Held(r.DriverID); held != id {
				t.Fatalf("driver %s is held for ride %d, matched to %d", r.DriverID, held, id)
			}
		}
		for _, id := range serving {
			if _, err := e.svc.Complete(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			done[id] = true
		}
		e.clock.Advance(time.Second) // the retries are due at the next tick
	}
}

func countMatched(t *testing.T, e *env, ids []int64, done map[int64]bool) int {
	n := 0
	for _, id := range ids {
		if r, _, _ := e.store.GetRide(t.Context(), id); r.State == lifecycle.Matched && !done[id] {
			n++
		}
	}
	return n
}
