package order

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
)

func TestHappyPathOverHTTP(t *testing.T) {
	e := newEnv(t, envOpt{})
	r := e.createRide(t)
	if r.State != lifecycle.Matched || r.DriverID == "" || r.Price.AmountMinor != 2350 || r.Region != "sh-a" {
		t.Fatalf("created ride = %+v; want matched with a driver and the quoted price", r)
	}
	path := fmt.Sprintf("/v1/rides/%d", r.ID)
	steps := []struct {
		method, path string
		code         int
		state        lifecycle.State
	}{
		{"GET", path, 200, lifecycle.Matched},
		{"POST", path + "/start", 200, lifecycle.InProgress},
		{"POST", path + "/start", 200, lifecycle.InProgress},
		{"POST", path + "/complete", 200, lifecycle.Paid},
		{"POST", path + "/complete", 200, lifecycle.Paid},
		{"POST", path + "/start", 200, lifecycle.Paid},
		{"GET", path, 200, lifecycle.Paid},
	}
	for i, st := range steps {
		w := e.do(st.method, st.path, "")
		if w.Code != st.code {
			t.Fatalf("step %d %s %s: %d %s", i, st.method, st.path, w.Code, w.Body)
		}
		if got := decodeRide(t, w); got.State != st.state || got.ID != r.ID {
			t.Fatalf("step %d %s %s: ride %d in %s, want %d in %s", i, st.method, st.path, got.ID, got.State, r.ID, st.state)
		}
	}
	w := e.do("POST", path+"/cancel", "")
	if w.Code != http.StatusConflict {
		t.Fatalf("cancel a paid ride: %d %s", w.Code, w.Body)
	}
	var eb errorBody
	_ = json.Unmarshal(w.Body.Bytes(), &eb)
	if eb.From != "paid" || eb.To != "cancelled" || eb.Field != "state" {
		t.Fatalf("409 body = %+v; want from paid, to cancelled, field state", eb)
	}
	final, _, _ := e.store.GetRide(t.Context(), r.ID)
	if final.Version != 5 || final.ReceiptID == "" {
		t.Fatalf("final ride = %+v; want version 5 (create + 4 transitions) and a receipt", final)
	}
	if n := e.cache.count(r.ID); n != 5 {
		t.Errorf("cache invalidated %d times; want 5 (one per write)", n)
	}
	for _, edge := range []lifecycle.Edge{{From: "requested", To: "matched"}, {From: "matched", To: "in_progress"}, {From: "in_progress", To: "completed"}, {From: "completed", To: "paid"}} {
		if got := e.transitions(edge.From, edge.To); got != 1 {
			t.Errorf("transitions %s→%s = %v; want 1", edge.From, edge.To, got)
		}
	}
	if got := toFloat64(e.svc.tel.created); got != 1 {
		t.Errorf("orders created = %v; want 1", got)
	}
	charges, _ := e.payer.snapshot()
	if len(charges) != 1 || charges[0].IdempotencyKey != chargeKey(r.ID) || charges[0].AmountMinor != 2350 {
		t.Errorf("charges = %+v; want one of 2350 under %s", charges, chargeKey(r.ID))
	}
	if _, held := e.claims.Held(r.DriverID); held {
		t.Error("the driver is still held after the ride completed")
	}
}

func TestTransitions(t *testing.T) {
	// setup brings a fresh ride to a state; then action is applied.
	tests := map[string]struct {
		setup     []string // actions applied first
		action    string
		wantCode  int
		wantState lifecycle.State
		wantFrom  lifecycle.State
	}{
		"Completing a matched ride goes through in_progress and is paid.": {nil, "complete", 200, lifecycle.Paid, ""},
		"Cancelling a matched ride cancels it.":                           {nil, "cancel", 200, lifecycle.Cancelled, ""},
		"Cancelling twice answers the same cancelled ride.":               {[]string{"cancel"}, "cancel", 200, lifecycle.Cancelled, ""},
		"Completing a cancelled ride is 409.":                             {[]string{"cancel"}, "complete", 409, "", lifecycle.Cancelled},
		"Starting a cancelled ride is 409.":                               {[]string{"cancel"}, "start", 409, "", lifecycle.Cancelled},
		"Cancelling a ride in progress cancels it.":                       {[]string{"start"}, "cancel", 200, lifecycle.Cancelled, ""},
		"Cancelling a paid ride is 409.":                                  {[]string{"complete"}, "cancel", 409, "", lifecycle.Paid},
		"Starting a paid ride is a no-op: it already happened.":           {[]string{"complete"}, "start", 200, lifecycle.Paid, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOpt{})
			r := e.createRide(t)
			path := fmt.Sprintf("/v1/rides/%d/", r.ID)
			for _, a := range tc.setup {
				if w := e.do("POST", path+a, ""); w.Code != 200 {
					t.Fatalf("setup %s: %d %s", a, w.Code, w.Body)
				}
			}
			w := e.do("POST", path+tc.action, "")
			if w.Code != tc.wantCode {
				t.Fatalf("%s: %d %s; want %d", tc.action, w.Code, w.Body, tc.wantCode)
			}
			if tc.wantCode == 200 {
				if got := decodeRide(t, w); got.State != tc.wantState {
					t.Fatalf("state %s; want %s", got.State, tc.wantState)
				}
				return
			}
			var eb errorBody
			_ = json.Unmarshal(w.Body.Bytes(), &eb)
			if eb.From != string(tc.wantFrom) || eb.To == "" {
				t.Fatalf("409 body %+v; want from %s", eb, tc.wantFrom)
			}
			before, _, _ := e.store.GetRide(t.Context(), r.ID)
			if before.State != tc.wantFrom {
				t.Fatalf("a refused transition changed the ride to %s", before.State)
			}
		})
	}
}

