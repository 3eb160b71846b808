package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// loadgenNote says where the load generator's own metrics are.
const loadgenNote = "Server-side view, from the services' own metrics. The load generator's client-side metrics " +
	"(carpool_loadgen_*: scheduled, achieved and dropped iterations, latency from the intended start) reach a " +
	"Prometheus-compatible store when `carpoolsla loadgen --push-url` is given; see docs/loadgen.md."

func load(s *spec.Spec) board {
	count := catalog.RequestDuration.Name + "_count"
	m := []string{re(catalog.LabelRegion, "$"+regionVariable), re(catalog.LabelService, "$"+serviceVariable)}
	byRegion := []string{catalog.LabelRegion}
	errorSteps := ordered(base(green), at(s.Alerting.ErrorRate.Threshold/100, red))
	orders := sel(catalog.OrdersCreated.Name, inRegions)

	summary := section{title: "Summary", panels: []panel{
		{
			kind: statKind, title: "Request rate", w: 6, h: 5,
			desc:    "Requests served per second by the selected services and regions. " + loadgenNote,
			targets: []target{{expr: sumRate(nil, sel(count, m...)), legend: "requests"}},
			unit:    unitReqps,
		},
		{
			kind: statKind, title: "Error ratio", w: 6, h: 5,
			desc:       errorRateDesc(s),
			targets:    []target{{expr: errorRatio(nil, m...), legend: "errors"}},
			unit:       unitRatio,
			decimals:   ptr(3.0),
			thresholds: errorSteps,
			links:      []link{runbook(s, catalog.AlertErrorRate)},
		},
		{
			kind: statKind, title: "P99 latency", w: 6, h: 5,
			desc:       latencyDesc(s),
			targets:    []target{{expr: quantile(0.99, nil, m...), legend: "P99"}},
			unit:       unitSeconds,
			thresholds: latencySteps(s),
		},
		{
			kind: statKind, title: "Rides created", w: 6, h: 5,
			desc:    "Orders accepted per second in the selected regions.",
			targets: []target{{expr: sumRate(nil, orders), legend: "rides"}},
			unit:    unitOps,
		},
	}}
	traffic := section{title: "Throughput and errors", panels: []panel{
		{
			kind: timeSeries, title: "Request rate by region",
			desc:    loadgenNote,
			targets: []target{{expr: sumRate(byRegion, sel(count, m...)), legend: "{{region}}"}},
			unit:    unitReqps,
			stacked: true,
		},
		{
			kind: timeSeries, title: "Error ratio by region",
			desc:       errorRateDesc(s),
			targets:    []target{{expr: errorRatio(byRegion, m...), legend: "{{region}}"}},
			unit:       unitRatio,
			thresholds: errorSteps,
			links:      []link{runbook(s, catalog.AlertErrorRate)},
		},
	}}
	latency := section{title: "Latency", panels: []panel{
		{
			kind: timeSeries, title: "Latency overall (P50, P95, P99)",
			desc:       latencyDesc(s),
			targets:    latencyTargets(nil, "", m...),
			unit:       unitSeconds,
			thresholds: latencySteps(s),
		},
		{
			kind: timeSeries, title: "Latency by region (P50, P95, P99)",
			desc:       latencyDesc(s),
			targets:    latencyTargets(byRegion, "{{region}}", m...),
			unit:       unitSeconds,
			thresholds: latencySteps(s),
			links:      []link{runbook(s, catalog.AlertBreakerOpen)},
		},
	}}
	writes := section{title: "Rides and replication", panels: []panel{
		{
			kind: timeSeries, title: "Rides created by region",
			targets: []target{{expr: sumRate(byRegion, orders), legend: "{{region}}"}},
			unit:    unitOps,
			stacked: true,
		},
		{
			kind: timeSeries, title: "Replication backlog",
			desc:    "Outbox events committed in a source region and not yet applied in a target, for pairs involving a selected region: the write load replication has not caught up with.",
			targets: []target{{expr: pairs(catalog.ReplicationBacklog.Name), legend: pairLegend}},
			unit:    unitPlain,
			links:   []link{runbook(s, catalog.AlertSyncLag)},
		},
	}}

	return board{
		file: LoadFile, uidSuffix: "load", title: "Carpool load",
		desc:     "Request rate, error ratio and latency percentiles overall and by region, rides created and replication backlog, for watching a load test or a drill. " + loadgenNote,
		timeFrom: "now-1h", refresh: "10s",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVar(s),
			regionVar(count),
			serviceVar(s),
		},
		sections: []section{summary, traffic, latency, writes},
	}
}
