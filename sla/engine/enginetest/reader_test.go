package enginetest

import (
	"context"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/embedded"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/engine/signals"
	"github.com/carpoolsla/carpoolsla/sla/source/sourcetest"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// expect computes, from a scenario's own points, what the reader should
// read at t: the latest point at or before t of each series, and rates
// and quantiles of the request histograms over the reader's window.
type expect struct {
	sc     sourcetest.Scenario
	t      time.Time
	window time.Duration
}

// latest returns the value of a series at e.t (its last point at or before).
func (e expect) latest(ser sourcetest.Series) (float64, bool) {
	v, ok := 0.0, false
	for _, p := range ser.Points {
		if p.T.After(e.t) {
			break
		}
		v, ok = p.V, true
	}
	return v, ok
}

// perSecond is a counter's increase per second over the window ending at
// e.t, from its first and last points inside it (the counters grow evenly).
func (e expect) perSecond(ser sourcetest.Series) float64 {
	var in []sourcetest.Point
	for _, p := range ser.Points {
		if p.T.After(e.t.Add(-e.window)) && !p.T.After(e.t) {
			in = append(in, p)
		}
	}
	if len(in) < 2 {
		return math.NaN()
	}
	return (in[len(in)-1].V - in[0].V) / in[len(in)-1].T.Sub(in[0].T).Seconds()
}

// values applies f to every series named name and groups by label.
func (e expect) values(name, label string, agg func(a, b float64) float64) map[string]float64 {
	out := map[string]float64{}
	for _, ser := range e.sc.Series {
		if ser.Labels["__name__"] != name {
			continue
		}
		v, ok := e.latest(ser)
		if !ok {
			continue
		}
		k := ser.Labels[label]
		if old, seen := out[k]; seen {
			v = agg(old, v)
		}
		out[k] = v
	}
	return out
}

// histogram sums the request histograms of every service but the gateway
// by region: per-second rates of each bucket and of the count.
func (e expect) histogram() (buckets map[string]map[float64]float64, count map[string]float64) {
	buckets, count = map[string]map[float64]float64{}, map[string]float64{}
	for _, ser := range e.sc.Series {
		if ser.Labels[catalog.LabelService] == region.Gateway { // the gateways measure other regions' requests
			continue
		}
		r := ser.Labels[catalog.LabelRegion]
		switch ser.Labels["__name__"] {
		case catalog.RequestDuration.Name + "_bucket":
			le, err := strconv.ParseFloat(ser.Labels[catalog.LabelLe], 64)
			if err != nil {
				le = math.Inf(1)
			}
			if buckets[r] == nil {
				buckets[r] = map[float64]float64{}
			}
			buckets[r][le] += e.perSecond(ser)
		case catalog.RequestDuration.Name + "_count":
			count[r] += e.perSecond(ser)
		}
	}
	return buckets, count
}

// quantile is Prometheus' histogram_quantile over classic buckets: linear
// interpolation inside the bucket holding the rank.
func quantile(q float64, buckets map[float64]float64) float64 {
	les := slices.Sorted(func(yield func(float64) bool) {
		for le := range buckets {
			if !yield(le) {
				return
			}
		}
	})
	total := buckets[les[len(les)-1]]
	rank := q * total
	lower, below := 0.0, 0.0
	for _, le := range les {
		if c := buckets[le]; c >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			return lower + (le-lower)*(rank-below)/(c-below)
		}
		lower, below = le, buckets[le]
	}
	return math.NaN()
}