// Hundreds of rides, each hit by concurrent transitions: every ride ends in
// one consistent state, every write is counted once and nothing is lost.
func TestConcurrentRidesHaveNoLostUpdates(t *testing.T) {
	e := newEnv(t, envOpt{})
	const n = 300
	rides := make([]Ride, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			w := e.do("POST", "/v1/rides", rideBody)
			if w.Code != 201 {
				t.Errorf("create: %d %s", w.Code, w.Body)
				return
			}
			rides[i] = decodeRide(t, w)
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	drivers := map[string]int64{}
	for _, r := range rides {
		if r.State != lifecycle.Matched {
			t.Fatalf("ride %d is %s; want matched", r.ID, r.State)
		}
		if other, dup := drivers[r.DriverID]; dup {
			t.Fatalf("driver %s serves rides %d and %d", r.DriverID, other, r.ID)
		}
		drivers[r.DriverID] = r.ID
	}
	// The first half: starts and completes race. The second half: a
	// cancel races them too.
	for i, r := range rides {
		path := fmt.Sprintf("/v1/rides/%d/", r.ID)
		actions := []string{"start", "complete", "complete", "start", "complete"}
		if i >= n/2 {
			actions = append(actions, "cancel")
		}
		for _, a := range actions {
			wg.Go(func() {
				w := e.do("POST", path+a, "")
				if w.Code != 200 && w.Code != 409 {
					t.Errorf("%s ride %d: %d %s", a, r.ID, w.Code, w.Body)
				}
			})
		}
	}
	wg.Wait()
	var paid, cancelled int
	for i, r := range rides {
		got, _, _ := e.store.GetRide(t.Context(), r.ID)
		switch got.State {
		case lifecycle.Paid:
			paid++
			if got.Version != 5 {
				t.Errorf("paid ride %d has version %d; want 5", r.ID, got.Version)
			}
		case lifecycle.Cancelled:
			cancelled++
			if i < n/2 {
				t.Errorf("ride %d was cancelled without a cancel", r.ID)
			}
			if got.Version < 3 || got.Version > 4 {
				t.Errorf("cancelled ride %d has version %d; want 3 or 4", r.ID, got.Version)
			}
		default:
			t.Errorf("ride %d ended %s; want paid or cancelled", r.ID, got.State)
		}
		if inv := e.cache.count(r.ID); int64(inv) != got.Version {
			t.Errorf("ride %d: %d invalidations for %d writes", r.ID, inv, got.Version)
		}
	}
	// Every applied transition is counted exactly once.
	var counted float64
	for _, edge := range lifecycle.Edges() {
		counted += e.transitions(edge.From, edge.To)
	}
	var writes int64
	for _, r := range rides {
		got, _, _ := e.store.GetRide(t.Context(), r.ID)
		writes += got.Version - 1
	}
	if int64(counted) != writes {
		t.Errorf("transitions counted %v; rides record %d", counted, writes)
	}
	if got := e.transitions(lifecycle.Completed, lifecycle.Paid); int(got) != paid {
		t.Errorf("completed→paid counted %v; %d rides paid", got, paid)
	}
	charges, _ := e.payer.snapshot()
	if len(charges) != paid {
		t.Errorf("%d charges for %d paid rides: a ride was charged twice", len(charges), paid)
	}
	if paid+cancelled != n {
		t.Errorf("paid %d + cancelled %d != %d", paid, cancelled, n)
	}
	waitFor(t, "every actor to exit", func() bool { return e.svc.actors.running() == 0 })
}

func TestIdempotencyKeyUnderConcurrency(t *testing.T) {
	e := newEnv(t, envOpt{})
	gate := make(chan struct{})
	e.quoter.fn = func(ctx2 contextT, req QuoteRequest) (Quote, error) {
		<-gate
		return Quote{PriceMinor: 900, Currency: "CNY", Surge: 1}, nil
	}
	const n = 50
	ids := make([]int64, n)
	codes := make([]int, n)
	replays := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			w := e.do("POST", "/v1/rides", rideBody, "Idempotency-Key", "k-1")
			codes[i], replays[i] = w.Code, w.Header().Get("Idempotent-Replayed")
			if w.Code == 201 {
				ids[i] = decodeRide(t, w).ID
			}
		})
	}
	waitFor(t, "the first request to reach pricing", func() bool { return e.quoter.calls.Load() >= 1 })
	close(gate)
	wg.Wait()
	replayed := 0
	for i := range n {
		if codes[i] != 201 || ids[i] != ids[0] {
			t.Fatalf("request %d: %d ride %d; want 201 with ride %d", i, codes[i], ids[i], ids[0])
		}
		if replays[i] == "true" {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Errorf("%d answers marked replayed; want %d", replayed, n-1)
	}
	if e.ids.calls.Load() != 1 || e.quoter.calls.Load() != 1 || e.store.Len() != 1 {
		t.Errorf("ids %d, quotes %d, rides %d; want one of each", e.ids.calls.Load(), e.quoter.calls.Load(), e.store.Len())
	}
	if got := toFloat64(e.svc.tel.created); got != 1 {
		t.Errorf("orders created = %v; want 1", got)
	}

	// The same key for a different ride is refused, naming the header.
	w := e.do("POST", "/v1/rides", strings.Replace(rideBody, "31.23", "30.5", 1), "Idempotency-Key", "k-1")
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), `"field":"Idempotency-Key"`) {
		t.Fatalf("key reuse: %d %s", w.Code, w.Body)
	}
	// Another rider may use the same key.
	other := strings.Replace(rideBody, `"r1"`, `"r2"`, 1)
	if w := e.do("POST", "/v1/rides", other, "Idempotency-Key", "k-1"); w.Code != 201 || decodeRide(t, w).ID == ids[0] {
		t.Fatalf("another rider's key: %d %s", w.Code, w.Body)
	}
}

