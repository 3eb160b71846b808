package signals

import (
	"fmt"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Families of queries. A family is one PromQL expression that returns one
// sample per region (or per service, SLO and region) for every region at
// once; its name labels carpool_engine_query_errors_total.
const (
	FamilyLatencyP99 = "latency_p99"
	FamilyLatencyP95 = "latency_p95"
	FamilyTraffic    = "traffic"
	FamilyAttainment = "attainment"
	FamilyBudget     = "error_budget_remaining"
	// FamilyBurnRatePrefix + window ("5m", "1h", ...) is the family of one
	// burn-rate window.
	FamilyBurnRatePrefix = "burn_rate_"
	// FamilyHealthPrefix + measure name (spec.MeasureSyncLag, ...) is the
	// family of one health measurement.
	FamilyHealthPrefix = "health_"
)

// DefaultLatencyWindow is the default rate window of the region's P99 and
// P95 latency and of its traffic: the minute of the recorded
// carpool:request_duration_seconds:p99_rate1m, so the breaker, the weights
// and the dashboards look at the same minute of traffic.
const DefaultLatencyWindow = time.Minute

// GatewayService is the service label value of the gateways' own request
// histograms. A gateway labels its requests with its own region whatever
// region served them, so a slow region would raise every region's latency
// through the gateways that route to it, and every proxied request would be
// counted twice: the latency quantiles and the traffic leave the gateways
// out and measure each region by the services it runs.
const GatewayService = "gateway"

// Kind says how a family's samples map to signals.
type Kind int

// Kinds of family.
const (
	// PerRegion samples carry the region in Label.
	PerRegion Kind = iota
	// PerSLO samples carry service, slo and region labels.
	PerSLO
	// Global is one sample (no labels) applied to every region.
	Global
)

// Query is one family's PromQL expression and how to read its samples.
type Query struct {
	Family string
	Expr   string
	Kind   Kind
	// Label is the label that names the region (PerRegion), e.g. region,
	// target_region or target.
	Label string
	// Window is the burn-rate window of a burn-rate family ("5m").
	Window string
	// Measure is the health measurement of a health family.
	Measure string
}

// Queries returns every query a Reader of s runs each tick, with the
// region latency and traffic over latencyWindow (DefaultLatencyWindow when
// zero), in a stable order: region latency and traffic, the SLO families
// (attainment, budget, one burn rate per alert window of the spec) and one
// per health measurement the spec's components use.
func Queries(s *spec.Spec, latencyWindow time.Duration) []Query {
	if latencyWindow <= 0 {
		latencyWindow = DefaultLatencyWindow
	}
	w := spec.Duration(latencyWindow).String()
	count := catalog.RequestDuration.Name + "_count"
	bucket := catalog.RequestDuration.Name + "_bucket"
	quantile := func(q string) string {
		return fmt.Sprintf(`histogram_quantile(%s, sum by (%s, %s) (rate(%s{%s!=%q}[%s])))`,
			q, catalog.LabelRegion, catalog.LabelLe, bucket, catalog.LabelService, GatewayService, w)
	}
	traffic := fmt.Sprintf("sum by (%s) (rate(%s{%s!=%q}[%s]))", catalog.LabelRegion, count, catalog.LabelService, GatewayService, w)
	qs := []Query{
		{Family: FamilyLatencyP99, Kind: PerRegion, Label: catalog.LabelRegion, Expr: quantile("0.99")},
		{Family: FamilyLatencyP95, Kind: PerRegion, Label: catalog.LabelRegion, Expr: quantile("0.95")},
		{Family: FamilyTraffic, Kind: PerRegion, Label: catalog.LabelRegion, Expr: traffic},
		{Family: FamilyAttainment, Kind: PerSLO, Expr: catalog.SLOAttainment.Name},
		{Family: FamilyBudget, Kind: PerSLO, Expr: catalog.SLOErrorBudgetRemaining.Name},
	}
	for _, w := range s.AlertWindows() {
		win := spec.Duration(w).String()
		qs = append(qs, Query{Family: FamilyBurnRatePrefix + win, Kind: PerSLO, Window: win, Expr: catalog.SLIErrorRatioName(win)})
	}
	seen := map[string]bool{}
	for _, c := range s.Health.Components {
		if seen[c.Measure] {
			continue
		}
		seen[c.Measure] = true
		if q, ok := healthQuery(c.Measure, traffic); ok {
			qs = append(qs, q)
		}
	}
	return qs
}

// healthQuery is the query of one health measurement.
func healthQuery(measure, traffic string) (Query, bool) {
	q := Query{Family: FamilyHealthPrefix + measure, Measure: measure, Kind: PerRegion}
	switch measure {
	case spec.MeasureSyncLag:
		// carpool_sync_lag_seconds{source_region, target_region} is how late
		// writes of the source reach the target: a region's sync lag is the
		// worst lag of replication into it.
		q.Label = catalog.LabelTargetRegion
		q.Expr = fmt.Sprintf("max by (%s) (%s)", catalog.LabelTargetRegion, catalog.SyncLag.Name)
	case spec.MeasureAPISuccess:
		// A region without a single failed request has no error series, so
		// the recorded ratio is absent there: count it as 0 while the region
		// has traffic (as the SLO rules do), absent when it has none.
		q.Label = catalog.LabelRegion
		q.Expr = fmt.Sprintf("100 * (1 - (%s or 0 * %s))", catalog.RegionErrorRatio.Name, traffic)
	case spec.MeasureStreamLag:
		q.Label = catalog.LabelRegion
		q.Expr = fmt.Sprintf("max by (%s) (%s)", catalog.LabelRegion, catalog.StreamLagMessages.Name)
	case spec.MeasureConfigConsistency:
		// carpool_config_consistent is labelled by source only: whether every
		// region's configuration hashes the same. The worst source applies
		// to every region.
		q.Kind = Global
		q.Expr = fmt.Sprintf("min(%s)", catalog.ConfigConsistent.Name)
	case spec.MeasureProbeHealthy:
		// carpool_probe_healthy{region=prober, target=probed region}: the
		// share of probers that see the target healthy.
		q.Label = catalog.LabelTarget
		q.Expr = fmt.Sprintf("avg by (%s) (%s)", catalog.LabelTarget, catalog.ProbeHealthy.Name)
	default:
		return Query{}, false
	}
	return q, true
}
