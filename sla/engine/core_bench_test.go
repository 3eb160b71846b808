package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// benchSpec is a synthetic spec of 10 regions and 20 services of 3 SLOs each.
func benchSpec(b *testing.B) *spec.Spec {
	var regions []string
	for i := range 10 {
		regions = append(regions, fmt.Sprintf("region-%d", i))
	}
	return testSpec(b, regions, func(s *spec.Spec) {
		w := spec.Duration(30 * 24 * time.Hour)
		s.Services = nil
		for i := range 20 {
			s.Services = append(s.Services, spec.Service{
				Name: fmt.Sprintf("svc-%d", i), Weight: 0.05, Operations: []string{"op"},
				SLOs: []spec.SLO{
					{Name: "availability", Kind: spec.KindAvailability, Objective: 99.9, Window: w, Key: i == 0},
					{Name: "latency", Kind: spec.KindLatency, Objective: 99, Window: w, Threshold: spec.Duration(300 * time.Millisecond)},
					{Name: "latency-fast", Kind: spec.KindLatency, Objective: 95, Window: w, Threshold: spec.Duration(100 * time.Millisecond)},
				},
			})
		}
	})
}

// benchSignals gives every region and SLO a value, with burn rates over the
// spec's four alert windows. The samples carry no time (fresh at any tick).
func benchSignals(s *spec.Spec, at time.Time) Signals {
	var rs []*region
	for ri, r := range s.Regions {
		g := good(r.Name, at).p95(0.04+float64(ri)/100, at)
		g.SLOs = nil
		for _, svc := range s.Services {
			for _, slo := range svc.SLOs {
				g.SLOs = append(g.SLOs, SLOSignal{Service: svc.Name, SLO: slo.Name,
					Attainment: Val(0.9995, at), BudgetRemaining: Val(0.5, at),
					BurnRates: map[string]Measured{"5m": Val(0.5, at), "30m": Val(0.5, at), "1h": Val(0.5, at), "6h": Val(0.5, at)}})
			}
		}
		rs = append(rs, g)
	}
	return signals(at, rs...)
}

// BenchmarkCoreStep is one decision for 10 regions x 20 services x 3 SLOs.
func BenchmarkCoreStep(b *testing.B) {
	s := benchSpec(b)
	c := newCore(b, s)
	sig := benchSignals(s, time.Time{})
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(tick)
		sig.At = now
		c.Step(now, sig)
	}
}

// BenchmarkEngineTick is a whole tick at that size with metrics on a
// registry: an in-memory read, the decision, the metrics, no events and
// (most ticks) no push.
func BenchmarkEngineTick(b *testing.B) {
	s := benchSpec(b)
	clock := &fakeClock{t: t0}
	sig := benchSignals(s, time.Time{})
	e, err := New(Config{Spec: s, Now: clock.Now, Registerer: prometheus.NewRegistry(), Actuator: &recordingActuator{},
		Reader: &fakeReader{scenario: func(at time.Time) Signals { sig.At = at; return sig }}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		clock.Advance(tick)
		if _, err := e.Tick(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