func TestIdempotencyAfterAFailureAndAfterARestart(t *testing.T) {
	e := newEnv(t, envOpt{})
	down := true
	var mu sync.Mutex
	e.quoter.fn = func(contextT, QuoteRequest) (Quote, error) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return Quote{}, fmt.Errorf("pricing down (test)")
		}
		return Quote{PriceMinor: 100, Currency: "CNY", Surge: 1}, nil
	}
	w := e.do("POST", "/v1/rides", rideBody, "Idempotency-Key", "k-2")
	if w.Code != 503 || !strings.Contains(w.Body.String(), ReasonPricing) || e.store.Len() != 0 {
		t.Fatalf("pricing down: %d %s, %d rides written", w.Code, w.Body, e.store.Len())
	}
	mu.Lock()
	down = false
	mu.Unlock()
	first := e.createRide(t, "Idempotency-Key", "k-2")

	// A new process over the same store (a restart) finds the ride by key.
	e2 := newEnv(t, envOpt{store: e.store})
	w = e2.do("POST", "/v1/rides", rideBody, "Idempotency-Key", "k-2")
	if w.Code != 201 || decodeRide(t, w).ID != first.ID || w.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("after restart: %d %s; want ride %d replayed", w.Code, w.Body, first.ID)
	}
	if e2.ids.calls.Load() != 0 {
		t.Error("the restarted service took a new id for a replay")
	}
}

// A gateway that times out and retries in the same region gets the ride
// the first request goes on to create, not an error.
func TestIdempotentLeaderFinishesWhenItsCallerLeaves(t *testing.T) {
	e := newEnv(t, envOpt{})
	gate := make(chan struct{})
	e.quoter.fn = func(ctx contextT, req QuoteRequest) (Quote, error) {
		<-gate
		if err := ctx.Err(); err != nil {
			return Quote{}, err
		}
		return Quote{PriceMinor: 500, Currency: "CNY", Surge: 1}, nil
	}
	req := CreateRequest{RiderID: "r9", Pickup: LatLng{Lat: 31, Lng: 121}, Dropoff: LatLng{Lat: 31.1, Lng: 121.1}, IdempotencyKey: "k-9"}
	leaderCtx, cancel := context.WithCancel(t.Context())
	leaderDone := make(chan error, 1)
	go func() { _, _, err := e.svc.Create(leaderCtx, req); leaderDone <- err }()
	waitFor(t, "the first request to reach pricing", func() bool { return e.quoter.calls.Load() == 1 })
	cancel() // the caller gave up
	type res struct {
		r        Ride
		replayed bool
		err      error
	}
	follower := make(chan res, 1)
	go func() { r, rep, err := e.svc.Create(t.Context(), req); follower <- res{r, rep, err} }()
	close(gate)
	got := <-follower
	if got.err != nil || !got.replayed || got.r.ID == 0 {
		t.Fatalf("retry got %+v; want the first request's ride, replayed", got)
	}
	<-leaderDone
	if e.store.Len() != 1 {
		t.Fatalf("%d rides; want 1", e.store.Len())
	}
}
