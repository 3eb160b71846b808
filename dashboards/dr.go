package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// phaseTotal is the phase label value of a drill's whole recovery time
// (carpool_drill_rto_seconds has phases detect, decide, shift and total).
const phaseTotal = "total"

// pairLegend names a source→target region pair.
const pairLegend = "{{source_region}} → {{target_region}}"

// pairName is the display name pairLegend gives a pair.
func pairName(source, target string) string { return source + " → " + target }

// pairs selects the series of metric for every region pair that involves a
// selected region, as source or as target.
func pairs(metric string) string {
	return fmt.Sprintf("%s or %s",
		sel(metric, re(catalog.LabelSourceRegion, "$"+regionVariable)),
		sel(metric, re(catalog.LabelTargetRegion, "$"+regionVariable)))
}

// pairsRate is the per-pair rate of a counter, for pairs as in pairs.
func pairsRate(metric string, by ...string) string {
	return fmt.Sprintf("sum by (%s) (%s or %s)", strings.Join(by, ", "),
		rateOf(sel(metric, re(catalog.LabelSourceRegion, "$"+regionVariable))),
		rateOf(sel(metric, re(catalog.LabelTargetRegion, "$"+regionVariable))))
}

// component returns the health component that reads measure, if any.
func component(s *spec.Spec, measure string) (spec.HealthComponent, bool) {
	for _, c := range s.Health.Components {
		if c.Measure == measure {
			return c, true
		}
	}
	return spec.HealthComponent{}, false
}

// lowerIsBetter colors a measurement by a health curve that scores lower
// values better: green at or below good, yellow up to bad, red past it.
func lowerIsBetter(c spec.HealthComponent) []step {
	if c.Curve.Good >= c.Curve.Bad {
		return nil
	}
	return ordered(base(green), at(c.Curve.Good, yellow), at(c.Curve.Bad, red))
}

