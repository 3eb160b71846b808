package scenario_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/loadgen/scenario"
	"github.com/carpoolsla/carpoolsla/services/gateway"
)

func TestHeadersAreTheGatewaysOwn(t *testing.T) {
	if scenario.HeaderRiderID != gateway.HeaderRiderID || scenario.HeaderIdempotencyKey != gateway.HeaderIdempotencyKey {
		t.Errorf("the ride scenario's headers drifted from the gateway's")
	}
}

// fakeOrders is an order API whose answers the test scripts.
type fakeOrders struct {
	mu       sync.Mutex
	state    string // state a created ride has
	getState string // state a GET answers
	notFound int    // how many reads answer 404 first
	failKind int    // status create answers, 0 for 201
	calls    []string
	keys     map[string]bool
}

func (f *fakeOrders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	if r.Header.Get(scenario.HeaderRiderID) == "" {
		http.Error(w, "no rider", 400)
		return
	}
	ride := func(state string) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"id": "42", "state": state})
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/rides":
		if f.failKind != 0 {
			http.Error(w, `{"error":"scripted"}`, f.failKind)
			return
		}
		key := r.Header.Get(scenario.HeaderIdempotencyKey)
		if key == "" || f.keys[key] {
			http.Error(w, "missing or repeated key "+key, 400)
			return
		}
		f.keys[key] = true
		var body struct {
			RiderID string             `json:"rider_id"`
			Pickup  map[string]float64 `json:"pickup"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.RiderID == "" || body.Pickup["lat"] == 0 {
			http.Error(w, "bad body", 400)
			return
		}
		w.WriteHeader(http.StatusCreated)
		ride(f.state)
	case f.notFound > 0:
		f.notFound--
		http.Error(w, `{"error":"unknown ride","field":"id"}`, 404)
	case r.Method == "GET":
		ride(f.getState)
	case strings.HasSuffix(r.URL.Path, "/start"):
		ride("in_progress")
	case strings.HasSuffix(r.URL.Path, "/complete"):
		ride("payment_failed")
	case strings.HasSuffix(r.URL.Path, "/cancel"):
		ride("cancelled")
	}
}

func runOne(t *testing.T, s loadgen.Scenario, n int) *loadgen.Summary {
	t.Helper()
	ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(float64(n)*10, 100*time.Millisecond),
		Scenarios: []loadgen.Weighted{{Scenario: s, Weight: 1}}, Workers: n, MaxWorkers: n, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	sum := ex.Summary()
	if sum.Iterations != int64(n) {
		t.Fatalf("%d iterations, want %d", sum.Iterations, n)
	}
	return sum
}

func TestRideFlowPaths(t *testing.T) {
	cases := map[string]struct {
		orders     *fakeOrders
		wantCalls  []string
		wantEvents map[string]int64
		wantErrors map[string]int64
	}{
		"A matched ride is started and completed; payment_failed is an event, not an error.": {
			orders:     &fakeOrders{state: "matched"},
			wantCalls:  []string{"POST /v1/rides", "POST /v1/rides/42/start", "POST /v1/rides/42/complete"},
			wantEvents: map[string]int64{scenario.EventRidePaymentFailed: 1},
		},
		"An unmatched ride is read until the polls run out, then cancelled.": {
			orders:     &fakeOrders{state: "requested", getState: "requested"},
			wantCalls:  []string{"POST /v1/rides", "GET /v1/rides/42", "GET /v1/rides/42", "GET /v1/rides/42", "POST /v1/rides/42/cancel"},
			wantEvents: map[string]int64{scenario.EventRideUnmatched: 1},
		},
		"A ride matched on a later read goes on; a 404 from a region not yet replicated is retried.": {
			orders: &fakeOrders{state: "requested", getState: "matched", notFound: 2},
			wantCalls: []string{"POST /v1/rides", "GET /v1/rides/42", "GET /v1/rides/42", "GET /v1/rides/42",
				"POST /v1/rides/42/start", "POST /v1/rides/42/complete"},
			wantEvents: map[string]int64{scenario.EventRideStaleRead: 2, scenario.EventRidePaymentFailed: 1},
		},
		"A ride that is never found is an http_4xx error after the retries.": {
			orders:     &fakeOrders{state: "requested", notFound: 100},
			wantCalls:  []string{"POST /v1/rides", "GET /v1/rides/42", "GET /v1/rides/42", "GET /v1/rides/42", "GET /v1/rides/42"},
			wantEvents: map[string]int64{scenario.EventRideStaleRead: 3},
			wantErrors: map[string]int64{loadgen.KindHTTP4xx: 1},
		},
		"A refused creation is an http_5xx error and ends the iteration.": {
			orders:     &fakeOrders{failKind: 503},
			wantCalls:  []string{"POST /v1/rides"},
			wantErrors: map[string]int64{loadgen.KindHTTP5xx: 1},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			c.orders.keys = map[string]bool{}
			srv := httptest.NewServer(c.orders)
			defer srv.Close()
			s := runOne(t, scenario.NewRide(scenario.Options{Target: srv.URL, RunID: "t", MatchPoll: time.Millisecond, StalePause: time.Millisecond}), 1)
			c.orders.mu.Lock()
			calls := c.orders.calls
			c.orders.mu.Unlock()
			if fmt.Sprint(calls) != fmt.Sprint(c.wantCalls) {
				t.Errorf("calls %v\nwant  %v", calls, c.wantCalls)
			}
			sc := s.Scenarios["ride"]
			if fmt.Sprint(sc.Events) != fmt.Sprint(nilIfEmpty(c.wantEvents)) {
				t.Errorf("events %v, want %v", sc.Events, c.wantEvents)
			}
			if fmt.Sprint(sc.ErrorsByKind) != fmt.Sprint(nilIfEmpty(c.wantErrors)) {
				t.Errorf("errors %v, want %v", sc.ErrorsByKind, c.wantErrors)
			}
		})
	}
}

func nilIfEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUnreachableServicesGiveTheirErrorKinds(t *testing.T) {
	addr := closedAddr(t)
	q, err := scenario.NewQuote(scenario.Options{PricingAddrs: []string{addr}, RunID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if s := runOne(t, q, 2); s.ErrorsByKind["grpc_unavailable"] != 2 {
		t.Errorf("quote from a closed port: errors %v, want grpc_unavailable=2", s.ErrorsByKind)
	}
	d := scenario.NewDrivers(scenario.Options{LocationURL: "ws://" + addr + "/v1/drivers/stream", Drivers: 2, RunID: "t"})
	defer d.Close()
	if s := runOne(t, d, 2); s.ErrorsByKind[loadgen.KindConnRefused] != 2 {
		t.Errorf("drivers to a closed port: errors %v, want conn_refused=2", s.ErrorsByKind)
	}
	r := scenario.NewRide(scenario.Options{Target: "http://" + addr, RunID: "t"})
	if s := runOne(t, r, 2); s.ErrorsByKind[loadgen.KindConnRefused] != 2 {
		t.Errorf("ride to a closed port: errors %v, want conn_refused=2", s.ErrorsByKind)
	}
}

// fakeLocation accepts driver WebSockets; it answers the first message of
// each connection with an error reply, and closes a connection with 1008
// after its second message.
func fakeLocation(t *testing.T, got *atomic.Int64) *httptest.Server {
	var conns atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("driver_id") == "" {
			http.Error(w, "no driver", 400)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		// Only the first connection is scripted: a reply to a later
		// connection's first position could race that very send's check
		// and be counted on it instead of on the next one.
		scripted := conns.Add(1) == 1
		for i := 0; ; i++ {
			_, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			var p struct {
				DriverID string  `json:"driver_id"`
				Lat      float64 `json:"lat"`
			}
			if json.Unmarshal(b, &p) != nil || p.DriverID == "" || p.Lat == 0 {
				return
			}
			got.Add(1)
			if !scripted {
				continue
			}
			switch i {
			case 0:
				_ = c.Write(r.Context(), websocket.MessageText, []byte(`{"error":"scripted","field":"ts"}`))
			case 1:
				_ = c.Close(websocket.StatusPolicyViolation, "scripted")
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestDriversReportRepliesAndClosesOnTheNextSend: one driver sends four
// positions, 50 ms apart. The server answers the first with an error reply
// and closes after the second; the second send reports the reply
// (ws_error_reply), the third the closure (ws_closed), and the fourth
// reconnects and succeeds.
func TestDriversReportRepliesAndClosesOnTheNextSend(t *testing.T) {
	var got atomic.Int64
	srv := fakeLocation(t, &got)
	d := scenario.NewDrivers(scenario.Options{LocationURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/drivers/stream",
		Drivers: 1, RunID: "t"})
	ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(20, 200*time.Millisecond),
		Scenarios: []loadgen.Weighted{{Scenario: d, Weight: 1}}, Workers: 1, MaxWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
	s := ex.Summary()
	ops := s.Scenarios["drivers"].Operations
	if s.Iterations != 4 || ops[scenario.OpWSConnect].Requests != 2 || ops[scenario.OpSendPosition].Requests != 4 {
		t.Errorf("%d iterations, %d connects, %d sends; want 4, 2, 4", s.Iterations, ops[scenario.OpWSConnect].Requests,
			ops[scenario.OpSendPosition].Requests)
	}
	want := map[string]int64{loadgen.KindWSErrorReply: 1, loadgen.KindWSClosed: 1}
	if fmt.Sprint(s.ErrorsByKind) != fmt.Sprint(want) {
		t.Errorf("errors %v, want %v", s.ErrorsByKind, want)
	}
	if got.Load() != 3 {
		t.Errorf("the server read %d positions, want 3 (two on the first connection, one on the second)", got.Load())
	}
}

func TestBuildChecksWhatEachScenarioNeeds(t *testing.T) {
	cases := map[string]struct {
		mix  string
		o    scenario.Options
		want string
	}{
		"An unknown scenario lists the known ones.":    {"walk", scenario.Options{Target: "http://x"}, "ride, drivers, quote, http"},
		"ride needs a target.":                         {"ride", scenario.Options{}, "--target"},
		"quote needs pricing's address.":               {"quote", scenario.Options{}, "--pricing-addr"},
		"A pricing address must be host:port.":         {"quote", scenario.Options{PricingAddrs: []string{"nope"}}, "host:port"},
		"drivers needs a WebSocket URL.":               {"drivers", scenario.Options{}, "--location-url"},
		"drivers refuses an http URL.":                 {"drivers", scenario.Options{LocationURL: "http://x/y"}, "--location-url"},
		"A center off the globe is refused.":           {"http", scenario.Options{Target: "http://x", Center: scenario.LatLng{Lat: 95, Lng: 1}}, "latitude"},
		"A target that is not an http URL is refused.": {"http", scenario.Options{Target: "ftp://x"}, "http(s) URL"},
		"Too many driver connections are refused.":     {"drivers", scenario.Options{LocationURL: "ws://x/y", Drivers: 1_000_000}, "--drivers"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := loadgen.ParseMix(c.mix)
			if err != nil {
				t.Fatal(err)
			}
			c.o.RunID = "t"
			_, _, err = scenario.Build(m, c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	// drivers derives its URL from a gateway target.
	m, _ := loadgen.ParseMix("drivers")
	ws, closeFn, err := scenario.Build(m, scenario.Options{Target: "https://gw.example:8443/base/", RunID: "t"})
	if err != nil || len(ws) != 1 {
		t.Fatalf("drivers from a target: %v", err)
	}
	_ = closeFn()
}
