package enginetest

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/engine/signals"
	"github.com/carpoolsla/carpoolsla/sla/source/sourcetest"
	"github.com/carpoolsla/carpoolsla/sla/source/storetest"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// TestTheSameScenarioGivesTheSameDecisionsFromEveryStore writes the
// reference scenario into the embedded store, a real Prometheus 2.42 and a
// real VictoriaMetrics, steps a fresh engine core over it through each
// store's Reader, and requires every tick's decisions (breaker, weight,
// health per region, panic) to be the same. The scenario's spike in the
// first region must open that region's breaker and leave the others
// closed, so the comparison is over decisions that matter.
func TestTheSameScenarioGivesTheSameDecisionsFromEveryStore(t *testing.T) {
	s, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Windows that fit the 10-minute scenario. The latency bar is above the
	// scenario's raw-histogram P99 (~0.9 s in every region), so the breaker
	// trips on the spike's health (sync lag, stream lag, probes).
	d := func(x time.Duration) spec.Duration { return spec.Duration(x) }
	s.Engine.Interval = d(sourcetest.CarpoolStep)
	s.Engine.StaleAfter = d(time.Minute)
	s.Routing.Weights.Period = d(sourcetest.CarpoolStep)
	s.Breaker.Trip = spec.BreakerRule{LatencyP99: d(2 * time.Second), Health: 50, For: d(time.Minute)}
	s.Breaker.Recover = spec.BreakerRule{LatencyP99: d(1500 * time.Millisecond), Health: 70, For: d(30 * time.Second)}
	s.Breaker.Ramp = spec.Ramp{Steps: []float64{50, 100}, StepDuration: d(30 * time.Second)}
	s.Breaker.Hold = spec.HoldOpen{Initial: d(30 * time.Second), Multiplier: 2, Max: d(5 * time.Minute), ResetAfter: d(time.Hour)}
	if err := s.Validate(); err != nil {
		t.Fatalf("the test spec is invalid: %v", err)
	}
	sc := sourcetest.Carpool(s, time.Now())
	stores := storetest.Load(t, sc)
	times := sc.QueryTimes(2*time.Minute, sc.Step)

	runs := map[string][]string{}
	for _, st := range stores {
		r, err := signals.New(signals.Config{Spec: s, Querier: st.Querier})
		if err != nil {
			t.Fatal(err)
		}
		core, err := engine.NewCore(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range times {
			sig, err := r.Read(context.Background(), at)
			if err != nil {
				t.Fatalf("%s at %s: %v", st.Name, at, err)
			}
			dec := core.Step(at, sig)
			var b strings.Builder
			fmt.Fprintf(&b, "%s panic=%v", at.Sub(times[0]), dec.Panic)
			for _, rd := range dec.Regions {
				// Rounded to what a decision carries; the stores' floating
				// point may differ in the last bits of a rate.
				fmt.Fprintf(&b, " | %s %s w=%.1f h=%.1f", rd.Region, rd.Breaker, rd.Weight, round1(float64(rd.Health)))
			}
			runs[st.Name] = append(runs[st.Name], b.String())
		}
	}
	ref := stores[0].Name
	for _, st := range stores[1:] {
		for i := range runs[ref] {
			if runs[st.Name][i] != runs[ref][i] {
				t.Errorf("tick %d differs:\n  %-14s %s\n  %-14s %s", i, ref, runs[ref][i], st.Name, runs[st.Name][i])
			}
		}
	}
	first := s.Regions[0].Name
	opened, othersOpened := false, false
	for _, line := range runs[ref] {
		opened = opened || strings.Contains(line, first+" open")
		for _, r := range s.Regions[1:] {
			othersOpened = othersOpened || strings.Contains(line, r.Name+" open")
		}
	}
	if !opened || othersOpened {
		t.Errorf("the spike in %s opened its breaker: %v; another region's opened: %v; want only %s's\n%s",
			first, opened, othersOpened, first, strings.Join(runs[ref], "\n"))
	}
	t.Logf("%d ticks, identical decisions from %d stores; %s:\n%s", len(times), len(stores), ref, strings.Join(runs[ref], "\n"))
}

func round1(v float64) float64 {
	if math.IsNaN(v) {
		return v
	}
	return math.Round(v*10) / 10
}
