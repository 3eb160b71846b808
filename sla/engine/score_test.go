package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// withSLOs sets a region's attainments by "service/slo"; a name left out
// has no attainment.
func (r *region) withSLOs(at time.Time, att map[string]float64) *region {
	var out []SLOSignal
	for _, ss := range r.SLOs {
		if v, ok := att[ss.Service+"/"+ss.SLO]; ok {
			ss.Attainment = Val(v, at)
			out = append(out, ss)
		}
	}
	r.SLOs = out
	return r
}

func TestTheCompositeIsTheWeightedSumOfServiceAttainmentsWithTheKeySLOVeto(t *testing.T) {
	// Services: order (weight 0.6; availability 99.9 % key, latency 99 %),
	// payment (0.4; availability 99.5 %). Objective 99.9 %.
	cases := map[string]struct {
		att      map[string]float64
		want     float64 // NaN: unknown
		met      bool
		breached string
	}{
		"A service's attainment is the product of its SLOs'; the composite their weighted sum.": {
			att:  map[string]float64{"order/availability": 0.9995, "order/latency": 0.995, "payment/availability": 0.999},
			want: 0.6*0.9995*0.995 + 0.4*0.999,
		},
		"At or above the objective with every key SLO met is met.": {
			att:  map[string]float64{"order/availability": 0.9995, "order/latency": 0.9995, "payment/availability": 1},
			want: 0.6*0.9995*0.9995 + 0.4, met: true,
		},
		"Above the objective but a key SLO below its own is vetoed.": {
			att:  map[string]float64{"order/availability": 0.9989, "order/latency": 1, "payment/availability": 1},
			want: 0.6*0.9989 + 0.4, breached: "order/availability",
		},
		"A key SLO exactly at its objective is met (no float rounding veto).": {
			att:  map[string]float64{"order/availability": 0.999, "order/latency": 1, "payment/availability": 1},
			want: 0.6*0.999 + 0.4, met: true,
		},
		"A service with an unknown SLO drops out and the weights of the rest are renormalised.": {
			att:  map[string]float64{"order/availability": 0.9995, "order/latency": 0.999},
			want: 0.9995 * 0.999,
		},
		"No attainment at all is unknown and not met.": {
			att: map[string]float64{}, want: math.NaN(),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := newCore(t, testSpec(t, []string{"r1"}, nil))
			d := c.Step(t0, signals(t0, good("r1", t0).withSLOs(t0, tc.att)))
			rd := d.Regions[0]
			if math.IsNaN(tc.want) != !rd.Composite.Known() || (rd.Composite.Known() && !near(float64(rd.Composite), tc.want)) {
				t.Fatalf("composite %v, want %v", rd.Composite, tc.want)
			}
			if rd.CompositeMet != tc.met || strings.Join(rd.KeySLOsBreached, ",") != tc.breached {
				t.Fatalf("met %v breached %v; want met %v breached %q", rd.CompositeMet, rd.KeySLOsBreached, tc.met, tc.breached)
			}
		})
	}
}

func TestTheGlobalCompositeIsWeightedByTraffic(t *testing.T) {
	c := newCore(t, testSpec(t, []string{"r1", "r2"}, nil))
	r1 := good("r1", t0).withSLOs(t0, map[string]float64{"order/availability": 0.9999, "order/latency": 1, "payment/availability": 1})
	r1.Traffic = Val(300, t0)
	r2 := good("r2", t0).withSLOs(t0, map[string]float64{"order/availability": 0.995, "order/latency": 1, "payment/availability": 1})
	r2.Traffic = Val(100, t0)
	d := c.Step(t0, signals(t0, r1, r2))
	c1, c2 := 0.6*0.9999+0.4, 0.6*0.995+0.4
	if want := (300*c1 + 100*c2) / 400; !near(float64(d.Global.Composite), want) {
		t.Fatalf("global composite %v, want %v", d.Global.Composite, want)
	}
	// The key SLO's global attainment is (300·0.9999 + 100·0.995)/400 =
	// 0.998675 < 0.999: vetoed globally, though r1 alone meets it.
	g := d.Global.SLOs[0]
	if g.Service != "order" || g.SLO != "availability" || !near(float64(g.Attainment), (300*0.9999+100*0.995)/400) {
		t.Fatalf("global SLO %+v", g)
	}
	if !near(float64(g.BudgetRemaining), 1-(1-float64(g.Attainment))/(1-0.999)) {
		t.Fatalf("global budget %v", g.BudgetRemaining)
	}
	if d.Global.CompositeMet || strings.Join(d.Global.KeySLOsBreached, ",") != "order/availability" || !d.Regions[0].CompositeMet {
		t.Fatalf("global met %v breached %v, r1 met %v", d.Global.CompositeMet, d.Global.KeySLOsBreached, d.Regions[0].CompositeMet)
	}
	if br := g.BurnRates["5m"]; !near(float64(br), 0.2) {
		t.Fatalf("global burn rate 5m %v, want the traffic-weighted 0.2", br)
	}
	// Without any traffic the regions weigh the same.
	r1.Traffic, r2.Traffic = Measured{}, Measured{}
	d = newCore(t, testSpec(t, []string{"r1", "r2"}, nil)).Step(t0, signals(t0, r1, r2))
	if want := (c1 + c2) / 2; !near(float64(d.Global.Composite), want) {
		t.Fatalf("global composite without traffic %v, want the mean %v", d.Global.Composite, want)
	}
}