// TestTheReaderReadsTheRecordedScenarioFromTheEmbeddedStore writes the
// reference scenario (sourcetest.Carpool) into the embedded store and reads
// it back through the Reader in the middle of its spike: every signal is
// what the scenario's own points say, computed here independently of
// PromQL.
func TestTheReaderReadsTheRecordedScenarioFromTheEmbeddedStore(t *testing.T) {
	s, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(embedded.ConfigFromSpec(s, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	sc := sourcetest.Carpool(s, time.Now())
	if err := sc.Append(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	spike, ok := sc.Phase(sourcetest.PhaseSpike)
	if !ok {
		t.Fatal("the scenario has no spike")
	}
	at := spike.From.Add(2*time.Minute + sc.Step/2) // off the sample grid, a full window into the spike
	r, err := signals.New(signals.Config{Spec: s, Querier: st})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := r.Read(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	e := expect{sc: sc, t: at, window: signals.DefaultLatencyWindow}
	near := func(what string, got engine.Measured, want float64, ok bool) {
		t.Helper()
		if !ok {
			if got.OK {
				t.Errorf("%s = %v, want absent", what, got.Value)
			}
			return
		}
		if !got.OK || math.Abs(got.Value-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %+v, want %v", what, got, want)
		}
	}
	maxOf, minOf := math.Max, math.Min
	syncLag := e.values(catalog.SyncLag.Name, catalog.LabelTargetRegion, maxOf)
	streamLag := e.values(catalog.StreamLagMessages.Name, catalog.LabelRegion, maxOf)
	errRatio := e.values(catalog.RegionErrorRatio.Name, catalog.LabelRegion, maxOf)
	config := e.values(catalog.ConfigConsistent.Name, "__name__", minOf)[catalog.ConfigConsistent.Name]
	buckets, count := e.histogram()
	objective := map[[2]string]float64{}
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			objective[[2]string{svc.Name, slo.Name}] = slo.Objective
		}
	}
	sloValue := func(name, region, service, slo string) (float64, bool) {
		for _, ser := range sc.Series {
			l := ser.Labels
			if l["__name__"] == name && l[catalog.LabelRegion] == region && l[catalog.LabelService] == service && l[catalog.LabelSLO] == slo {
				return e.latest(ser)
			}
		}
		return 0, false
	}
	for _, reg := range sig.Regions {
		n := reg.Region
		near(n+" P95", reg.LatencyP95, quantile(0.95, buckets[n]), true)
		near(n+" P99", reg.LatencyP99, quantile(0.99, buckets[n]), true)
		near(n+" traffic", reg.Traffic, count[n], true)
		v, ok := syncLag[n]
		near(n+" sync lag", reg.Components[spec.MeasureSyncLag], v, ok)
		v, ok = streamLag[n]
		near(n+" stream lag", reg.Components[spec.MeasureStreamLag], v, ok)
		v, ok = errRatio[n]
		near(n+" API success", reg.Components[spec.MeasureAPISuccess], 100*(1-v), true) // no error series: 100 %
		near(n+" config consistency", reg.Components[spec.MeasureConfigConsistency], config, true)
		for _, slo := range reg.SLOs {
			id := n + " " + slo.Service + "/" + slo.SLO
			v, ok := sloValue(catalog.SLOAttainment.Name, n, slo.Service, slo.SLO)
			near(id+" attainment", slo.Attainment, v, ok)
			v, ok = sloValue(catalog.SLOErrorBudgetRemaining.Name, n, slo.Service, slo.SLO)
			near(id+" budget", slo.BudgetRemaining, v, ok)
			for _, w := range s.AlertWindows() {
				win := spec.Duration(w).String()
				v, ok := sloValue(catalog.SLIErrorRatioName(win), n, slo.Service, slo.SLO)
				near(id+" burn "+win, slo.BurnRates[win], v/((100-objective[[2]string{slo.Service, slo.SLO}])/100), ok)
			}
		}
	}
	// The scenario's spike is in its first region: the reader must see it.
	first, other := sig.Regions[0], sig.Regions[1]
	if !(first.LatencyP95.Value > other.LatencyP95.Value && first.Components[spec.MeasureSyncLag].Value > other.Components[spec.MeasureSyncLag].Value) {
		t.Errorf("the spiked region %s does not stand out: P95 %v vs %v, sync lag %v vs %v", first.Region,
			first.LatencyP95.Value, other.LatencyP95.Value, first.Components[spec.MeasureSyncLag].Value, other.Components[spec.MeasureSyncLag].Value)
	}
}
