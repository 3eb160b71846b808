package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// fataler is what testSpec needs of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// t0 is the first tick of every scenario.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// testSpec is the seed's defaults (trip P99 > 300ms or health < 50 for 2m,
// recover P99 <= 200ms and health >= 70 for 2m, ramp 10/25/50/100 % 30s
// each, hold 30s x2 up to 10m, reset after 1h, half the regions at most,
// ticks every 5s, stale after 1m, blackout 30s) over the given regions, two
// services (order with a key availability SLO and a latency SLO; payment
// with one availability SLO), changed by mutate.
func testSpec(t fataler, regions []string, mutate func(*spec.Spec)) *spec.Spec {
	t.Helper()
	s := spec.Default()
	s.Metadata = spec.Metadata{Name: "carpool", Team: "sre"}
	for _, r := range regions {
		s.Regions = append(s.Regions, spec.Region{Name: r, City: "city-" + r})
	}
	w := spec.Duration(30 * 24 * time.Hour)
	s.Services = []spec.Service{
		{Name: "order", Weight: 0.6, Operations: []string{"create_ride"}, SLOs: []spec.SLO{
			{Name: "availability", Kind: spec.KindAvailability, Objective: 99.9, Window: w, Key: true},
			{Name: "latency", Kind: spec.KindLatency, Objective: 99, Window: w, Threshold: spec.Duration(300 * time.Millisecond)},
		}},
		{Name: "payment", Weight: 0.4, Operations: []string{"charge"}, SLOs: []spec.SLO{
			{Name: "availability", Kind: spec.KindAvailability, Objective: 99.5, Window: w},
		}},
	}
	s.Alerting.Receivers.PagerDuty.RoutingKeyFile = "/dev/null"
	s.Alerting.Receivers.Chat.URL = "http://127.0.0.1:1/chat"
	s.Alerting.Receivers.Ticket.URL = "http://127.0.0.1:1/ticket"
	if mutate != nil {
		mutate(&s)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("test spec: %v", err)
	}
	return &s
}

// region is a fluent builder of one region's signals at one tick; good()
// gives a healthy region: P99 100ms, P95 50ms, every component at its
// target, every SLO above its objective, 100 requests/s.
type region struct{ RegionSignals }

func good(name string, at time.Time) *region {
	r := &region{RegionSignals{
		Region:     name,
		LatencyP99: Val(0.1, at),
		LatencyP95: Val(0.05, at),
		Traffic:    Val(100, at),
		Components: map[string]Measured{
			spec.MeasureSyncLag:           Val(0.5, at),
			spec.MeasureAPISuccess:        Val(99.99, at),
			spec.MeasureStreamLag:         Val(10, at),
			spec.MeasureConfigConsistency: Val(1, at),
		},
		SLOs: []SLOSignal{
			{Service: "order", SLO: "availability", Attainment: Val(0.9995, at), BudgetRemaining: Val(0.5, at),
				BurnRates: map[string]Measured{"5m": Val(0.2, at), "1h": Val(0.4, at)}},
			{Service: "order", SLO: "latency", Attainment: Val(0.995, at), BudgetRemaining: Val(0.5, at)},
			{Service: "payment", SLO: "availability", Attainment: Val(0.999, at), BudgetRemaining: Val(0.8, at)},
		},
	}}
	return r
}

func (r *region) p99(v float64, at time.Time) *region { r.LatencyP99 = Val(v, at); return r }
func (r *region) p95(v float64, at time.Time) *region { r.LatencyP95 = Val(v, at); return r }

func (r *region) comp(measure string, m Measured) *region {
	c := make(map[string]Measured, len(r.Components))
	for k, v := range r.Components {
		c[k] = v
	}
	c[measure] = m
	r.Components = c
	return r
}

// absent drops every input of the region (OK false everywhere).
func (r *region) absent() *region {
	return &region{RegionSignals{Region: r.Region}}
}

// signals builds one tick's Signals.
func signals(at time.Time, rs ...*region) Signals {
	s := Signals{At: at}
	for _, r := range rs {
		s.Regions = append(s.Regions, r.RegionSignals)
	}
	return s
}

// run steps a Core every interval from t0 for ticks ticks, with the signals
// scenario returns for tick i at time at, and returns every decision.
func run(t testing.TB, c *Core, interval time.Duration, ticks int, scenario func(i int, at time.Time) Signals) []Decision {
	t.Helper()
	out := make([]Decision, 0, ticks)
	for i := range ticks {
		at := t0.Add(time.Duration(i) * interval)
		out = append(out, c.Step(at, scenario(i, at)))
	}
	return out
}

func newCore(t testing.TB, s *spec.Spec) *Core {
	t.Helper()
	c, err := NewCore(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// states lists a region's breaker state at every decision, "state@offset".
func stateAt(d Decision, region string) BreakerState {
	rd, ok := d.Region(region)
	if !ok {
		panic(fmt.Sprintf("no region %q in the decision", region))
	}
	return rd.Breaker
}

// eventsOf returns the events of a kind (and region, unless empty) across decisions.
func eventsOf(ds []Decision, kind, region string) []Event {
	var out []Event
	for _, d := range ds {
		for _, ev := range d.Events {
			if ev.Kind == kind && (region == "" || ev.Region == region) {
				out = append(out, ev)
			}
		}
	}
	return out
}

const tick = 5 * time.Second