func TestTheHealthScoreFollowsTheSpecCurves(t *testing.T) {
	s := testSpec(t, []string{"r1"}, nil)
	c := newCore(t, s)
	// Sync lag 6s is halfway between good (2s) and bad (10s): 50. API
	// success 99.475 % is halfway between 99.95 and 99: 50.
	r := good("r1", t0).comp(spec.MeasureSyncLag, Val(6, t0)).comp(spec.MeasureAPISuccess, Val(99.475, t0))
	d := c.Step(t0, signals(t0, r))
	rd := d.Regions[0]
	raw := map[string]float64{}
	for _, hc := range s.Health.Components {
		raw[hc.Name] = r.Components[hc.Measure].Value
	}
	want, parts := s.Health.Score(raw)
	if !near(float64(rd.Health), want) || !near(want, 0.35*50+0.30*50+0.25*100+0.10*100) {
		t.Fatalf("health %v, spec says %v", rd.Health, want)
	}
	for _, cs := range rd.Components {
		if !near(cs.Score, parts[cs.Name]) || float64(cs.Value) != raw[cs.Name] {
			t.Fatalf("component %+v, spec score %v raw %v", cs, parts[cs.Name], raw[cs.Name])
		}
	}
}

func TestRouteWeights(t *testing.T) {
	type reg struct {
		p95, health float64 // health: the API success percent's score sets it (other components at 100)
		open        bool
	}
	cases := map[string]struct {
		regions []reg
		want    []float64
	}{
		"Inverse P95 normalised to the best region.": {
			[]reg{{0.05, 100, false}, {0.1, 100, false}, {0.2, 100, false}}, []float64{100, 50, 25}},
		"Health scales the inverse P95.": {
			[]reg{{0.05, 50, false}, {0.1, 100, false}, {0.2, 100, false}}, []float64{100, 100, 50}},
		"Weights are clamped to the spec's minimum.": {
			[]reg{{0.05, 100, false}, {10, 100, false}}, []float64{100, 1}},
		"With no health anywhere every region gets the minimum.": {
			[]reg{{0.05, 0, false}, {0.1, 0, false}}, []float64{1, 1}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var names []string
			for i := range tc.regions {
				names = append(names, "r"+string(rune('1'+i)))
			}
			s := testSpec(t, names, func(s *spec.Spec) {
				// Only API success counts, so health is its score.
				s.Health.Components = s.Health.Components[1:2]
				s.Health.Components[0].Weight = 1
				s.Breaker.Trip.Health = 1 // health 0 trips only after 2m; one tick here
				s.Breaker.Recover.Health = 2
			})
			c := newCore(t, s)
			var rs []*region
			for i, r := range tc.regions {
				// The API success curve is linear from 99 (0) to 99.95 (100).
				api := 99 + 0.95*r.health/100
				rs = append(rs, good(names[i], t0).p95(r.p95, t0).comp(spec.MeasureAPISuccess, Val(api, t0)))
			}
			d := c.Step(t0, signals(t0, rs...))
			for i, rd := range d.Regions {
				if !near(rd.Weight, tc.want[i]) || !near(rd.ComputedWeight, tc.want[i]) || !near(d.Table.Regions[rd.Region].Weight, tc.want[i]) {
					t.Fatalf("%s: weight %v (computed %v), want %v", rd.Region, rd.Weight, rd.ComputedWeight, tc.want[i])
				}
			}
		})
	}
}

