package sourcetest

import (
	"fmt"
	"slices"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Names of the Carpool scenario's phases.
const (
	PhaseBaseline  = "baseline"
	PhaseSpike     = "spike"
	PhaseRecovered = "recovered"
)

// CarpoolStep is the sample interval of the Carpool scenario.
const CarpoolStep = 15 * time.Second

// Carpool durations: a baseline, a spike in the first region, a recovery.
const (
	carpoolBaseline  = 4 * time.Minute
	carpoolSpike     = 3 * time.Minute
	carpoolRecovered = 3 * time.Minute
)

// Carpool builds the reference scenario of the SLA engine for the regions,
// services and SLOs of s, ending at end (rounded down to the step). It
// lasts 10 minutes, sampled every CarpoolStep:
//
//   - baseline (4 m): every region healthy;
//   - spike (3 m): the first region's recorded P99 is 450 ms, its error
//     ratio and SLO burn rates are high, replication into it lags 8 s, its
//     stream lags 1,500 messages, the other regions' probes see it down and
//     one configuration source disagrees;
//   - recovered (3 m): back to the baseline.
//
// It holds the recorded series the generated rules would write (SLO
// attainment, error budget, error ratio per alert window, composite, region
// P99 and error ratio; the last region has no error-ratio series, as a
// region without failures has none) and the raw series the engine reads
// directly (request-duration histograms with constant rates, for rates and
// quantiles; sync lag, stream lag, config consistency, probes). Recorded
// values are written as they are, not derived from the raw ones.
func Carpool(s *spec.Spec, end time.Time) Scenario {
	step := CarpoolStep
	end = end.Truncate(step)
	start := end.Add(-(carpoolBaseline + carpoolSpike + carpoolRecovered))
	spikeFrom := start.Add(carpoolBaseline)
	spikeTo := spikeFrom.Add(carpoolSpike)
	sc := Scenario{
		Name: "carpool",
		Step: step,
		Phases: []Phase{
			{Name: PhaseBaseline, From: start, To: spikeFrom},
			{Name: PhaseSpike, From: spikeFrom, To: spikeTo},
			{Name: PhaseRecovered, From: spikeTo, To: end},
		},
	}
	var regions []string
	for _, r := range s.Regions {
		regions = append(regions, r.Name)
	}
	if len(regions) == 0 {
		panic("sourcetest.Carpool: the spec has no regions") // spec validation rules this out
	}
	spiked := regions[0]
	inSpike := func(t time.Time) bool { return !t.Before(spikeFrom) && t.Before(spikeTo) }
	// gauge adds a series whose value at t is v(t).
	gauge := func(v func(t time.Time) float64, nameValues ...string) {
		ser := Series{Labels: lbls(nameValues...)}
		for t := start; !t.After(end); t = t.Add(step) {
			ser.Points = append(ser.Points, Point{T: t, V: v(t)})
		}
		sc.Series = append(sc.Series, ser)
	}
	// counter adds a counter growing by perStep every step from a large
	// base (so that no extrapolation reaches zero).
	counter := func(perStep float64, nameValues ...string) {
		ser := Series{Labels: lbls(nameValues...)}
		v := 1000 * perStep
		for t := start; !t.After(end); t = t.Add(step) {
			ser.Points = append(ser.Points, Point{T: t, V: v})
			v += perStep
		}
		sc.Series = append(sc.Series, ser)
	}
	spikeOr := func(region string, spikeV, normal float64) func(time.Time) float64 {
		return func(t time.Time) float64 {
			if region == spiked && inSpike(t) {
				return spikeV
			}
			return normal
		}
	}

	for i, r := range regions {
		base := 0.12 + 0.01*float64(i)
		gauge(spikeOr(r, 0.45, base), nameLabel, catalog.RegionLatencyP99.Name, catalog.LabelRegion, r)
		if i < len(regions)-1 || len(regions) == 1 {
			gauge(spikeOr(r, 0.05, 0.0005), nameLabel, catalog.RegionErrorRatio.Name, catalog.LabelRegion, r)
		}
		gauge(spikeOr(r, 0.95, 0.9995), nameLabel, catalog.CompositeSLA.Name, catalog.LabelRegion, r)
		gauge(spikeOr(r, 1500, 20), nameLabel, catalog.StreamLagMessages.Name,
			catalog.LabelRegion, r, catalog.LabelStream, "rides", catalog.LabelGroup, "dispatch")
		for _, src := range regions {
			if src == r {
				continue
			}
			gauge(spikeOr(r, 8, 0.5), nameLabel, catalog.SyncLag.Name,
				catalog.LabelSourceRegion, src, catalog.LabelTargetRegion, r)
			gauge(spikeOr(r, 0, 1), nameLabel, catalog.ProbeHealthy.Name,
				catalog.LabelRegion, src, catalog.LabelTarget, r)
		}
		// Request histograms: per 15 s step, constant counts, cumulative
		// per bucket. The spiked region has a slow tail all along (its
		// P95 is 0.45 s) and fails some requests; gateways are slower
		// still, and the engine's P95 must leave them out.
		for _, h := range []struct {
			service, operation, outcome string
			cumulative                  []float64 // per bucket of catalog.RequestDurationBuckets, then +Inf
		}{
			{"order", "create_ride", catalog.OutcomeOK, fastCounts},
			{"gateway", "route", catalog.OutcomeOK, gatewayCounts},
		} {
			counts := h.cumulative
			if r == spiked && h.service != "gateway" {
				counts = slowCounts
			}
			histogram(counter, counts, r, h.service, h.operation, "200", h.outcome)
		}
		if r == spiked {
			histogram(counter, errorCounts, r, "order", "create_ride", "500", catalog.OutcomeError)
		}
	}
	gauge(func(time.Time) float64 { return 1 }, nameLabel, catalog.ConfigConsistent.Name, catalog.LabelSource, "gateway")
	gauge(func(t time.Time) float64 {
		if inSpike(t) {
			return 0
		}
		return 1
	}, nameLabel, catalog.ConfigConsistent.Name, catalog.LabelSource, "pricing")

	// SLO series, per region and global, as the generated rules record them.
	windows := alertWindows(s)
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			budget := 1 - slo.Objective/100
			for _, r := range append(append([]string(nil), regions...), catalog.GlobalRegion) {
				// Burn rates: 0.2 normally; in the spike 20 on the short
				// windows (≤ 30m) and 3 on the long ones, a third of it
				// globally.
				burn := func(t time.Time, w time.Duration) float64 {
					if !inSpike(t) || (r != spiked && r != catalog.GlobalRegion) {
						return 0.2
					}
					b := 3.0
					if w <= 30*time.Minute {
						b = 20
					}
					if r == catalog.GlobalRegion {
						b /= 3
					}
					return b
				}
				id := []string{catalog.LabelService, svc.Name, catalog.LabelSLO, slo.Name, catalog.LabelRegion, r}
				for _, w := range windows {
					gauge(func(t time.Time) float64 { return budget * burn(t, w) },
						append([]string{nameLabel, catalog.SLIErrorRatioName(spec.Duration(w).String())}, id...)...)
				}
				// Over the SLO's window: 0.3 of the budget spent normally,
				// 1.5 (breached) in the spike.
				spent := func(t time.Time) float64 {
					if burn(t, time.Duration(slo.Window)) > 1 {
						return 1.5
					}
					return 0.3
				}
				gauge(func(t time.Time) float64 { return 1 - budget*spent(t) },
					append([]string{nameLabel, catalog.SLOAttainment.Name}, id...)...)
				gauge(func(t time.Time) float64 { return 1 - spent(t) },
					append([]string{nameLabel, catalog.SLOErrorBudgetRemaining.Name}, id...)...)
			}
		}
	}
	if err := sc.Validate(); err != nil {
		panic(fmt.Sprintf("sourcetest.Carpool: %v", err)) // the builder above is wrong
	}
	return sc
}

