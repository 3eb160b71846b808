package faults

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestZeroInjectorHasNoFaults(t *testing.T) {
	var in Injector
	if in.Down() || in.ReplicationStalled() || in.ConsumerPaused() {
		t.Fatal("a zero injector reports a fault")
	}
	if err := in.Apply(context.Background(), "order"); err != nil {
		t.Fatal(err)
	}
	var nilIn *Injector
	if nilIn.Down() || nilIn.Apply(context.Background(), "x") != nil {
		t.Fatal("a nil injector reports a fault")
	}
}

func TestErrorRateAndServiceFallback(t *testing.T) {
	var in Injector
	if err := in.Set(State{Services: map[string]ServiceFaults{"*": {ErrorRate: 1}, "pricing": {}}}); err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(context.Background(), "order"); !errors.Is(err, ErrInjected) {
		t.Fatalf("order got %v, want the * fault", err)
	}
	if err := in.Apply(context.Background(), "pricing"); err != nil {
		t.Fatalf("pricing got %v, want its own (empty) faults", err)
	}
	if err := in.Set(State{Services: map[string]ServiceFaults{"x": {ErrorRate: 2}}}); err == nil {
		t.Fatal("an error rate of 2 was accepted")
	}
}

func TestLatencyRespectsContext(t *testing.T) {
	var in Injector
	_ = in.Set(State{Services: map[string]ServiceFaults{"*": {Latency: Latency{Fixed: Duration(time.Hour)}}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := in.Apply(ctx, "order"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestClockSkew(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := Injector{Now: func() time.Time { return base }}
	_ = in.Update(func(s *State) { s.ClockSkew = Duration(-3 * time.Second) })
	if got := in.Clock(); !got.Equal(base.Add(-3 * time.Second)) {
		t.Fatalf("clock = %v", got)
	}
}

func TestMiddlewareDownDropsTheConnection(t *testing.T) {
	var in Injector
	srv := httptest.NewServer(in.Middleware("order", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })))
	defer srv.Close()
	if resp, err := http.Get(srv.URL); err != nil || resp.StatusCode != 204 {
		t.Fatalf("healthy: %v %v", resp, err)
	}
	_ = in.Update(func(s *State) { s.Down = true })
	if _, err := http.Get(srv.URL); err == nil {
		t.Fatal("a down region answered")
	}
	in.Clear()
	if resp, err := http.Get(srv.URL); err != nil || resp.StatusCode != 204 {
		t.Fatalf("after clear: %v %v", resp, err)
	}
}

func TestAdminAPI(t *testing.T) {
	var in Injector
	do := func(h http.Handler, method, token, body string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest(method, "/admin/faults", strings.NewReader(body))
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := do(Handler(&in, ""), "GET", "", ""); w.Code != 404 {
		t.Fatalf("disabled API: %d", w.Code)
	}
	h := Handler(&in, "s3cret")
	cases := map[string]struct {
		method, token, body string
		code                int
	}{
		"A call without the token is refused.":   {"PUT", "", `{"down":true}`, 401},
		"A call with a wrong token is refused.":  {"PUT", "nope", `{"down":true}`, 401},
		"An unknown field is a 400.":             {"PUT", "s3cret", `{"dwn":true}`, 400},
		"A bad duration is a 400 that says how.": {"PATCH", "s3cret", `{"clock_skew":"soon"}`, 400},
		"An error rate above 1 is a 400.":        {"PUT", "s3cret", `{"services":{"order":{"error_rate":3}}}`, 400},
		"PATCH merges a latency fault.":          {"PATCH", "s3cret", `{"services":{"order":{"latency":{"fixed":"250ms"}}}}`, 200},
		"A POST is not allowed.":                 {"POST", "s3cret", ``, 405},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if w := do(h, c.method, c.token, c.body); w.Code != c.code {
				t.Errorf("%s: %d %s, want %d", name, w.Code, w.Body, c.code)
			}
		})
	}
	if got := in.For("order").Latency.Fixed.D(); got != 250*time.Millisecond {
		t.Errorf("latency after PATCH = %v", got)
	}
	if w := do(h, "DELETE", "s3cret", ""); w.Code != 200 || in.For("order").Latency.Fixed != 0 {
		t.Errorf("DELETE did not clear: %d", w.Code)
	}
}

func TestDescribeListsTheFaultsInForce(t *testing.T) {
	if got := (State{}).Describe(); got == nil || len(got) != 0 {
		t.Fatalf("no faults: %#v, want an empty list", got)
	}
	s := State{Down: true, ReplicationStalled: true, ClockSkew: Duration(-2 * time.Second), ConsumerPaused: true,
		Services: map[string]ServiceFaults{
			"order": {Latency: Latency{Fixed: Duration(500 * time.Millisecond), Jitter: Duration(50 * time.Millisecond)}, ErrorRate: 0.05},
			"*":     {ErrorRate: 0.125},
			"idle":  {},
		}}
	want := []string{"down", "replication stalled", "clock skew -2s", "consumer paused", "every service: 12.5% errors", "order: +500ms (±50ms) latency, 5% errors"}
	if got := s.Describe(); !slices.Equal(got, want) {
		t.Fatalf("Describe() = %q\nwant        %q", got, want)
	}
	if got := (State{ClockSkew: Duration(3 * time.Second)}).Describe(); !slices.Equal(got, []string{"clock skew +3s"}) {
		t.Fatalf("a skew ahead: %q", got)
	}
}
