package dashboards

import (
	"fmt"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// percentiles are the latency quantiles the dashboards draw.
var percentiles = []struct {
	q    float64
	name string
}{{0.5, "P50"}, {0.95, "P95"}, {0.99, "P99"}}

// latencyTargets draws P50, P95 and P99 of the request duration grouped by
// the labels in by.
func latencyTargets(by []string, legend string, matchers ...string) []target {
	var out []target
	for _, p := range percentiles {
		l := p.name
		if legend != "" {
			l += " " + legend
		}
		out = append(out, target{expr: quantile(p.q, by, matchers...), legend: l})
	}
	return out
}

// sumRate is sum by (by) of the rate of selector.
func sumRate(by []string, selector string) string {
	if len(by) == 0 {
		return fmt.Sprintf("sum (%s)", rateOf(selector))
	}
	return fmt.Sprintf("sum by (%s) (%s)", strings.Join(by, ", "), rateOf(selector))
}

func errorRateDesc(s *spec.Spec) string {
	return fmt.Sprintf("%s (%s) fires when a region's error rate, all services, stays above %s for %s (dashed line). A client's 4xx is not an error.",
		catalog.AlertErrorRate.Name, catalog.AlertErrorRate.Tier, pct(s.Alerting.ErrorRate.Threshold), spec.Duration(s.Alerting.ErrorRate.For))
}

func latencySteps(s *spec.Spec) []step {
	return ordered(base(green), at(spec.Duration(s.Breaker.Trip.LatencyP99).Seconds(), red))
}

func latencyDesc(s *spec.Spec) string {
	return fmt.Sprintf("From the request-duration histogram (bucket bounds %s s). The dashed line is the breaker's trip bar: a region whose P99 stays above %s for %s is broken and its traffic rerouted.",
		fmtNums(catalog.RequestDurationBuckets), spec.Duration(s.Breaker.Trip.LatencyP99), spec.Duration(s.Breaker.Trip.For))
}

func serviceRED(s *spec.Spec) board {
	count := catalog.RequestDuration.Name + "_count"
	m := []string{
		re(catalog.LabelService, "$"+serviceVariable),
		re(catalog.LabelRegion, "$"+regionVariable),
		re(catalog.LabelOperation, "$"+operationVariable),
	}
	byRegion := []string{catalog.LabelService, catalog.LabelRegion}
	byOperation := []string{catalog.LabelService, catalog.LabelOperation}

	var sloLines []string
	for _, r := range slos(s) {
		line := fmt.Sprintf("%s %s %s", r.name(), r.slo.Kind, pct(r.slo.Objective))
		if r.slo.Kind == spec.KindLatency {
			line += " under " + r.slo.Threshold.String()
		}
		sloLines = append(sloLines, line)
	}

	rate := section{title: "Rate", panels: []panel{
		{
			kind: timeSeries, title: "Request rate by region",
			targets: []target{{expr: sumRate(byRegion, sel(count, m...)), legend: "{{service}} {{region}}"}},
			unit:    unitReqps,
		},
		{
			kind: timeSeries, title: "Request rate by operation",
			targets: []target{{expr: sumRate(byOperation, sel(count, m...)), legend: "{{service}} {{operation}}"}},
			unit:    unitReqps,
		},
	}}
	errorSteps := ordered(base(green), at(s.Alerting.ErrorRate.Threshold/100, red))
	errs := section{title: "Errors", panels: []panel{
		{
			kind: timeSeries, title: "Error ratio by region",
			desc:       errorRateDesc(s),
			targets:    []target{{expr: errorRatio(byRegion, m...), legend: "{{service}} {{region}}"}},
			unit:       unitRatio,
			thresholds: errorSteps,
			links:      []link{runbook(s, catalog.AlertErrorRate)},
		},
		{
			kind: timeSeries, title: "Error ratio by operation",
			desc:       errorRateDesc(s),
			targets:    []target{{expr: errorRatio(byOperation, m...), legend: "{{service}} {{operation}}"}},
			unit:       unitRatio,
			thresholds: errorSteps,
			links:      []link{runbook(s, catalog.AlertErrorRate)},
		},
		{
			kind: timeSeries, title: "Server-side errors by status code", w: 24,
			targets: []target{{expr: sumRate([]string{catalog.LabelService, catalog.LabelCode}, sel(count, slices.Concat(m, []string{eq(catalog.LabelOutcome, catalog.OutcomeError)})...)), legend: "{{service}} {{code}}"}},
			unit:    unitReqps,
			stacked: true,
		},
	}}
	latency := section{title: "Latency", panels: []panel{
		{
			kind: timeSeries, title: "Latency by region (P50, P95, P99)",
			desc:       latencyDesc(s),
			targets:    latencyTargets(byRegion, "{{service}} {{region}}", m...),
			unit:       unitSeconds,
			thresholds: latencySteps(s),
			links:      []link{runbook(s, catalog.AlertBreakerOpen)},
		},
		{
			kind: timeSeries, title: "Latency by operation (P50, P95, P99)",
			desc:       latencyDesc(s),
			targets:    latencyTargets(byOperation, "{{service}} {{operation}}", m...),
			unit:       unitSeconds,
			thresholds: latencySteps(s),
		},
	}}
	sloSel := []string{re(catalog.LabelService, "$"+serviceVariable), re(catalog.LabelRegion, "$"+regionVariable)}
	sloSection := section{title: "SLOs", panels: []panel{
		{
			kind: timeSeries, title: "SLO attainment",
			desc:     "Share of good events over each SLO's rolling window. The spec's SLOs: " + strings.Join(sloLines, "; ") + ".",
			targets:  []target{{expr: sel(catalog.SLOAttainment.Name, sloSel...), legend: "{{service}}/{{slo}} {{region}}"}},
			unit:     unitRatio,
			decimals: ptr(3.0),
		},
		{
			kind: timeSeries, title: "Error budget remaining",
			desc:       "Share of each SLO's error budget left over its rolling window; below 0 (dashed line) the budget is overspent.",
			targets:    []target{{expr: sel(catalog.SLOErrorBudgetRemaining.Name, sloSel...), legend: "{{service}}/{{slo}} {{region}}"}},
			unit:       unitRatio,
			thresholds: ordered(base(red), at(0, green)),
			links:      []link{runbook(s, catalog.AlertBurnFast), runbook(s, catalog.AlertBurnSlow)},
		},
	}}

	return board{
		file: REDFile, uidSuffix: "red", title: "Carpool service RED",
		desc: "Rate, errors and duration of each carpool service by region and operation, with its SLOs.",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVar(s),
			regionVar(count),
			serviceVar(s),
			labelValuesVar(operationVariable, "Operation", sel(count, re(catalog.LabelService, "$"+serviceVariable)), catalog.LabelOperation),
		},
		sections: []section{rate, errs, latency, sloSection},
	}
}