func drSync(s *spec.Spec) board {
	lagSteps := []step{base(green), at(s.Alerting.SyncLag.Threshold, red)}
	lagDesc := fmt.Sprintf("Now minus the newest source heartbeat applied in the target, for each pair involving a selected region. %s (%s, PagerDuty) fires above %s s for %s (red line).",
		catalog.AlertSyncLag.Name, catalog.AlertSyncLag.Tier, fmtNum(s.Alerting.SyncLag.Threshold), spec.Duration(s.Alerting.SyncLag.For))
	if c, ok := component(s, spec.MeasureSyncLag); ok && c.Curve.Good < s.Alerting.SyncLag.Threshold {
		lagSteps = append(lagSteps, at(c.Curve.Good, yellow))
		lagDesc += fmt.Sprintf(" Yellow past the health target of %s s.", fmtNum(c.Curve.Good))
	}

	rpo := panel{
		kind: timeSeries, title: "RPO exposure per region pair",
		desc: fmt.Sprintf("Age of the oldest write committed in the source and not yet applied in the target: the data lost if the source died now. Objective %s by default; %s (%s) fires above a pair's objective for %s.",
			s.DR.RPO, catalog.AlertRPO.Name, catalog.AlertRPO.Tier, s.Alerting.RPOFor),
		targets:    []target{{expr: pairs(catalog.RPOExposure.Name), legend: pairLegend}},
		unit:       unitSeconds,
		thresholds: ordered(base(green), at(s.DR.RPO.Seconds(), red)),
		links:      []link{runbook(s, catalog.AlertRPO)},
	}
	for _, p := range s.DR.Pairs {
		rpo.overrides = append(rpo.overrides, override{byName: pairName(p.Source, p.Target), thresholds: ordered(base(green), at(p.RPO.Seconds(), red))})
		rpo.desc += fmt.Sprintf(" %s: %s.", pairName(p.Source, p.Target), p.RPO)
	}

	replication := section{title: "Replication", panels: []panel{
		{
			kind: timeSeries, title: "Sync lag per region pair",
			desc:       lagDesc,
			targets:    []target{{expr: pairs(catalog.SyncLag.Name), legend: pairLegend}},
			unit:       unitSeconds,
			thresholds: ordered(lagSteps...),
			links:      []link{runbook(s, catalog.AlertSyncLag)},
		},
		rpo,
		{
			kind: timeSeries, title: "Replication backlog",
			desc:    "Outbox events committed in the source and not yet applied in the target.",
			targets: []target{{expr: pairs(catalog.ReplicationBacklog.Name), legend: pairLegend}},
			unit:    unitPlain,
		},
		{
			kind: timeSeries, title: "Replication applied and conflicts",
			desc: "Replication events applied per second, and those resolved by last-writer-wins because the target held a concurrent write.",
			targets: []target{
				{expr: pairsRate(catalog.ReplicationApplied.Name, catalog.LabelSourceRegion, catalog.LabelTargetRegion), legend: "applied " + pairLegend},
				{expr: pairsRate(catalog.ReplicationConflicts.Name, catalog.LabelSourceRegion, catalog.LabelTargetRegion), legend: "conflicts " + pairLegend},
			},
			unit: unitOps,
		},
	}}

	streamDesc := "Messages of each stream not yet delivered to its consumer group."
	var streamSteps []step
	if c, ok := component(s, spec.MeasureStreamLag); ok {
		streamSteps = lowerIsBetter(c)
		streamDesc += fmt.Sprintf(" The %s health component scores 100 at or below %s and 0 at %s messages.", c.Name, fmtNum(c.Curve.Good), fmtNum(c.Curve.Bad))
	}
	streams := section{title: "Streams, configuration and data", panels: []panel{
		{
			kind: timeSeries, title: "Stream lag (messages)",
			desc:       streamDesc,
			targets:    []target{{expr: sel(catalog.StreamLagMessages.Name, inRegions), legend: "{{region}} {{stream}}/{{group}}"}},
			unit:       unitPlain,
			thresholds: streamSteps,
		},
		{
			kind: timeSeries, title: "Stream lag (seconds)",
			desc:    "Age of the oldest message of each stream not yet delivered to its consumer group.",
			targets: []target{{expr: sel(catalog.StreamLagSeconds.Name, inRegions), legend: "{{region}} {{stream}}/{{group}}"}},
			unit:    unitSeconds,
		},
		{
			kind: stateTimeline, title: "Configuration consistency",
			desc:       "Consistent when every region's normalized configuration from a source hashes the same.",
			targets:    []target{{expr: catalog.ConfigConsistent.Name, legend: "{{source}}"}},
			mappings:   valueMap(valueText{0, "drift", red}, valueText{1, "consistent", green}),
			thresholds: ordered(base(red), at(1, green)),
			min:        ptr(0.0),
			max:        ptr(1.0),
		},
		{
			kind: timeSeries, title: "Data verifier mismatches",
			desc:    "Rows per second the data verifier finds missing, extra or differing between two regions, for pairs involving a selected region. Anything above 0 is a consistency bug.",
			targets: []target{{expr: pairsRate(catalog.VerifyRowsMismatched.Name, catalog.LabelTable, catalog.LabelSourceRegion, catalog.LabelTargetRegion, catalog.LabelKind), legend: "{{table}} " + pairLegend + " {{kind}}"}},
			unit:    "suffix: rows/s",
			links:   []link{runbook(s, catalog.AlertVerifier)},
		},
	}}

	rto := panel{
		kind: barGauge, title: "Drill RTO vs objective", w: 8,
		desc:       fmt.Sprintf("Recovery time measured by the last drill of each scenario. Objective %s unless the scenario sets its own.", s.DR.RTO),
		targets:    []target{{expr: sel(catalog.DrillRTO.Name, eq(catalog.LabelPhase, phaseTotal)), legend: "{{scenario}}"}},
		unit:       unitSeconds,
		min:        ptr(0.0),
		thresholds: ordered(base(green), at(s.DR.RTO.Seconds(), red)),
		links:      []link{runbook(s, catalog.AlertDrillRTO)},
	}
	drillRPO := panel{
		kind: barGauge, title: "Drill RPO vs objective", w: 8,
		desc:       fmt.Sprintf("Data-loss window measured by the last drill of each scenario. Objective %s unless the scenario sets its own.", s.DR.RPO),
		targets:    []target{{expr: catalog.DrillRPO.Name, legend: "{{scenario}}"}},
		unit:       unitSeconds,
		min:        ptr(0.0),
		thresholds: ordered(base(green), at(s.DR.RPO.Seconds(), red)),
		links:      []link{runbook(s, catalog.AlertDrillRPO)},
	}
	for _, d := range s.DR.Drills {
		rto.overrides = append(rto.overrides, override{byName: d.Scenario, thresholds: ordered(base(green), at(d.RTO.Seconds(), red))})
		drillRPO.overrides = append(drillRPO.overrides, override{byName: d.Scenario, thresholds: ordered(base(green), at(d.RPO.Seconds(), red))})
	}
	drills := section{title: "Drills", panels: []panel{
		rto,
		{
			kind: barGauge, title: "Drill RTO by phase", w: 8,
			desc:    "Where the last drill of each scenario spent its recovery time: detect, decide, shift.",
			targets: []target{{expr: sel(catalog.DrillRTO.Name, fmt.Sprintf("%s!=%q", catalog.LabelPhase, phaseTotal)), legend: "{{scenario}} {{phase}}"}},
			unit:    unitSeconds,
			min:     ptr(0.0),
		},
		drillRPO,
	}}

	probes := section{title: "Probes", panels: []panel{
		{
			kind: stateTimeline, title: "Probe health",
			desc: fmt.Sprintf("Each region's probe of each target, every %s with a %s timeout; unhealthy after %d consecutive failures, healthy again after %d successes. %s (%s) fires when no other region sees a region healthy.",
				s.Routing.Probes.Interval, s.Routing.Probes.Timeout, s.Routing.Probes.UnhealthyAfter, s.Routing.Probes.HealthyAfter,
				catalog.AlertRegionDown.Name, catalog.AlertRegionDown.Tier),
			targets:    []target{{expr: sel(catalog.ProbeHealthy.Name, inRegions), legend: "{{region}} → {{target}}"}},
			mappings:   valueMap(valueText{0, "unhealthy", red}, valueText{1, "healthy", green}),
			thresholds: ordered(base(red), at(1, green)),
			min:        ptr(0.0),
			max:        ptr(1.0),
			links:      []link{runbook(s, catalog.AlertRegionDown)},
		},
		{
			kind: timeSeries, title: "Probe duration",
			desc:       fmt.Sprintf("Duration of each region's last probe of each target; the dashed line is the probe timeout, %s.", s.Routing.Probes.Timeout),
			targets:    []target{{expr: sel(catalog.ProbeDuration.Name, inRegions), legend: "{{region}} → {{target}}"}},
			unit:       unitSeconds,
			thresholds: ordered(base(green), at(s.Routing.Probes.Timeout.Seconds(), red)),
		},
	}}

	return board{
		file: DRFile, uidSuffix: "dr", title: "Carpool DR and sync",
		desc: "Cross-region sync lag, RPO exposure, replication, stream lag, configuration drift, data verification, drill RTO and RPO, and probes.",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVar(s),
			regionVar(catalog.SyncHeartbeatWritten.Name),
		},
		sections: []section{replication, streams, drills, probes},
	}
}
