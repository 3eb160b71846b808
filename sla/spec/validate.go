package spec

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

var (
	nameRe      = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	operationRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	sloNameRe   = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	uidRe       = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// weightTolerance absorbs float rounding when weights are summed.
const weightTolerance = 1e-6

type validator struct {
	file string
	ix   *index
	ps   Problems
}

func (v *validator) add(path, format string, args ...any) {
	line, col := 0, 0
	if v.ix != nil {
		line, col = v.ix.pos(path)
	}
	v.ps = append(v.ps, Problem{File: v.file, Line: line, Column: col, Field: path, Message: fmt.Sprintf(format, args...)})
}

// Validate checks a spec built in Go (not read from a file) the same way
// Parse does. Problems then carry no positions.
func (s *Spec) Validate() error {
	if ps := s.validate(nil); len(ps) > 0 {
		return ps
	}
	return nil
}

func (s *Spec) validate(ix *index) Problems {
	v := &validator{file: s.File, ix: ix}
	if v.file == "" {
		v.file = "spec"
	}
	if s.APIVersion != APIVersion {
		v.add("apiVersion", "is %q; this version of carpoolsla reads apiVersion: %s", s.APIVersion, APIVersion)
	}
	if s.Kind != Kind {
		v.add("kind", "is %q; set kind: %s", s.Kind, Kind)
	}
	if s.Metadata.Name == "" {
		v.add("metadata.name", "is missing; name the system this spec describes (e.g. carpool)")
	}
	if s.Metadata.Team == "" {
		v.add("metadata.team", "is missing; name the team that owns these SLAs (it becomes every alert's team label)")
	}
	s.validateRegions(v)
	s.validateServices(v)
	s.validateComposite(v)
	s.validateHealth(v)
	s.validateDR(v)
	s.validateBreaker(v)
	s.validateRouting(v)
	s.validateAlerting(v)
	if s.Logs.Retention <= 0 {
		v.add("logs.retention", "must be positive (the default keeps 180d)")
	}
	if !uidRe.MatchString(s.Dashboards.UIDPrefix) || len(s.Dashboards.UIDPrefix) > 24 {
		v.add("dashboards.uidPrefix", "%q must be 1 to 24 letters, digits, '-' or '_' (Grafana uids are at most 40 characters)", s.Dashboards.UIDPrefix)
	}
	if s.Tracing.SampleRatio < 0 || s.Tracing.SampleRatio > 1 {
		v.add("tracing.sampleRatio", "is %g; the share of traces sampled is in [0, 1] (0 turns tracing off)", s.Tracing.SampleRatio)
	}
	s.validateEngine(v)
	s.validateCredits(v)
	if s.Dashboards.Datasource == "" {
		v.add("dashboards.datasource", "is empty; name the Prometheus datasource the dashboards default to")
	}
	sort.SliceStable(v.ps, func(i, j int) bool {
		a, b := v.ps[i], v.ps[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Field < b.Field
	})
	return v.ps
}

func (s *Spec) validateRegions(v *validator) {
	if len(s.Regions) == 0 {
		v.add("regions", "no regions are listed; list at least one region with a name and a city")
		return
	}
	seen := map[string]int{}
	for i, r := range s.Regions {
		p := fmt.Sprintf("regions[%d]", i)
		switch {
		case !nameRe.MatchString(r.Name):
			v.add(p+".name", "%q is not a valid region name; use lower-case letters, digits and '-', starting with a letter", r.Name)
		case r.Name == catalog.GlobalRegion:
			v.add(p+".name", "%q is reserved for the traffic-weighted whole; choose another region name", r.Name)
		}
		if j, dup := seen[r.Name]; dup {
			v.add(p+".name", "region %q is already listed at regions[%d]; region names must be unique", r.Name, j)
		}
		seen[r.Name] = i
		if r.City == "" {
			v.add(p+".city", "is missing for region %q; the city groups regions for same-city failure drills", r.Name)
		}
	}
}

// LongestAlertWindow is the longest burn-rate window the alerts use.
func (s *Spec) LongestAlertWindow() time.Duration {
	var d time.Duration
	for _, w := range slices.Concat(s.Alerting.BurnRates.Page, s.Alerting.BurnRates.Ticket) {
		d = max(d, time.Duration(w.Long), time.Duration(w.Short))
	}
	return d
}

func (s *Spec) validateServices(v *validator) {
	if len(s.Services) == 0 {
		v.add("services", "no services are listed; list at least one service with its operations and SLOs")
		return
	}
	seen := map[string]int{}
	var sum float64
	longest := s.LongestAlertWindow()
	for i, svc := range s.Services {
		p := fmt.Sprintf("services[%d]", i)
		if !nameRe.MatchString(svc.Name) {
			v.add(p+".name", "%q is not a valid service name; use lower-case letters, digits and '-', starting with a letter", svc.Name)
		}
		if j, dup := seen[svc.Name]; dup {
			v.add(p+".name", "service %q is already listed at services[%d]; service names must be unique", svc.Name, j)
		}
		seen[svc.Name] = i
		if svc.Weight <= 0 || svc.Weight > 1 {
			v.add(p+".weight", "is %g; a service's weight in the composite SLA must be in (0, 1]", svc.Weight)
		}
		sum += svc.Weight
		if len(svc.Operations) == 0 {
			v.add(p+".operations", "service %q lists no operations; list the operations its requests are labelled with", svc.Name)
		}
		ops := map[string]bool{}
		for j, op := range svc.Operations {
			if !operationRe.MatchString(op) {
				v.add(fmt.Sprintf("%s.operations[%d]", p, j), "%q is not a valid operation name; use lower-case letters, digits and '_'", op)
			}
			if ops[op] {
				v.add(fmt.Sprintf("%s.operations[%d]", p, j), "operation %q is listed twice", op)
			}
			ops[op] = true
		}
		if len(svc.SLOs) == 0 {
			v.add(p+".slos", "service %q has no SLOs; give it at least an availability SLO", svc.Name)
		}
		sloSeen := map[string]bool{}
		for j, slo := range svc.SLOs {
			sp := fmt.Sprintf("%s.slos[%d]", p, j)
			if !sloNameRe.MatchString(slo.Name) {
				v.add(sp+".name", "%q is not a valid SLO name; use lower-case letters, digits, '_' and '-'", slo.Name)
			}
			if sloSeen[slo.Name] {
				v.add(sp+".name", "SLO %q is listed twice in service %q", slo.Name, svc.Name)
			}
			sloSeen[slo.Name] = true
			switch slo.Kind {
			case KindAvailability:
				if slo.Threshold != 0 {
					v.add(sp+".threshold", "an availability SLO has no latency threshold; remove it, or set kind: latency")
				}
			case KindLatency:
				s.validateThreshold(v, sp+".threshold", slo)
			default:
				v.add(sp+".kind", "is %q; use %q or %q", slo.Kind, KindAvailability, KindLatency)
			}
			if slo.Objective <= 0 || slo.Objective >= 100 {
				v.add(sp+".objective", "is %g; an objective is a percentage in (0, 100), e.g. 99.95", slo.Objective)
			} else {
				budget := 1 - slo.Objective/100
				for k, w := range slices.Concat(s.Alerting.BurnRates.Page, s.Alerting.BurnRates.Ticket) {
					if w.Factor*budget >= 1 {
						v.add(sp+".objective", "%g%% leaves an error budget of %.6g, so burn rate %g (alerting.burnRates window %d) needs an error ratio of %.6g, which can never happen; raise the objective or lower the factor", slo.Objective, budget, w.Factor, k, w.Factor*budget)
						break
					}
				}
			}
			if time.Duration(slo.Window) <= longest {
				v.add(sp+".window", "is %s, not longer than the longest alert window (%s); use a longer window (default 30d) or shorter alerting.burnRates", slo.Window, Duration(longest))
			}
			for k, op := range slo.Operations {
				if !ops[op] {
					v.add(fmt.Sprintf("%s.operations[%d]", sp, k), "operation %q is not one of service %q's operations (%s)", op, svc.Name, strings.Join(svc.Operations, ", "))
				}
			}
		}
	}
	if math.Abs(sum-1) > weightTolerance {
		v.add("services", "weights of services sum to %s; they must sum to 1", fmtSum(sum))
	}
}

func fmtSum(f float64) string { return fmt.Sprintf("%.6g", f) }

func (s *Spec) validateThreshold(v *validator, path string, slo SLO) {
	if slo.Threshold <= 0 {
		v.add(path, "a latency SLO needs a threshold (e.g. 300ms) on a bucket boundary of %s", catalog.RequestDuration.Name)
		return
	}
	secs := slo.Threshold.Seconds()
	if catalog.RequestDuration.HasBucket(secs) {
		return
	}
	below, okB, above, okA := catalog.RequestDuration.NearestBuckets(secs)
	var near []string
	if okB {
		near = append(near, Duration(time.Duration(below*float64(time.Second))).String())
	}
	if okA {
		near = append(near, Duration(time.Duration(above*float64(time.Second))).String())
	}
	v.add(path, "%s is not a bucket boundary of %s, so the SLI would be inexact; the nearest boundaries are %s", slo.Threshold, catalog.RequestDuration.Name, strings.Join(near, " and "))
}

func (s *Spec) validateComposite(v *validator) {
	if s.Composite.Objective <= 0 || s.Composite.Objective >= 100 {
		v.add("composite.objective", "is %g; the composite objective is a percentage in (0, 100), e.g. 99.9", s.Composite.Objective)
	}
}

func (s *Spec) validateHealth(v *validator) {
	h := s.Health
	if h.Floor < 0 || h.Floor > 100 {
		v.add("health.floor", "is %g; the floor is a score in [0, 100]", h.Floor)
	}
	if h.For < 0 {
		v.add("health.for", "must not be negative")
	}
	if len(h.Components) == 0 {
		v.add("health.components", "no components; list at least one (the defaults are sync_lag, api_success, stream_consistency, config_consistency)")
		return
	}
	var sum float64
	seen := map[string]bool{}
	for i, c := range h.Components {
		p := fmt.Sprintf("health.components[%d]", i)
		if !sloNameRe.MatchString(c.Name) {
			v.add(p+".name", "%q is not a valid component name; use lower-case letters, digits and '_'", c.Name)
		}
		if seen[c.Name] {
			v.add(p+".name", "component %q is listed twice", c.Name)
		}
		seen[c.Name] = true
		if c.Weight <= 0 || c.Weight > 1 {
			v.add(p+".weight", "is %g; a component's weight must be in (0, 1]", c.Weight)
		}
		sum += c.Weight
		if !slices.Contains(Measures, c.Measure) {
			v.add(p+".measure", "is %q; use one of %s", c.Measure, strings.Join(Measures, ", "))
		}
		switch c.Curve.Type {
		case CurveLinear:
			if c.Curve.Good == c.Curve.Bad {
				v.add(p+".curve", "good and bad are both %g; a linear curve needs them apart (good is where the score is 100, bad where it is 0)", c.Curve.Good)
			}
		case CurveStep:
		default:
			v.add(p+".curve.type", "is %q; use %q or %q", c.Curve.Type, CurveLinear, CurveStep)
		}
	}
	if math.Abs(sum-1) > weightTolerance {
		v.add("health.components", "weights of health.components sum to %s; they must sum to 1", fmtSum(sum))
	}
}

func (s *Spec) validateDR(v *validator) {
	if s.DR.RPO <= 0 {
		v.add("dr.rpo", "must be positive (the seed's objective is 5s)")
	}
	if s.DR.RTO <= 0 {
		v.add("dr.rto", "must be positive (the seed's objective is 90s)")
	}
	regions := s.RegionNames()
	pairs := map[[2]string]bool{}
	for i, p := range s.DR.Pairs {
		pp := fmt.Sprintf("dr.pairs[%d]", i)
		if !slices.Contains(regions, p.Source) {
			v.add(pp+".source", "%q is not a region of this spec (%s)", p.Source, strings.Join(regions, ", "))
		}
		if !slices.Contains(regions, p.Target) {
			v.add(pp+".target", "%q is not a region of this spec (%s)", p.Target, strings.Join(regions, ", "))
		}
		if p.Source == p.Target {
			v.add(pp, "source and target are both %q; a pair joins two different regions", p.Source)
		}
		if pairs[[2]string{p.Source, p.Target}] {
			v.add(pp, "the pair %s→%s is listed twice", p.Source, p.Target)
		}
		pairs[[2]string{p.Source, p.Target}] = true
		if p.RPO < 0 || p.RTO < 0 {
			v.add(pp, "rpo and rto must not be negative")
		}
	}
	seen := map[string]bool{}
	for i, d := range s.DR.Drills {
		dp := fmt.Sprintf("dr.drills[%d]", i)
		if !slices.Contains(Scenarios, d.Scenario) {
			v.add(dp+".scenario", "is %q; use one of %s", d.Scenario, strings.Join(Scenarios, ", "))
		}
		if seen[d.Scenario] {
			v.add(dp+".scenario", "scenario %q is listed twice", d.Scenario)
		}
		seen[d.Scenario] = true
		if d.RPO < 0 || d.RTO < 0 {
			v.add(dp, "rpo and rto must not be negative")
		}
	}
}

func (s *Spec) validateBreaker(v *validator) {
	b := s.Breaker
	if b.Trip.LatencyP99 <= 0 && b.Trip.Health <= 0 {
		v.add("breaker.trip", "sets neither latencyP99 nor health; a trip rule needs at least one")
	}
	if b.Trip.For <= 0 {
		v.add("breaker.trip.for", "must be positive (the seed trips after 2m)")
	}
	if b.Recover.For <= 0 {
		v.add("breaker.recover.for", "must be positive")
	}
	if b.Trip.LatencyP99 > 0 {
		if b.Recover.LatencyP99 <= 0 {
			v.add("breaker.recover.latencyP99", "is missing; set a recovery P99 bar below the trip bar (%s)", b.Trip.LatencyP99)
		} else if b.Recover.LatencyP99 >= b.Trip.LatencyP99 {
			v.add("breaker.recover.latencyP99", "is %s, not below the trip bar breaker.trip.latencyP99 (%s); the recovery bar must be lower so a region does not flap", b.Recover.LatencyP99, b.Trip.LatencyP99)
		}
	}
	if b.Trip.Health < 0 || b.Trip.Health > 100 {
		v.add("breaker.trip.health", "is %g; a health bar is a score in [0, 100]", b.Trip.Health)
	}
	if b.Trip.Health > 0 && b.Recover.Health <= b.Trip.Health {
		v.add("breaker.recover.health", "is %g, not above the trip bar breaker.trip.health (%g); recovery needs a better health score than the trip", b.Recover.Health, b.Trip.Health)
	}
	if b.Recover.Health > 100 {
		v.add("breaker.recover.health", "is %g; a health bar is a score in [0, 100]", b.Recover.Health)
	}
	if len(b.Ramp.Steps) == 0 {
		v.add("breaker.ramp.steps", "is empty; list the percentages of traffic to restore, ending at 100 (e.g. [10, 25, 50, 100])")
	}
	for i, st := range b.Ramp.Steps {
		p := fmt.Sprintf("breaker.ramp.steps[%d]", i)
		if st <= 0 || st > 100 {
			v.add(p, "is %g; a ramp step is a percentage in (0, 100]", st)
		}
		if i > 0 && st <= b.Ramp.Steps[i-1] {
			v.add(p, "is %g, not above the step before (%g); ramp steps must increase", st, b.Ramp.Steps[i-1])
		}
	}
	if n := len(b.Ramp.Steps); n > 0 && b.Ramp.Steps[n-1] != 100 {
		v.add(fmt.Sprintf("breaker.ramp.steps[%d]", n-1), "the last ramp step is %g; it must be 100 so the region gets its full weight back", b.Ramp.Steps[n-1])
	}
	if b.Ramp.StepDuration <= 0 {
		v.add("breaker.ramp.stepDuration", "must be positive")
	}
	if b.Hold.Initial <= 0 {
		v.add("breaker.holdOpen.initial", "must be positive")
	}
	if b.Hold.Multiplier < 1 {
		v.add("breaker.holdOpen.multiplier", "is %g; it must be at least 1 (hold-open time grows with repeated trips)", b.Hold.Multiplier)
	}
	if b.Hold.Max < b.Hold.Initial {
		v.add("breaker.holdOpen.max", "is %s, below holdOpen.initial (%s); the cap must be at least the initial hold", b.Hold.Max, b.Hold.Initial)
	}
	if b.Hold.ResetAfter < 0 {
		v.add("breaker.holdOpen.resetAfter", "must not be negative")
	}
	if b.MaxBrokenFraction <= 0 || b.MaxBrokenFraction >= 1 {
		v.add("breaker.maxBrokenFraction", "is %g; it must be in (0, 1) (the last serving region is never broken)", b.MaxBrokenFraction)
	}
}

func (s *Spec) validateRouting(v *validator) {
	p := s.Routing.Probes
	if p.Interval <= 0 {
		v.add("routing.probes.interval", "must be positive (the seed probes every 1s)")
	}
	if p.Timeout <= 0 {
		v.add("routing.probes.timeout", "must be positive (the seed uses 300ms)")
	} else if p.Interval > 0 && p.Timeout >= p.Interval {
		v.add("routing.probes.timeout", "is %s, not below routing.probes.interval (%s); a probe must time out before the next one starts", p.Timeout, p.Interval)
	}
	if p.UnhealthyAfter < 1 {
		v.add("routing.probes.unhealthyAfter", "is %d; at least 1 consecutive failure marks a target unhealthy", p.UnhealthyAfter)
	}
	if p.HealthyAfter < 1 {
		v.add("routing.probes.healthyAfter", "is %d; at least 1 consecutive success marks a target healthy", p.HealthyAfter)
	}
	w := s.Routing.Weights
	if w.Period <= 0 {
		v.add("routing.weights.period", "must be positive (the seed recomputes weights every 5s)")
	}
	if w.Min <= 0 {
		v.add("routing.weights.min", "is %g; the smallest weight must be positive (the seed clamps to [1, 100])", w.Min)
	}
	if w.Max <= w.Min {
		v.add("routing.weights.max", "is %g, not above routing.weights.min (%g)", w.Max, w.Min)
	}
}

func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (s *Spec) validateAlerting(v *validator) {
	a := s.Alerting
	if !validURL(a.RunbookBaseURL) {
		v.add("alerting.runbookBaseURL", "%q is not an http(s) URL; alerts link to <runbookBaseURL>/<AlertName>.md", a.RunbookBaseURL)
	}
	if !validURL(a.GrafanaURL) {
		v.add("alerting.grafanaURL", "%q is not an http(s) URL; alerts link to <grafanaURL>/d/<uid>", a.GrafanaURL)
	}
	pd := a.Receivers.PagerDuty
	if pd.RoutingKeyFile == "" {
		v.add("alerting.receivers.pagerduty.routingKeyFile", "is missing; name the file Alertmanager reads the PagerDuty Events v2 routing key from (the key itself never goes in the spec)")
	}
	if pd.URL != "" && !validURL(pd.URL) {
		v.add("alerting.receivers.pagerduty.url", "%q is not an http(s) URL", pd.URL)
	}
	for name, w := range map[string]Webhook{"chat": a.Receivers.Chat, "ticket": a.Receivers.Ticket} {
		if !validURL(w.URL) {
			v.add("alerting.receivers."+name+".url", "%q is not an http(s) URL; give the %s webhook's address", w.URL, name)
		}
	}
	g := a.Grouping
	if len(g.By) == 0 {
		v.add("alerting.grouping.by", "is empty; group at least by alertname (the default is alertname, region, service, slo)")
	}
	for i, l := range g.By {
		if l != "..." && !labelNameRe.MatchString(l) {
			v.add(fmt.Sprintf("alerting.grouping.by[%d]", i), "%q is not a label name", l)
		}
	}
	if g.GroupWait <= 0 || g.GroupInterval <= 0 || g.RepeatInterval <= 0 {
		v.add("alerting.grouping", "groupWait, groupInterval and repeatInterval must all be positive")
	} else if g.RepeatInterval < g.GroupInterval {
		v.add("alerting.grouping.repeatInterval", "is %s, below groupInterval (%s); Alertmanager would repeat notifications faster than it groups them", g.RepeatInterval, g.GroupInterval)
	}
	if len(a.BurnRates.Page) == 0 {
		v.add("alerting.burnRates.page", "is empty; list at least one page window (the SRE Workbook's: 14.4 over 1h/5m and 6 over 6h/30m)")
	}
	for kind, ws := range map[string][]BurnWindow{"page": a.BurnRates.Page, "ticket": a.BurnRates.Ticket} {
		for i, w := range ws {
			p := fmt.Sprintf("alerting.burnRates.%s[%d]", kind, i)
			if w.Factor <= 0 {
				v.add(p+".factor", "is %g; a burn-rate factor must be positive", w.Factor)
			}
			if w.Short <= 0 || w.Long <= 0 {
				v.add(p, "long and short windows must both be positive")
			} else if w.Short >= w.Long {
				v.add(p+".short", "is %s, not shorter than long (%s); the short window confirms the long one is still burning", w.Short, w.Long)
			}
		}
	}
	if a.SyncLag.Threshold <= 0 {
		v.add("alerting.syncLag.threshold", "is %g; the P0 sync-lag threshold is seconds, positive (the seed pages above 5)", a.SyncLag.Threshold)
	}
	if a.ErrorRate.Threshold <= 0 || a.ErrorRate.Threshold >= 100 {
		v.add("alerting.errorRate.threshold", "is %g; the P1 error-rate threshold is a percentage in (0, 100) (the seed uses 3)", a.ErrorRate.Threshold)
	}
	for path, d := range map[string]Duration{
		"alerting.syncLag.for": a.SyncLag.For, "alerting.errorRate.for": a.ErrorRate.For,
		"alerting.targetDownFor": a.TargetDownFor, "alerting.breakerOpenFor": a.BreakerOpenFor, "alerting.rpoFor": a.RPOFor,
	} {
		if d < 0 {
			v.add(path, "must not be negative")
		}
	}
}

// RegionNames lists the regions' names in spec order.
func (s *Spec) RegionNames() []string {
	out := make([]string, len(s.Regions))
	for i, r := range s.Regions {
		out[i] = r.Name
	}
	return out
}

// PairObjectives returns the RPO and RTO for the source→target pair.
func (s *Spec) PairObjectives(source, target string) (rpo, rto Duration) {
	for _, p := range s.DR.Pairs {
		if p.Source == source && p.Target == target {
			return p.RPO, p.RTO
		}
	}
	return s.DR.RPO, s.DR.RTO
}

// DrillObjectives returns the RPO and RTO a drill scenario must meet.
func (s *Spec) DrillObjectives(scenario string) (rpo, rto Duration) {
	for _, d := range s.DR.Drills {
		if d.Scenario == scenario {
			return d.RPO, d.RTO
		}
	}
	return s.DR.RPO, s.DR.RTO
}

// AlertWindows lists every distinct burn-rate window, shortest first.
func (s *Spec) AlertWindows() []time.Duration {
	var ws []time.Duration
	for _, w := range slices.Concat(s.Alerting.BurnRates.Page, s.Alerting.BurnRates.Ticket) {
		ws = append(ws, time.Duration(w.Long), time.Duration(w.Short))
	}
	slices.Sort(ws)
	return slices.Compact(ws)
}

func (s *Spec) validateEngine(v *validator) {
	e := s.Engine
	if e.Interval <= 0 {
		v.add("engine.interval", "must be positive (the seed decides every 5s)")
	}
	if e.StaleAfter < e.Interval {
		v.add("engine.staleAfter", "is %s, below engine.interval (%s); the engine must hold its last decision for at least one tick", e.StaleAfter, e.Interval)
	}
	if e.RecoveryBlackout < 0 {
		v.add("engine.recoveryBlackout", "is negative; use 0 to trust a recovered region's latency at once")
	}
	if e.ScrapeInterval <= 0 {
		v.add("engine.scrapeInterval", "must be positive (the default scrapes and evaluates rules every 5s)")
	}
	if e.Retention < Duration(2*time.Hour) {
		v.add("engine.retention", "is %s; the embedded store keeps at least 2h of samples (the default is 15d)", e.Retention)
	}
}

func (s *Spec) validateCredits(v *validator) {
	for i, c := range s.Credits {
		f := fmt.Sprintf("credits[%d]", i)
		if c.Below <= 0 || c.Below > 100 {
			v.add(f+".below", "is %g; a credit row applies below an attainment percentage in (0, 100]", c.Below)
		}
		if c.Percent <= 0 || c.Percent > 100 {
			v.add(f+".percent", "is %g; the credit is a percentage of the fee in (0, 100]", c.Percent)
		}
		if i > 0 && c.Below >= s.Credits[i-1].Below {
			v.add(f+".below", "is %g, not below the previous row's %g; list credit rows from the highest bar down", c.Below, s.Credits[i-1].Below)
		}
		if i > 0 && c.Percent <= s.Credits[i-1].Percent {
			v.add(f+".percent", "is %g, not above the previous row's %g; a lower attainment earns a larger credit", c.Percent, s.Credits[i-1].Percent)
		}
	}
}

// CreditFor returns the credit percentage owed for an attainment in percent:
// the Percent of the lowest row whose Below the attainment is under, or 0.
func (s *Spec) CreditFor(attainment float64) float64 {
	credit := 0.0
	for _, c := range s.Credits {
		if attainment < c.Below {
			credit = c.Percent
		}
	}
	return credit
}
