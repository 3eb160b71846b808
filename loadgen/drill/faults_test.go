package drill

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

func TestFaultValues(t *testing.T) {
	cases := map[string]struct {
		fault Fault
		err   string // "" when valid
		check func(faults.State) bool
	}{
		"A latency without a value adds 400 ms to the order service.": {Fault{Kind: KindLatency}, "",
			func(s faults.State) bool { return s.Services["order"].Latency.Fixed.D() == 400*time.Millisecond }},
		"A latency on every service uses the * entry.": {Fault{Kind: KindLatency, Value: "1s", Service: "*"}, "",
			func(s faults.State) bool { return s.Services["*"].Latency.Fixed.D() == time.Second }},
		"An error share is taken as is.": {Fault{Kind: KindErrors, Value: "0.25"}, "",
			func(s faults.State) bool { return s.Services["order"].ErrorRate == 0.25 }},
		"An error percentage becomes a share.": {Fault{Kind: KindErrors, Value: "3%"}, "",
			func(s faults.State) bool { return s.Services["order"].ErrorRate == 0.03 }},
		"A negative skew puts the clock behind.": {Fault{Kind: KindSkew, Value: "-1500ms"}, "",
			func(s faults.State) bool { return s.ClockSkew.D() == -1500*time.Millisecond }},
		"Down sets the region down.":       {Fault{Kind: KindDown}, "", func(s faults.State) bool { return s.Down }},
		"Stall stops replication.":         {Fault{Kind: KindStall}, "", func(s faults.State) bool { return s.ReplicationStalled }},
		"A zero skew is refused.":          {Fault{Kind: KindSkew, Value: "0s"}, "non-zero duration", nil},
		"A negative latency is refused.":   {Fault{Kind: KindLatency, Value: "-1s"}, "positive duration", nil},
		"An error share of 0 is refused.":  {Fault{Kind: KindErrors, Value: "0"}, "in (0, 1]", nil},
		"A word is not an error share.":    {Fault{Kind: KindErrors, Value: "many"}, "in (0, 1]", nil},
		"A stall takes no value.":          {Fault{Kind: KindStall, Value: "5s"}, "stall takes no value", nil},
		"An unknown kind names the kinds.": {Fault{Kind: "flood"}, "use one of latency, errors, down, stall, skew", nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var s faults.State
			err := c.fault.Apply(&s)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error containing %q", err, c.err)
				}
				return
			}
			if err != nil || !c.check(s) {
				t.Fatalf("got %v and state %+v", err, s)
			}
			if err := s.Validate(); err != nil {
				t.Fatalf("the state the fault made is refused by the services: %v", err)
			}
			c.fault.Remove(&s)
			if !zeroState(s) {
				t.Fatalf("removing the fault left %+v", s)
			}
		})
	}
}

func TestRemoveKeepsOtherFaults(t *testing.T) {
	s := faults.State{Down: true, Services: map[string]faults.ServiceFaults{"order": {ErrorRate: 0.1, Latency: faults.Latency{Fixed: faults.Duration(time.Second)}}}}
	Fault{Kind: KindLatency}.Remove(&s)
	if !s.Down || s.Services["order"].ErrorRate != 0.1 || s.Services["order"].Latency.Fixed != 0 {
		t.Fatalf("after removing the latency: %+v", s)
	}
	Fault{Kind: KindErrors}.Remove(&s)
	if _, ok := s.Services["order"]; ok {
		t.Fatalf("a service with no fault left is still listed: %+v", s)
	}
	Fault{Kind: KindErrors, Service: "pricing"}.Remove(&s) // nothing there: no-op
	if !s.Down {
		t.Fatal("removing an absent fault changed the state")
	}
}

// TestFaultsClient talks to the services' own fault admin API.
func TestFaultsClient(t *testing.T) {
	in := &faults.Injector{}
	srv := httptest.NewServer(faults.Handler(in, "tok"))
	defer srv.Close()
	ctx := context.Background()
	c := &FaultsClient{BaseURL: srv.URL + "/", Token: "tok"}
	if _, err := c.Inject(ctx, Fault{Kind: KindLatency, Value: "300ms"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Inject(ctx, Fault{Kind: KindStall}); err != nil {
		t.Fatal(err)
	}
	if !in.ReplicationStalled() || in.For("order").Latency.Fixed.D() != 300*time.Millisecond {
		t.Fatalf("the injector holds %+v", in.State())
	}
	s, err := c.Remove(ctx, Fault{Kind: KindStall})
	if err != nil || s.ReplicationStalled || in.ReplicationStalled() || s.Services["order"].Latency.Fixed.D() != 300*time.Millisecond {
		t.Fatalf("after removing the stall: %+v %v", s, err)
	}
	if s, err := c.Clear(ctx); err != nil || !zeroState(s) || !zeroState(in.State()) {
		t.Fatalf("after clearing: %+v %v", s, err)
	}
	if _, err := c.Inject(ctx, Fault{Kind: "nope"}); err == nil {
		t.Fatal("an unknown kind reached the API")
	}
	bad := &FaultsClient{BaseURL: srv.URL, Token: "wrong"}
	if _, err := bad.State(ctx); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "--admin-token-file") {
		t.Fatalf("a wrong token: %v", err)
	}
	off := httptest.NewServer(faults.Handler(in, ""))
	defer off.Close()
	if _, err := (&FaultsClient{BaseURL: off.URL, Token: "tok"}).State(ctx); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Fatalf("a disabled API: %v", err)
	}
}