// Cumulative requests per 15 s step at or below each bucket boundary of
// catalog.RequestDurationBuckets (0.005 … 10 s), then +Inf.
var (
	fastCounts    = []float64{0, 3, 15, 45, 90, 120, 138, 146, 148, 149, 150, 150, 150, 150}
	slowCounts    = []float64{0, 1, 5, 15, 30, 60, 90, 130, 145, 148, 150, 150, 150, 150}
	gatewayCounts = []float64{0, 0, 0, 5, 20, 50, 80, 110, 140, 148, 150, 150, 150, 150}
	errorCounts   = []float64{0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3}
)

// histogram adds the _bucket, _count and _sum series of one
// carpool_request_duration_seconds child.
func histogram(counter func(float64, ...string), cumulative []float64, region, service, operation, code, outcome string) {
	name := catalog.RequestDuration.Name
	id := []string{catalog.LabelRegion, region, catalog.LabelService, service, catalog.LabelOperation, operation,
		catalog.LabelCode, code, catalog.LabelOutcome, outcome}
	if len(cumulative) != len(catalog.RequestDurationBuckets)+1 {
		panic("sourcetest: a histogram needs one count per bucket and one for +Inf") // the tables above are wrong
	}
	for i, le := range catalog.RequestDurationBuckets {
		counter(cumulative[i], append([]string{nameLabel, name + "_bucket", catalog.LabelLe, catalog.FormatLe(le)}, id...)...)
	}
	total := cumulative[len(cumulative)-1]
	counter(total, append([]string{nameLabel, name + "_bucket", catalog.LabelLe, "+Inf"}, id...)...)
	counter(total, append([]string{nameLabel, name + "_count"}, id...)...)
	counter(total*0.1, append([]string{nameLabel, name + "_sum"}, id...)...)
}