func TestARecoveredRegionsLatencyIsNotTrustedDuringTheBlackout(t *testing.T) {
	c := newCore(t, testSpec(t, three, nil))
	// sh-a trips (2m), recovers (from 2m5s, recovering at 4m5s) and reports a
	// P95 of 1ms from then on; sh-b 50ms, bj-a 100ms.
	recovering := t0.Add(4*time.Minute + 5*time.Second)
	ds := run(t, c, tick, 12*6, func(i int, at time.Time) Signals {
		a := good("sh-a", at)
		if at.Sub(t0) <= 2*time.Minute {
			a.p99(0.5, at)
		}
		if !at.Before(recovering) {
			a.p95(0.001, at)
		}
		return signals(at, a, good("sh-b", at).p95(0.05, at), good("bj-a", at).p95(0.1, at))
	})
	idx := func(at time.Time) Decision { return ds[int(at.Sub(t0)/tick)] }
	in := idx(recovering.Add(25 * time.Second))
	rd, _ := in.Region("sh-a")
	// During the blackout sh-a counts with the median of the others (75ms):
	// scores 1/0.075, 1/0.05, 1/0.1 -> weights 66.667, 100, 50.
	if rd.Breaker != Recovering || !rd.Blackout || !near(rd.ComputedWeight, 66.667) {
		t.Fatalf("in the blackout: %s blackout %v computed weight %v, want 66.667", rd.Breaker, rd.Blackout, rd.ComputedWeight)
	}
	if b, _ := in.Region("sh-b"); b.ComputedWeight != 100 {
		t.Fatalf("sh-b weight %v", b.ComputedWeight)
	}
	after := idx(recovering.Add(30 * time.Second))
	rd, _ = after.Region("sh-a")
	b, _ := after.Region("sh-b")
	if rd.Blackout || rd.ComputedWeight != 100 || b.ComputedWeight != 2 {
		t.Fatalf("after the blackout sh-a's 1ms counts: sh-a %v (blackout %v), sh-b %v; want 100 and 2", rd.ComputedWeight, rd.Blackout, b.ComputedWeight)
	}
	if want := round3(rd.ComputedWeight * rd.RampPercent / 100); rd.Weight != want || rd.RampPercent != 25 {
		t.Fatalf("sh-a at %v%% weighs %v, want %v", rd.RampPercent, rd.Weight, want)
	}
}

func TestAnOpenRegionIsLeftOutOfTheNormalisation(t *testing.T) {
	c := newCore(t, testSpec(t, three, nil))
	// sh-a is slow but its P95 (5ms) would be the best; once open it is
	// left out, so sh-b (50ms) is the best and gets 100.
	ds := run(t, c, tick, 26, func(i int, at time.Time) Signals {
		return signals(at, good("sh-a", at).p99(0.5, at).p95(0.005, at), good("sh-b", at).p95(0.05, at), good("bj-a", at).p95(0.1, at))
	})
	before, after := ds[23], ds[24]
	if b, _ := before.Region("sh-b"); b.Weight != 10 {
		t.Fatalf("before the trip sh-b weighs %v, want 10", b.Weight)
	}
	a, _ := after.Region("sh-a")
	b, _ := after.Region("sh-b")
	j, _ := after.Region("bj-a")
	if a.Breaker != Open || a.Weight != 0 || b.Weight != 100 || j.Weight != 50 {
		t.Fatalf("after the trip: sh-a %s %v, sh-b %v, bj-a %v", a.Breaker, a.Weight, b.Weight, j.Weight)
	}
}

func TestTheDecisionMarshalsUnknownValuesAsNull(t *testing.T) {
	c := newCore(t, testSpec(t, []string{"r1"}, nil))
	d := c.Step(t0, Signals{At: t0})
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Regions []struct {
			LatencyP99 *float64 `json:"latency_p99_seconds"`
			Composite  *float64 `json:"composite"`
			Health     *float64 `json:"health"`
		} `json:"regions"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	r := back.Regions[0]
	if r.LatencyP99 != nil || r.Composite != nil || r.Health == nil || *r.Health != 0 {
		t.Fatalf("unknown values must be null and the health of nothing 0: %s", b)
	}
	var n Number
	if err := json.Unmarshal([]byte("null"), &n); err != nil || n.Known() {
		t.Fatalf("null -> %v, %v", n, err)
	}
}

func TestWeightsAreRecomputedEveryWeightPeriodAndAtOnceWhenABreakerMoves(t *testing.T) {
	s := testSpec(t, three, func(s *spec.Spec) {
		s.Engine.Interval = spec.Duration(time.Second)
		s.Routing.Weights.Period = spec.Duration(5 * time.Second)
		s.Breaker.Trip.For = spec.Duration(7 * time.Second)
	})
	c := newCore(t, s)
	// sh-a has the best P95 (25ms) but a slow P99 from 0s: it trips at 7s.
	// sh-b's P95 doubles (50ms -> 100ms) at 2s.
	ds := run(t, c, time.Second, 9, func(i int, at time.Time) Signals {
		b := good("sh-b", at)
		if i >= 2 {
			b.p95(0.1, at)
		}
		return signals(at, good("sh-a", at).p99(0.5, at).p95(0.025, at), b, good("bj-a", at))
	})
	var got []string
	for _, d := range ds {
		b, _ := d.Region("sh-b")
		a, _ := d.Region("sh-a")
		got = append(got, fmt.Sprintf("%s:%s/%g", d.At.Sub(t0), a.Breaker, b.Weight))
	}
	// sh-b: 50 until the period ends at 5s (its slower P95 waits), 25 from
	// 5s, and 50 at 7s, when sh-a opens and bj-a becomes the best.
	want := "0s:closed/50 1s:closed/50 2s:closed/50 3s:closed/50 4s:closed/50 5s:closed/25 6s:closed/25 7s:open/50 8s:open/50"
	if strings.Join(got, " ") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	if a, _ := ds[7].Region("bj-a"); a.ComputedWeight != 100 {
		t.Fatalf("bj-a %v", a.ComputedWeight)
	}
}
