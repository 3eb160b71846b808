package dashboards

import (
	"fmt"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Grafana units used by the dashboards.
const (
	unitRatio   = "percentunit"
	unitSeconds = "s"
	unitReqps   = "reqps"
	unitOps     = "ops"
	unitPlain   = "short"
	unitScore   = "none"
	unitBurn    = "suffix:×"
)

// sloRef is one SLO of one service.
type sloRef struct {
	service string
	slo     spec.SLO
}

func (r sloRef) name() string { return r.service + "/" + r.slo.Name }

// objective is the SLO's objective as a ratio.
func (r sloRef) objective() float64 { return num(r.slo.Objective / 100) }

// budget is the SLO's error budget as a ratio: 1 - objective.
func (r sloRef) budget() float64 { return num((100 - r.slo.Objective) / 100) }

// selector selects the SLO's series of a recorded family, narrowed by the
// service variable and the extra matchers.
func (r sloRef) selector(metric string, extra ...string) string {
	return sel(metric, append([]string{eq(catalog.LabelService, r.service), re(catalog.LabelService, "$"+serviceVariable), eq(catalog.LabelSLO, r.slo.Name)}, extra...)...)
}

func slos(s *spec.Spec) []sloRef {
	var out []sloRef
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			out = append(out, sloRef{service: svc.Name, slo: slo})
		}
	}
	return out
}

func pct(v float64) string { return fmtNum(v) + " %" }

// fmtNums lists numbers for a description: 10, 25, 50, 100.
func fmtNums(vs []float64) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmtNum(v)
	}
	return strings.Join(out, ", ")
}

// inRegions and notGlobal narrow a per-region series to the region variable.
var (
	inRegions = re(catalog.LabelRegion, "$"+regionVariable)
	notGlobal = fmt.Sprintf("%s!=%q", catalog.LabelRegion, catalog.GlobalRegion)
	global    = eq(catalog.LabelRegion, catalog.GlobalRegion)
	// globalAndRegions is the global series and the selected regions'.
	globalAndRegions = re(catalog.LabelRegion, catalog.GlobalRegion+"|$"+regionVariable)
)

// healthSteps colors a health score: red below the breaker's trip bar,
// orange below the floor (the P2 alert), green at or above it.
func healthSteps(s *spec.Spec) []step {
	if s.Breaker.Trip.Health >= s.Health.Floor {
		return ordered(base(red), at(s.Health.Floor, green))
	}
	return ordered(base(red), at(s.Breaker.Trip.Health, orange), at(s.Health.Floor, green))
}

func healthDesc(s *spec.Spec) string {
	return fmt.Sprintf("Below the floor of %s for %s raises %s (%s); below %s (or P99 above %s) for %s opens the region's breaker.",
		fmtNum(s.Health.Floor), spec.Duration(s.Health.For), catalog.AlertHealthLow.Name, catalog.AlertHealthLow.Tier,
		fmtNum(s.Breaker.Trip.Health), spec.Duration(s.Breaker.Trip.LatencyP99), spec.Duration(s.Breaker.Trip.For))
}

// burnFactors lists the burn-rate factors of the alert windows whose long or
// short window is w, as threshold steps: red for a page, orange for a ticket.
func burnFactors(s *spec.Spec, w time.Duration) []step {
	steps := []step{base(green)}
	add := func(ws []spec.BurnWindow, color string) {
		for _, bw := range ws {
			if time.Duration(bw.Long) == w || time.Duration(bw.Short) == w {
				steps = append(steps, at(bw.Factor, color))
			}
		}
	}
	add(s.Alerting.BurnRates.Page, red)
	add(s.Alerting.BurnRates.Ticket, orange)
	return ordered(steps...)
}

