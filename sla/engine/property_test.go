package engine

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// drawComponents draws a measurement for each of the seed's health
// components, across and beyond each curve's range.
func drawComponents(t *rapid.T, label string) map[string]float64 {
	return map[string]float64{
		spec.MeasureSyncLag:           rapid.Float64Range(0, 20).Draw(t, label+"sync_lag"),
		spec.MeasureAPISuccess:        rapid.Float64Range(95, 100).Draw(t, label+"api_success"),
		spec.MeasureStreamLag:         rapid.Float64Range(0, 2000).Draw(t, label+"stream_lag"),
		spec.MeasureConfigConsistency: float64(rapid.IntRange(0, 1).Draw(t, label+"config")),
	}
}

func TestTheHealthScoreIsMonotoneInEachComponent(t *testing.T) {
	s := testSpec(t, []string{"r1"}, nil)
	health := func(t *rapid.T, m map[string]float64) float64 {
		c, err := NewCore(s)
		if err != nil {
			t.Fatal(err)
		}
		r := good("r1", t0)
		for k, v := range m {
			r = r.comp(k, Val(v, t0))
		}
		return float64(c.Step(t0, signals(t0, r)).Regions[0].Health)
	}
	rapid.Check(t, func(t *rapid.T) {
		m := drawComponents(t, "")
		i := rapid.IntRange(0, len(s.Health.Components)-1).Draw(t, "component")
		hc := s.Health.Components[i]
		better := make(map[string]float64, len(m))
		for k, v := range m {
			better[k] = v
		}
		// Improve one component: lower when lower is better, else higher.
		step := rapid.Float64Range(0, 50).Draw(t, "improvement")
		if hc.Curve.Good < hc.Curve.Bad {
			better[hc.Measure] -= step
		} else {
			better[hc.Measure] += step
		}
		before, after := health(t, m), health(t, better)
		if after < before-1e-9 {
			t.Fatalf("improving %s from %v to %v lowered the health from %v to %v", hc.Name, m[hc.Measure], better[hc.Measure], before, after)
		}
		if before < 0 || after > 100+1e-9 {
			t.Fatalf("health out of [0, 100]: %v, %v", before, after)
		}
	})
}

func TestWeightsAreWithinTheBoundsAndTheSameWhateverTheRegionOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(t, "regions")
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("r%d", i)
		}
		type input struct {
			p95   float64
			hasP  bool
			comps map[string]float64
		}
		in := map[string]input{}
		for _, name := range names {
			in[name] = input{
				p95:   rapid.Float64Range(0, 5).Draw(t, name+"p95"),
				hasP:  rapid.Bool().Draw(t, name+"hasP95"),
				comps: drawComponents(t, name),
			}
		}
		decide := func(order []string) map[string]RouteEntry {
			s := testSpec(t, order, nil)
			c, err := NewCore(s)
			if err != nil {
				t.Fatal(err)
			}
			var rs []*region
			for _, name := range order {
				r := good(name, t0)
				for k, v := range in[name].comps {
					r = r.comp(k, Val(v, t0))
				}
				if in[name].hasP {
					r.p95(in[name].p95, t0)
				} else {
					r.LatencyP95 = Measured{}
				}
				rs = append(rs, r)
			}
			// Signals come in their own order, whatever the spec's.
			perm := rapid.Permutation(rs).Draw(t, "signal order")
			d := c.Step(t0, signals(t0, perm...))
			for _, rd := range d.Regions {
				if rd.Breaker != Closed {
					t.Fatalf("%s is %s after one tick", rd.Region, rd.Breaker)
				}
				if rd.Weight < s.Routing.Weights.Min || rd.Weight > s.Routing.Weights.Max {
					t.Fatalf("%s weighs %v, outside [%v, %v]", rd.Region, rd.Weight, s.Routing.Weights.Min, s.Routing.Weights.Max)
				}
			}
			return d.Table.Regions
		}
		first := decide(names)
		second := decide(rapid.Permutation(names).Draw(t, "spec order"))
		for _, name := range names {
			if first[name] != second[name] {
				t.Fatalf("%s weighs %+v in one order and %+v in another", name, first[name], second[name])
			}
		}
	})
}