// lbls builds a label map from alternating names and values.
func lbls(nameValues ...string) map[string]string {
	m := make(map[string]string, len(nameValues)/2)
	for i := 0; i+1 < len(nameValues); i += 2 {
		m[nameValues[i]] = nameValues[i+1]
	}
	return m
}

// Query is one instant query of the comparison, named for messages.
type Query struct {
	Name string
	Expr string
}

// EngineQueries are queries of the kinds the SLA engine runs each tick, for
// the spec s: the recorded series by name, a P95 from the request
// histogram's buckets, traffic, the health measurements, and the
// trip-rule windows (max_over_time, min_over_time) over the recorded P99.
func EngineQueries(s *spec.Spec) []Query {
	count := catalog.RequestDuration.Name + "_count"
	bucket := catalog.RequestDuration.Name + "_bucket"
	traffic := fmt.Sprintf("sum by (region) (rate(%s[1m]))", count)
	trip := s.Breaker.Trip.For.String()
	qs := []Query{
		{"recorded p99", catalog.RegionLatencyP99.Name},
		// Aggregated by region: VictoriaMetrics keeps __name__ on a bare
		// min_over_time, Prometheus drops it.
		{"recorded p99 held above the trip bar", fmt.Sprintf("min by (region) (min_over_time(%s[%s])) > %g", catalog.RegionLatencyP99.Name, trip, spec.D(s.Breaker.Trip.LatencyP99).Seconds())},
		{"worst recorded p99 over the trip window", fmt.Sprintf("max by (region) (max_over_time(%s[%s]))", catalog.RegionLatencyP99.Name, trip)},
		{"p95 from buckets", fmt.Sprintf(`histogram_quantile(0.95, sum by (region, le) (rate(%s{service!="gateway"}[1m])))`, bucket)},
		{"p99 from buckets", fmt.Sprintf(`histogram_quantile(0.99, sum by (region, le) (rate(%s[1m])))`, bucket)},
		{"traffic", traffic},
		{"attainment", catalog.SLOAttainment.Name},
		{"error budget remaining", catalog.SLOErrorBudgetRemaining.Name},
		{"composite", catalog.CompositeSLA.Name},
		{"sync lag into each region", fmt.Sprintf("max by (target_region) (%s)", catalog.SyncLag.Name)},
		{"api success percent", fmt.Sprintf("100 * (1 - (%s or 0 * %s))", catalog.RegionErrorRatio.Name, traffic)},
		{"stream lag", fmt.Sprintf("max by (region) (%s)", catalog.StreamLagMessages.Name)},
		{"config consistency (scalar-like)", fmt.Sprintf("min(%s)", catalog.ConfigConsistent.Name)},
		{"probe healthy fraction", fmt.Sprintf("avg by (target) (%s)", catalog.ProbeHealthy.Name)},
		{"a scalar", fmt.Sprintf("scalar(count(%s))", catalog.RegionLatencyP99.Name)},
	}
	for _, w := range alertWindows(s) {
		name := catalog.SLIErrorRatioName(spec.Duration(w).String())
		qs = append(qs, Query{"error ratio " + spec.Duration(w).String(), name})
	}
	return qs
}

// alertWindows returns the spec's burn-rate windows without repeats.
func alertWindows(s *spec.Spec) []time.Duration {
	var ws []time.Duration
	for _, w := range s.AlertWindows() {
		if !slices.Contains(ws, w) {
			ws = append(ws, w)
		}
	}
	return ws
}