func burnDesc(s *spec.Spec, w time.Duration) string {
	var parts []string
	list := func(ws []spec.BurnWindow, what string) {
		for _, bw := range ws {
			if time.Duration(bw.Long) == w || time.Duration(bw.Short) == w {
				parts = append(parts, fmt.Sprintf("%s at %s× over both %s and %s", what, fmtNum(bw.Factor), bw.Long, bw.Short))
			}
		}
	}
	list(s.Alerting.BurnRates.Page, "page")
	list(s.Alerting.BurnRates.Ticket, "ticket")
	return fmt.Sprintf("Error ratio of each SLO over %s divided by its error budget (1 − objective): at 1 the budget lasts exactly the SLO window. Alerts: %s.",
		spec.Duration(w), strings.Join(parts, "; "))
}

func overview(s *spec.Spec) board {
	objective := num(s.Composite.Objective / 100)
	all := slos(s)

	composite := section{title: "Composite SLA", panels: []panel{
		{
			kind: statKind, title: "Composite SLA (global)", w: 8, h: 6,
			desc:       fmt.Sprintf("Traffic-weighted composite SLA over all regions: the sum over services of weight × attainment. Objective %s.", pct(s.Composite.Objective)),
			targets:    []target{{expr: sel(catalog.CompositeSLA.Name, global), legend: catalog.GlobalRegion}},
			unit:       unitRatio,
			decimals:   ptr(3.0),
			thresholds: ordered(base(red), at(objective, green)),
			links:      []link{runbook(s, catalog.AlertCompositeBreached)},
		},
		{
			kind: statKind, title: "Composite SLA met", w: 8, h: 6,
			desc:       "Met: the composite is at or above its objective and no key SLO is breached (a key SLO's breach vetoes the composite).",
			targets:    []target{{expr: sel(catalog.CompositeMet.Name, globalAndRegions), legend: "{{region}}"}},
			mappings:   valueMap(valueText{0, "BREACHED", red}, valueText{1, "MET", green}),
			thresholds: ordered(base(red), at(1, green)),
			links:      []link{runbook(s, catalog.AlertCompositeBreached)},
		},
		{
			kind: statKind, title: "Key SLOs breached", w: 8, h: 6,
			desc:       "Number of key SLOs below their objective. Any breach fails the composite whatever the weights say.",
			targets:    []target{{expr: sel(catalog.KeySLOBreached.Name, globalAndRegions), legend: "{{region}}"}},
			unit:       unitScore,
			decimals:   ptr(0.0),
			thresholds: ordered(base(green), at(1, red)),
		},
		{
			kind: timeSeries, title: "Composite SLA by region", w: 24,
			desc: fmt.Sprintf("Composite SLA of each region and of the whole (global); the dashed line is the objective, %s.", pct(s.Composite.Objective)),
			targets: []target{
				{expr: sel(catalog.CompositeSLA.Name, global), legend: catalog.GlobalRegion},
				{expr: sel(catalog.CompositeSLA.Name, inRegions, notGlobal), legend: "{{region}}"},
			},
			unit:       unitRatio,
			decimals:   ptr(3.0),
			thresholds: ordered(base(red), at(objective, green)),
			links:      []link{runbook(s, catalog.AlertCompositeBreached)},
		},
	}}

	var components []string
	for _, c := range s.Health.Components {
		components = append(components, fmt.Sprintf("%s %s %% (%s)", c.Name, fmtNum(c.Weight*100), c.Measure))
	}
	health := section{title: "Region health", panels: []panel{
		{
			kind: gaugeKind, title: "Health score", w: 8,
			desc:       "Health score of each region, 0 to 100. " + healthDesc(s),
			targets:    []target{{expr: sel(catalog.HealthScore.Name, inRegions), legend: "{{region}}"}},
			unit:       unitScore,
			min:        ptr(0.0),
			max:        ptr(100.0),
			decimals:   ptr(0.0),
			thresholds: healthSteps(s),
			links:      []link{runbook(s, catalog.AlertHealthLow)},
		},
		{
			kind: timeSeries, title: "Health score over time", w: 16,
			desc:       healthDesc(s),
			targets:    []target{{expr: sel(catalog.HealthScore.Name, inRegions), legend: "{{region}}"}},
			unit:       unitScore,
			min:        ptr(0.0),
			max:        ptr(100.0),
			thresholds: healthSteps(s),
			links:      []link{runbook(s, catalog.AlertHealthLow)},
		},
		{
			kind: timeSeries, title: "Health components", w: 24,
			desc:       "Score of each health component, 0 to 100; the health score is their weighted sum: " + strings.Join(components, ", ") + ". The dashed line is the health floor.",
			targets:    []target{{expr: sel(catalog.HealthComponentScore.Name, inRegions), legend: "{{region}} {{component}}"}},
			unit:       unitScore,
			min:        ptr(0.0),
			max:        ptr(100.0),
			thresholds: healthSteps(s),
		},
	}}

	trip, recover := s.Breaker.Trip, s.Breaker.Recover
	breaker := section{title: "Breaker and routing", panels: []panel{
		{
			kind: stateTimeline, title: "Breaker state",
			desc: fmt.Sprintf("Trips when P99 > %s or health < %s for %s; recovers when P99 ≤ %s and health ≥ %s for %s, then ramps traffic back in steps of %s %%.",
				spec.Duration(trip.LatencyP99), fmtNum(trip.Health), spec.Duration(trip.For),
				spec.Duration(recover.LatencyP99), fmtNum(recover.Health), spec.Duration(recover.For), fmtNums(s.Breaker.Ramp.Steps)),
			targets: []target{{expr: sel(catalog.BreakerState.Name, inRegions), legend: "{{region}}"}},
			mappings: valueMap(
				valueText{catalog.BreakerClosed, "closed", green},
				valueText{catalog.BreakerRecovering, "recovering", yellow},
				valueText{catalog.BreakerOpen, "open", red}),
			thresholds: ordered(base(green), at(catalog.BreakerRecovering, yellow), at(catalog.BreakerOpen, red)),
			min:        ptr(float64(catalog.BreakerClosed)),
			max:        ptr(float64(catalog.BreakerOpen)),
			links:      []link{runbook(s, catalog.AlertBreakerOpen)},
		},
		{
			kind: timeSeries, title: "Route weights",
			desc: fmt.Sprintf("Routing weight of each region, recomputed every %s from inverse P95 latency times health, clamped to [%s, %s].",
				spec.Duration(s.Routing.Weights.Period), fmtNum(s.Routing.Weights.Min), fmtNum(s.Routing.Weights.Max)),
			targets: []target{{expr: sel(catalog.RouteWeight.Name, inRegions), legend: "{{region}}"}},
			unit:    unitPlain,
			min:     ptr(0.0),
			max:     ptr(s.Routing.Weights.Max),
		},
		{
			kind: timeSeries, title: "Breaker input: P99 latency (1m)",
			desc: fmt.Sprintf("P99 request duration of each region over the last minute, all services. Yellow: the recovery bar (%s); red: the trip bar (%s).",
				spec.Duration(recover.LatencyP99), spec.Duration(trip.LatencyP99)),
			targets:    []target{{expr: sel(catalog.RegionLatencyP99.Name, inRegions), legend: "{{region}}"}},
			unit:       unitSeconds,
			thresholds: ordered(base(green), at(spec.Duration(recover.LatencyP99).Seconds(), yellow), at(spec.Duration(trip.LatencyP99).Seconds(), red)),
			links:      []link{runbook(s, catalog.AlertBreakerOpen)},
		},
		{
			kind: timeSeries, title: "Region error ratio (1m)",
			desc: fmt.Sprintf("Share of each region's requests that failed server-side over the last minute. %s (%s) fires above %s for %s.",
				catalog.AlertErrorRate.Name, catalog.AlertErrorRate.Tier, pct(s.Alerting.ErrorRate.Threshold), spec.Duration(s.Alerting.ErrorRate.For)),
			targets:    []target{{expr: sel(catalog.RegionErrorRatio.Name, inRegions), legend: "{{region}}"}},
			unit:       unitRatio,
			thresholds: ordered(base(green), at(s.Alerting.ErrorRate.Threshold/100, red)),
			links:      []link{runbook(s, catalog.AlertErrorRate)},
		},
	}}

	// Attainment against objective, one query per SLO so that each gets its
	// own objective as threshold.
	attain := panel{
		kind: barGauge, title: "SLO attainment vs objective (global)", w: 12, h: max(8, uint32(len(all))+2),
		desc:     "Share of good events of each SLO over its rolling window, all regions together. A bar turns green at its own objective.",
		unit:     unitRatio,
		decimals: ptr(3.0),
		max:      ptr(1.0),
	}
	budget := panel{
		kind: barGauge, title: "Error budget remaining (global)", w: 12, h: attain.h,
		desc:       "Share of each SLO's error budget left over its rolling window, all regions together; negative when overspent (red). Yellow below a quarter of the budget.",
		targets:    []target{{expr: sel(catalog.SLOErrorBudgetRemaining.Name, re(catalog.LabelService, "$"+serviceVariable), global), legend: "{{service}}/{{slo}}"}},
		unit:       unitRatio,
		decimals:   ptr(1.0),
		min:        ptr(0.0),
		max:        ptr(1.0),
		thresholds: ordered(base(red), at(0, yellow), at(0.25, green)),
		links:      []link{runbook(s, catalog.AlertBurnFast), runbook(s, catalog.AlertBurnSlow)},
	}
	margin := panel{
		kind: timeSeries, title: "SLO attainment minus objective", w: 24,
		desc:       "Attainment of each SLO minus its objective, per region: above 0 the SLO meets its objective.",
		unit:       unitRatio,
		decimals:   ptr(3.0),
		thresholds: ordered(base(red), at(0, green)),
	}
	lowest := 1.0
	for i, r := range all {
		key := ""
		if r.slo.Key {
			key = ", key"
		}
		attain.targets = append(attain.targets, target{
			expr:   r.selector(catalog.SLOAttainment.Name, global),
			legend: fmt.Sprintf("%s (objective %s%s)", r.name(), pct(r.slo.Objective), key),
		})
		attain.overrides = append(attain.overrides, override{byQuery: refID(i), thresholds: ordered(base(red), at(r.objective(), green))})
		margin.targets = append(margin.targets, target{
			expr:   fmt.Sprintf("%s - %s", r.selector(catalog.SLOAttainment.Name, inRegions), fmtNum(r.objective())),
			legend: r.name() + " {{region}}",
		})
		lowest = min(lowest, r.objective())
	}
	// Show the interesting part of the bar: ten error budgets of the
	// loosest SLO below 100 %.
	attain.min = ptr(num(max(0, 1-10*(1-lowest))))

	slo := section{title: "SLOs and error budgets", panels: []panel{attain, budget, margin}}

	var burns []panel
	for _, w := range s.AlertWindows() {
		window := spec.Duration(w).String()
		p := panel{
			kind: timeSeries, title: "Burn rate over " + window,
			desc:       burnDesc(s, w),
			unit:       unitBurn,
			thresholds: burnFactors(s, w),
			links:      []link{runbook(s, catalog.AlertBurnFast), runbook(s, catalog.AlertBurnSlow)},
		}
		for _, r := range all {
			p.targets = append(p.targets, target{
				expr:   fmt.Sprintf("%s / %s", r.selector(catalog.SLIErrorRatioName(window), inRegions), fmtNum(r.budget())),
				legend: r.name() + " {{region}}",
			})
		}
		burns = append(burns, p)
	}
	burn := section{title: "Burn rates", panels: burns}

	return board{
		file: OverviewFile, uidSuffix: "overview", title: "Carpool SLA overview",
		desc: "Composite SLA, per-region health, breakers and routing, SLO attainment, error budgets and burn rates.",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVar(s),
			regionVar(catalog.HealthScore.Name),
			serviceVar(s),
		},
		sections: []section{composite, health, breaker, slo, burn},
	}
}
