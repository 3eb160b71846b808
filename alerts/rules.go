// Package alerts generates, from the SLA spec, the Prometheus recording and
// alerting rules, their promtool unit tests, the same rules as a Prometheus
// Operator PrometheusRule, and a runbook per alert. The Alertmanager routing
// lives in alerts/routing. Every expression is parsed with the Prometheus
// PromQL parser at generation time.
package alerts

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Group names of the generated rules.
const (
	GroupRecording = "carpool-sla-recording"
	// GroupRecordingLong holds the series over windows longer than
	// LongWindow (the SLO-window attainment, long burn-rate windows and what
	// is built on them), evaluated every LongInterval: their cost grows with
	// the window's samples, and a minute-old 30-day attainment is as good.
	GroupRecordingLong = "carpool-sla-recording-long"
	GroupSLOAlerts     = "carpool-slo-alerts"
	GroupPlatform      = "carpool-platform-alerts"
)

// Windows longer than LongWindow are recorded in GroupRecordingLong, every
// LongInterval.
const (
	LongWindow   = time.Hour
	LongInterval = time.Minute
)

// TierWindow is the range of the recorded event rates (SLIBadEventsRate,
// SLIEventsRate) that windows longer than LongWindow are summed from.
const TierWindow = 5 * time.Minute

// regionDownFor is how long no prober may see a region healthy before
// RegionDown fires. Probes already need unhealthyAfter consecutive failures.
const regionDownFor = time.Minute

// verifierWindow is the look-back of DataVerifierMismatch.
const verifierWindow = 10 * time.Minute

// compositeBreachedFor debounces CompositeSLABreached (its inputs move slowly).
const compositeBreachedFor = 5 * time.Minute

// Set is everything generated from one spec: the rule groups and, for each
// alerting rule, the test cases that make it fire and keep it silent.
type Set struct {
	Groups []rulefmt.RuleGroup
	// recordTests check recorded values; alertTests check each alert.
	recordTests []recordCase
	alertTests  []alertCase
	// alertRules lists the alerting rules with the catalog entry they implement.
	alertRules []alertRule
}

type alertRule struct {
	Rule  rulefmt.Rule
	Alert catalog.Alert
}

// Build generates the rules and their tests for s. It fails when any
// generated expression does not parse.
func Build(s *spec.Spec) (*Set, error) {
	b := &builder{s: s, set: &Set{}}
	b.recording()
	b.sloAlerts()
	b.platformAlerts()
	if b.err != nil {
		return nil, b.err
	}
	return b.set, nil
}

type builder struct {
	s   *spec.Spec
	set *Set
	err error
}

func (b *builder) group(name string) *rulefmt.RuleGroup {
	for i := range b.set.Groups {
		if b.set.Groups[i].Name == name {
			return &b.set.Groups[i]
		}
	}
	b.set.Groups = append(b.set.Groups, rulefmt.RuleGroup{Name: name})
	return &b.set.Groups[len(b.set.Groups)-1]
}

func (b *builder) record(name, expr string, labels map[string]string) {
	b.recordIn(GroupRecording, name, expr, labels)
}

// recordOver records a series over window: in GroupRecordingLong when the
// window is longer than LongWindow.
func (b *builder) recordOver(window time.Duration, name, expr string, labels map[string]string) {
	if window > LongWindow {
		b.recordIn(GroupRecordingLong, name, expr, labels)
		return
	}
	b.recordIn(GroupRecording, name, expr, labels)
}

func (b *builder) recordIn(group, name, expr string, labels map[string]string) {
	if b.err == nil {
		b.err = checkExpr("recording rule "+name, expr)
	}
	g := b.group(group)
	if group == GroupRecordingLong {
		g.Interval = model.Duration(LongInterval)
	}
	g.Rules = append(g.Rules, rulefmt.Rule{Record: name, Expr: expr, Labels: labels})
}

func (b *builder) alert(group string, a catalog.Alert, expr string, forDur time.Duration, labels, annotations map[string]string) rulefmt.Rule {
	if b.err == nil {
		b.err = checkExpr("alert "+a.Name, expr)
	}
	l := map[string]string{
		catalog.AlertLabelSeverity: a.Tier.Severity(),
		catalog.AlertLabelTier:     string(a.Tier),
		catalog.AlertLabelTeam:     b.s.Metadata.Team,
	}
	if a.Service != "" {
		l[catalog.AlertLabelService] = a.Service
	}
	if a.SLO != "" {
		l[catalog.AlertLabelSLO] = a.SLO
	}
	maps.Copy(l, labels)
	ann := map[string]string{
		catalog.AnnotationSummary: a.Summary,
		catalog.AnnotationRunbook: RunbookURL(b.s, a.Name),
	}
	maps.Copy(ann, annotations)
	r := rulefmt.Rule{Alert: a.Name, Expr: expr, For: model.Duration(forDur), Labels: l, Annotations: ann}
	g := b.group(group)
	g.Rules = append(g.Rules, r)
	b.set.alertRules = append(b.set.alertRules, alertRule{Rule: r, Alert: a})
	return r
}

// RunbookURL is where an alert's runbook lives.
func RunbookURL(s *spec.Spec, alertName string) string {
	return strings.TrimSuffix(s.Alerting.RunbookBaseURL, "/") + "/" + alertName + ".md"
}

// DashboardURL links a Grafana dashboard of the generated set.
func DashboardURL(s *spec.Spec, suffix string) string {
	return strings.TrimSuffix(s.Alerting.GrafanaURL, "/") + "/d/" + s.Dashboards.UIDPrefix + "-" + suffix
}

// Dashboard uid suffixes (the dashboards package uses the same).
const (
	DashOverview = "overview"
	DashRED      = "red"
	DashDR       = "dr"
)

// gatewayService is the service label of the gateways' own request metrics.
const gatewayService = "gateway"

var (
	reqCount  = catalog.RequestDuration.Name + "_count"
	reqBucket = catalog.RequestDuration.Name + "_bucket"
)

// SLIEvents returns the PromQL of an SLO's good and total events (fn is rate
// or increase over window) aggregated by the given clause (e.g. " by (region)",
// or "" for all regions together). The SLI minute rollup and the recording
// rules share it, so a report counts exactly what the alerts do.
func SLIEvents(svc spec.Service, slo spec.SLO, fn, window, by string) (good, total string) {
	m := sloMatchers(svc, slo)
	total = fmt.Sprintf("sum%s (%s(%s[%s]))", by, fn, selector(reqCount, m...), window)
	switch slo.Kind {
	case spec.KindLatency:
		le := eq(catalog.LabelLe, catalog.FormatLe(slo.Threshold.Seconds()))
		good = fmt.Sprintf("sum%s (%s(%s[%s]))", by, fn, selector(reqBucket, append(slices.Clone(m), le)...), window)
	default:
		good = fmt.Sprintf("%s - (%s)", total, badEvents(svc, slo, fn, window, by))
	}
	return good, total
}

// badEvents is an availability SLO's bad events. A service that never failed
// has no error series: count it as 0.
func badEvents(svc spec.Service, slo spec.SLO, fn, window, by string) string {
	m := sloMatchers(svc, slo)
	total := fmt.Sprintf("sum%s (%s(%s[%s]))", by, fn, selector(reqCount, m...), window)
	bad := fmt.Sprintf("sum%s (%s(%s[%s]))", by, fn, selector(reqCount, append(slices.Clone(m), eq(catalog.LabelOutcome, catalog.OutcomeError))...), window)
	return fmt.Sprintf("%s or 0 * %s", bad, total)
}

// badEventsAny is an SLO's bad events whatever its kind: the failures of
// an availability SLO, total minus good of a latency SLO.
func badEventsAny(svc spec.Service, slo spec.SLO, fn, window, by string) string {
	if slo.Kind == spec.KindLatency {
		good, total := SLIEvents(svc, slo, fn, window, by)
		return fmt.Sprintf("%s - %s", total, good)
	}
	return badEvents(svc, slo, fn, window, by)
}

// tierRatio is an SLO's share of bad events over a window longer than
// LongWindow, from the recorded tier: the sum over the window of the bad
// events' 5-minute rates over that of all events'. Both tier series are
// sampled at the same instants, so this is the event-weighted ratio of the
// window (up to TierWindow at its start), as the raw increases give, at a
// cost of one series per SLO and region, a sample a minute.
func tierRatio(svc spec.Service, slo spec.SLO, window, by string) string {
	m := []string{eq(catalog.LabelService, svc.Name), eq(catalog.LabelSLO, slo.Name)}
	return fmt.Sprintf("sum%s (sum_over_time(%s[%s])) / sum%s (sum_over_time(%s[%s]))",
		by, selector(catalog.SLIBadEventsRate.Name, m...), window, by, selector(catalog.SLIEventsRate.Name, m...), window)
}

// ratioOver is an SLO's share of bad events over w: from the raw counters
// up to LongWindow, from the tier beyond.
func ratioOver(svc spec.Service, slo spec.SLO, w time.Duration, fn, by string) string {
	if w > LongWindow {
		return tierRatio(svc, slo, win(w), by)
	}
	return badRatio(svc, slo, fn, win(w), by)
}

// badRatio returns the PromQL of an SLO's share of bad events.
func badRatio(svc spec.Service, slo spec.SLO, fn, window, by string) string {
	good, total := SLIEvents(svc, slo, fn, window, by)
	if slo.Kind == spec.KindLatency {
		return fmt.Sprintf("1 - (%s / %s)", good, total)
	}
	return fmt.Sprintf("(%s) / %s", badEvents(svc, slo, fn, window, by), total)
}

const byRegion = " by (region)"

func sloLabels(svc spec.Service, slo spec.SLO, extra ...string) map[string]string {
	l := map[string]string{catalog.LabelService: svc.Name, catalog.LabelSLO: slo.Name}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

func (b *builder) recording() {
	s := b.s
	var longest, longestAlert time.Duration // the longest SLO and burn-rate windows
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			longest = max(longest, time.Duration(slo.Window))
		}
	}
	for _, w := range s.AlertWindows() {
		longestAlert = max(longestAlert, w)
	}
	// The tier first: the long windows below, in the same group, read what
	// it recorded at the same evaluation.
	if max(longest, longestAlert) > LongWindow {
		tw := win(TierWindow)
		for _, svc := range s.Services {
			for _, slo := range svc.SLOs {
				b.recordIn(GroupRecordingLong, catalog.SLIBadEventsRate.Name, badEventsAny(svc, slo, "rate", tw, byRegion), sloLabels(svc, slo))
				_, total := SLIEvents(svc, slo, "rate", tw, byRegion)
				b.recordIn(GroupRecordingLong, catalog.SLIEventsRate.Name, total, sloLabels(svc, slo))
			}
		}
	}
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			for _, w := range s.AlertWindows() {
				name := catalog.SLIErrorRatioName(win(w))
				b.recordOver(w, name, ratioOver(svc, slo, w, "rate", byRegion), sloLabels(svc, slo))
				b.recordOver(w, name, ratioOver(svc, slo, w, "rate", ""), sloLabels(svc, slo, catalog.LabelRegion, catalog.GlobalRegion))
			}
			sw := time.Duration(slo.Window)
			b.recordOver(sw, catalog.SLOAttainment.Name, "1 - ("+ratioOver(svc, slo, sw, "increase", byRegion)+")", sloLabels(svc, slo))
			b.recordOver(sw, catalog.SLOAttainment.Name, "1 - ("+ratioOver(svc, slo, sw, "increase", "")+")", sloLabels(svc, slo, catalog.LabelRegion, catalog.GlobalRegion))
			att := selector(catalog.SLOAttainment.Name, eq(catalog.LabelService, svc.Name), eq(catalog.LabelSLO, slo.Name))
			b.recordOver(sw, catalog.SLOErrorBudgetRemaining.Name, fmt.Sprintf("1 - (1 - %s) / %s", att, num(budget(slo.Objective))), sloLabels(svc, slo))
		}
	}
	// What is built on the attainments follows them, in evaluation order.
	for _, svc := range s.Services {
		b.recordOver(longest, catalog.ServiceAttainment.Name, serviceAttainmentExpr(svc), map[string]string{catalog.LabelService: svc.Name})
	}
	b.recordOver(longest, catalog.CompositeSLA.Name, compositeExpr(s), nil)
	keyExpr, hasKeys := keyBreachedExpr(s)
	if hasKeys {
		b.recordOver(longest, catalog.KeySLOBreached.Name, keyExpr, nil)
	}
	met := fmt.Sprintf("%s >= bool %s", catalog.CompositeSLA.Name, num(s.Composite.Objective/100))
	if hasKeys {
		met = fmt.Sprintf("(%s) * on (region) (%s == bool 0)", met, catalog.KeySLOBreached.Name)
	}
	b.recordOver(longest, catalog.CompositeMet.Name, met, nil)

	// A gateway labels a request with its own region whichever region served
	// it, so the region figures count the services' requests only: one slow
	// region must not raise every region's P99.
	notGateway := ne(catalog.LabelService, gatewayService)
	errs := selector(reqCount, eq(catalog.LabelOutcome, catalog.OutcomeError), notGateway)
	b.record(catalog.RegionErrorRatio.Name, fmt.Sprintf("sum by (region) (rate(%s[1m])) / sum by (region) (rate(%s[1m]))", errs, selector(reqCount, notGateway)), nil)
	b.record(catalog.RegionLatencyP99.Name, fmt.Sprintf("histogram_quantile(0.99, sum by (region, le) (rate(%s[1m])))", selector(reqBucket, notGateway)), nil)
}

// serviceAttainmentExpr is the product of a service's SLO attainments,
// without the slo label.
func serviceAttainmentExpr(svc spec.Service) string {
	parts := make([]string, len(svc.SLOs))
	for i, slo := range svc.SLOs {
		parts[i] = selector(catalog.SLOAttainment.Name, eq(catalog.LabelService, svc.Name), eq(catalog.LabelSLO, slo.Name))
	}
	if len(parts) == 1 {
		return "sum without (slo) (" + parts[0] + ")"
	}
	return strings.Join(parts, " * ignoring (slo) ")
}

// compositeExpr is sum over services of weight × service attainment.
func compositeExpr(s *spec.Spec) string {
	parts := make([]string, len(s.Services))
	for i, svc := range s.Services {
		parts[i] = fmt.Sprintf("(%s * %s)", num(svc.Weight), selector(catalog.ServiceAttainment.Name, eq(catalog.LabelService, svc.Name)))
	}
	if len(parts) == 1 {
		return "sum without (service) " + parts[0]
	}
	return strings.Join(parts, " + ignoring (service) ")
}

// keyBreachedExpr counts, per region, the key SLOs below their objective.
func keyBreachedExpr(s *spec.Spec) (string, bool) {
	var parts []string
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			if slo.Key {
				att := selector(catalog.SLOAttainment.Name, eq(catalog.LabelService, svc.Name), eq(catalog.LabelSLO, slo.Name))
				parts = append(parts, fmt.Sprintf("(%s < bool %s)", att, num(slo.Objective/100)))
			}
		}
	}
	if len(parts) == 0 {
		return "", false
	}
	return "sum by (region) (" + strings.Join(parts, " or ") + ")", true
}

// burnExpr fires when, for any window pair, the error ratio over both the
// long and the short window exceeds factor × budget.
func burnExpr(svc spec.Service, slo spec.SLO, windows []spec.BurnWindow) string {
	parts := make([]string, len(windows))
	m := []string{eq(catalog.LabelService, svc.Name), eq(catalog.LabelSLO, slo.Name), ne(catalog.LabelRegion, catalog.GlobalRegion)}
	for i, w := range windows {
		th := num(lit(w.Factor) * budget(slo.Objective))
		parts[i] = fmt.Sprintf("(%s > %s and %s > %s)",
			selector(catalog.SLIErrorRatioName(win(time.Duration(w.Long))), m...), th,
			selector(catalog.SLIErrorRatioName(win(time.Duration(w.Short))), m...), th)
	}
	return strings.Join(parts, " or ")
}

func describeWindows(ws []spec.BurnWindow) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%s× over %s and %s", num(w.Factor), w.Long, w.Short)
	}
	return strings.Join(parts, ", or ")
}

func (b *builder) sloAlerts() {
	s := b.s
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			for _, kind := range []struct {
				alert   catalog.Alert
				windows []spec.BurnWindow
			}{{catalog.AlertBurnFast, s.Alerting.BurnRates.Page}, {catalog.AlertBurnSlow, s.Alerting.BurnRates.Ticket}} {
				if len(kind.windows) == 0 {
					continue
				}
				bud := budget(slo.Objective)
				summary := fmt.Sprintf("%s %s SLO in {{ $labels.region }} is burning its error budget %s.", svc.Name, slo.Name,
					map[bool]string{true: "fast (page)", false: "steadily (ticket)"}[kind.alert.Name == catalog.AlertBurnFast.Name])
				desc := fmt.Sprintf("The %s error ratio of %s %s in {{ $labels.region }} is {{ $value | humanizePercentage }} against a budget of %s (objective %s%% over %s). Burn-rate windows: %s.",
					slo.Kind, svc.Name, slo.Name, num(bud), num(slo.Objective), slo.Window, describeWindows(kind.windows))
				r := b.alert(GroupSLOAlerts, kind.alert, burnExpr(svc, slo, kind.windows), 0, sloLabels(svc, slo), map[string]string{
					catalog.AnnotationSummary:     summary,
					catalog.AnnotationDescription: desc,
					catalog.AnnotationDashboard:   DashboardURL(s, DashOverview) + "?var-region={{ $labels.region }}",
				})
				b.burnCases(r, kind.alert, svc, slo, kind.windows)
			}
		}
	}
}

func (b *builder) platformAlerts() {
	s := b.s
	a := s.Alerting
	dr := DashboardURL(s, DashDR)
	ov := DashboardURL(s, DashOverview)

	r := b.alert(GroupPlatform, catalog.AlertSyncLag,
		fmt.Sprintf(`label_replace(%s, "region", "$1", "target_region", "(.*)") > %s`, catalog.SyncLag.Name, num(a.SyncLag.Threshold)),
		time.Duration(a.SyncLag.For), nil, map[string]string{
			catalog.AnnotationSummary:     "Sync lag from {{ $labels.source_region }} to {{ $labels.target_region }} is above " + num(a.SyncLag.Threshold) + "s.",
			catalog.AnnotationDescription: "Writes from {{ $labels.source_region }} reach {{ $labels.target_region }} {{ $value | humanizeDuration }} late (heartbeat method), above the P0 threshold of " + num(a.SyncLag.Threshold) + "s for " + a.SyncLag.For.String() + ". A failover now would lose that much.",
			catalog.AnnotationDashboard:   dr,
		})
	b.thresholdCases(r, catalog.SyncLag.Name, map[string]string{catalog.LabelSourceRegion: b.region(0), catalog.LabelTargetRegion: b.region(1)},
		map[string]string{catalog.LabelRegion: b.region(1)}, a.SyncLag.Threshold+7, a.SyncLag.Threshold/2)

	r = b.alert(GroupPlatform, catalog.AlertRegionDown,
		fmt.Sprintf(`label_replace(max by (target) (%s), "region", "$1", "target", "(.*)") == 0`, catalog.ProbeHealthy.Name),
		regionDownFor, nil, map[string]string{
			catalog.AnnotationSummary:     "Region {{ $labels.region }} is down: no prober sees it healthy.",
			catalog.AnnotationDescription: "Every region's probe of {{ $labels.region }} has failed " + fmt.Sprint(s.Routing.Probes.UnhealthyAfter) + " times in a row for " + spec.Duration(regionDownFor).String() + ". The gateways route around it; its per-service alerts are inhibited.",
			catalog.AnnotationDashboard:   dr,
		})
	b.regionDownCases(r)

	r = b.alert(GroupPlatform, catalog.AlertErrorRate,
		fmt.Sprintf("%s > %s", catalog.RegionErrorRatio.Name, num(a.ErrorRate.Threshold/100)),
		time.Duration(a.ErrorRate.For), nil, map[string]string{
			catalog.AnnotationSummary:     "Region {{ $labels.region }} is failing {{ $value | humanizePercentage }} of requests.",
			catalog.AnnotationDescription: "Server-side errors in {{ $labels.region }}, all services, are {{ $value | humanizePercentage }} of requests over 1m, above " + num(a.ErrorRate.Threshold) + "% for " + a.ErrorRate.For.String() + ".",
			catalog.AnnotationDashboard:   DashboardURL(s, DashRED) + "?var-region={{ $labels.region }}",
		})
	b.errorRateCases(r)

	b.rpoAlerts(dr)

	r = b.alert(GroupPlatform, catalog.AlertBreakerOpen,
		fmt.Sprintf("%s == %d unless on () %s == 1", catalog.BreakerState.Name, catalog.BreakerOpen, catalog.EngineDryRun.Name),
		time.Duration(a.BreakerOpenFor), nil, map[string]string{
			catalog.AnnotationSummary:     "The circuit breaker of region {{ $labels.region }} is open.",
			catalog.AnnotationDescription: "The SLA engine opened {{ $labels.region }}'s breaker (trip rule: P99 above " + s.Breaker.Trip.LatencyP99.String() + " or health below " + num(s.Breaker.Trip.Health) + " for " + s.Breaker.Trip.For.String() + ") and shifted its traffic to the other regions.",
			catalog.AnnotationDashboard:   ov,
		})
	b.thresholdCases(r, catalog.BreakerState.Name, map[string]string{catalog.LabelRegion: b.region(0)}, nil, catalog.BreakerOpen, catalog.BreakerClosed)

	b.engineAlerts(ov)

	r = b.alert(GroupPlatform, catalog.AlertTargetDown, `up{job=~"carpool.*"} == 0`, time.Duration(a.TargetDownFor), nil, map[string]string{
		catalog.AnnotationSummary:     "Scrape target {{ $labels.job }} at {{ $labels.instance }} is down.",
		catalog.AnnotationDescription: "Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}); the signals it exports are missing, and the SLA engine holds its last decision until they are stale.",
		catalog.AnnotationDashboard:   ov,
	})
	b.thresholdCases(r, "up", map[string]string{"job": "carpool-gateway", "instance": "127.0.0.1:18080", catalog.LabelRegion: b.region(0)}, nil, 0, 1)

	r = b.alert(GroupPlatform, catalog.AlertHealthLow,
		fmt.Sprintf("%s < %s", catalog.HealthScore.Name, num(s.Health.Floor)),
		time.Duration(s.Health.For), nil, map[string]string{
			catalog.AnnotationSummary:     "Health score of region {{ $labels.region }} is {{ $value }}, below the floor of " + num(s.Health.Floor) + ".",
			catalog.AnnotationDescription: "The weighted health score (sync lag, API success, stream consistency, config consistency) of {{ $labels.region }} has stayed below " + num(s.Health.Floor) + " for " + s.Health.For.String() + ".",
			catalog.AnnotationDashboard:   ov + "?var-region={{ $labels.region }}",
		})
	b.thresholdCases(r, catalog.HealthScore.Name, map[string]string{catalog.LabelRegion: b.region(0)}, nil, s.Health.Floor/2, 100)

	r = b.alert(GroupPlatform, catalog.AlertCompositeBreached, catalog.CompositeMet.Name+" == 0", compositeBreachedFor, nil, map[string]string{
		catalog.AnnotationSummary:     "The composite SLA of {{ $labels.region }} is failing.",
		catalog.AnnotationDescription: "The weighted composite SLA of {{ $labels.region }} is below its objective of " + num(s.Composite.Objective) + "%, or a key SLO is below its own objective (the veto).",
		catalog.AnnotationDashboard:   ov + "?var-region={{ $labels.region }}",
	})
	b.compositeCases(r)

	b.drillAlerts(dr)

	r = b.alert(GroupPlatform, catalog.AlertVerifier,
		fmt.Sprintf(`label_replace(increase(%s[%s]), "region", "$1", "target_region", "(.*)") > 0`, catalog.VerifyRowsMismatched.Name, win(verifierWindow)),
		0, nil, map[string]string{
			catalog.AnnotationSummary:     "Table {{ $labels.table }} differs between {{ $labels.source_region }} and {{ $labels.target_region }}.",
			catalog.AnnotationDescription: "The data verifier found {{ $labels.kind }} rows of {{ $labels.table }} in {{ $labels.target_region }} compared with {{ $labels.source_region }} in the last " + win(verifierWindow) + ", after the replication lag had passed.",
			catalog.AnnotationDashboard:   dr,
		})
	b.verifierCases(r)
}

// objectiveLabel is added to DR alerts so the responder sees which
// objective was missed.
const objectiveLabel = "objective"

// withObjective labels expr's series with objective="<d>".
func withObjective(expr string, d spec.Duration) string {
	return fmt.Sprintf(`label_replace(%s, "%s", "%s", "", "")`, expr, objectiveLabel, d)
}

func (b *builder) rpoAlerts(dash string) {
	s := b.s
	regionOf := func(sel string) string {
		return fmt.Sprintf(`label_replace(%s, "region", "$1", "target_region", "(.*)")`, sel)
	}
	var overridden []string
	for _, p := range s.DR.Pairs {
		overridden = append(overridden, selector(catalog.RPOExposure.Name, eq(catalog.LabelSourceRegion, p.Source), eq(catalog.LabelTargetRegion, p.Target)))
	}
	// The default objective for every pair without its own, then one branch per override.
	parts := []string{fmt.Sprintf("%s > %s", withObjective(regionOf(catalog.RPOExposure.Name), s.DR.RPO), num(s.DR.RPO.Seconds()))}
	if len(overridden) > 0 {
		parts[0] = "(" + parts[0] + " unless on (source_region, target_region) (" + strings.Join(overridden, " or ") + "))"
	}
	for i, p := range s.DR.Pairs {
		parts = append(parts, fmt.Sprintf("%s > %s", withObjective(regionOf(overridden[i]), p.RPO), num(p.RPO.Seconds())))
	}
	b.alert(GroupPlatform, catalog.AlertRPO, strings.Join(parts, " or "), time.Duration(s.Alerting.RPOFor), nil, map[string]string{
		catalog.AnnotationSummary:     "RPO exposure from {{ $labels.source_region }} to {{ $labels.target_region }} is above {{ $labels.objective }}.",
		catalog.AnnotationDescription: "The oldest write committed in {{ $labels.source_region }} and not yet applied in {{ $labels.target_region }} is {{ $value | humanizeDuration }} old, above the pair's RPO of {{ $labels.objective }} for " + s.Alerting.RPOFor.String() + ". Losing {{ $labels.source_region }} now would lose that window of writes.",
		catalog.AnnotationDashboard:   dash,
	})
	if src, tgt, ok := b.defaultPair(); ok {
		b.thresholdCases(nil, catalog.RPOExposure.Name, map[string]string{catalog.LabelSourceRegion: src, catalog.LabelTargetRegion: tgt},
			map[string]string{catalog.LabelRegion: tgt, objectiveLabel: s.DR.RPO.String()}, s.DR.RPO.Seconds()+4, s.DR.RPO.Seconds()/2)
	}
	for _, p := range s.DR.Pairs {
		// Between the pair's own RPO and the default one, when they differ,
		// so the test proves the override wins.
		fire := p.RPO.Seconds() + 1
		if p.RPO < s.DR.RPO {
			fire = (p.RPO.Seconds() + s.DR.RPO.Seconds()) / 2
		}
		b.thresholdCases(nil, catalog.RPOExposure.Name, map[string]string{catalog.LabelSourceRegion: p.Source, catalog.LabelTargetRegion: p.Target},
			map[string]string{catalog.LabelRegion: p.Target, objectiveLabel: p.RPO.String()}, fire, p.RPO.Seconds()/2)
	}
}

// defaultPair returns a region pair without an override, if any.
func (b *builder) defaultPair() (string, string, bool) {
	for _, src := range b.s.Regions {
		for _, tgt := range b.s.Regions {
			if src.Name == tgt.Name {
				continue
			}
			if !slices.ContainsFunc(b.s.DR.Pairs, func(p spec.DRPair) bool { return p.Source == src.Name && p.Target == tgt.Name }) {
				return src.Name, tgt.Name, true
			}
		}
	}
	return "", "", false
}

func (b *builder) drillAlerts(dash string) {
	s := b.s
	type drill struct {
		matcher  string
		scenario string // for the test series
		rpo, rto spec.Duration
	}
	var drills []drill
	var listed []string
	for _, d := range s.DR.Drills {
		drills = append(drills, drill{eq(catalog.LabelScenario, d.Scenario), d.Scenario, d.RPO, d.RTO})
		listed = append(listed, d.Scenario)
	}
	// Scenarios the spec does not list are held to the default objectives.
	catchAll := drill{"", "custom_drill", s.DR.RPO, s.DR.RTO}
	if len(listed) > 0 {
		catchAll.matcher = notOneOf(catalog.LabelScenario, listed)
	}
	drills = append(drills, catchAll)
	var rtoParts, rpoParts []string
	for _, d := range drills {
		rtoM := []string{eq(catalog.LabelPhase, "total")}
		var rpoM []string
		if d.matcher != "" {
			rtoM = append([]string{d.matcher}, rtoM...)
			rpoM = []string{d.matcher}
		}
		rtoParts = append(rtoParts, fmt.Sprintf("%s > %s", withObjective(selector(catalog.DrillRTO.Name, rtoM...), d.rto), num(d.rto.Seconds())))
		rpoParts = append(rpoParts, fmt.Sprintf("%s > %s", withObjective(selector(catalog.DrillRPO.Name, rpoM...), d.rpo), num(d.rpo.Seconds())))
	}
	static := map[string]string{catalog.LabelRegion: catalog.GlobalRegion}
	b.alert(GroupPlatform, catalog.AlertDrillRTO, strings.Join(rtoParts, " or "), 0, static, map[string]string{
		catalog.AnnotationSummary:     "The last {{ $labels.scenario }} drill took {{ $value | humanizeDuration }} to recover, above the RTO of {{ $labels.objective }}.",
		catalog.AnnotationDescription: "RTO (fault to the first ride served elsewhere for the failed region's riders) of the last {{ $labels.scenario }} drill was {{ $value | humanizeDuration }}; the objective is {{ $labels.objective }}. See the drill report for the detect, decide and shift phases.",
		catalog.AnnotationDashboard:   dash,
	})
	for _, d := range drills {
		b.thresholdCases(nil, catalog.DrillRTO.Name, map[string]string{catalog.LabelScenario: d.scenario, catalog.LabelPhase: "total"},
			map[string]string{objectiveLabel: d.rto.String()}, d.rto.Seconds()+30, d.rto.Seconds()/2)
	}
	b.alert(GroupPlatform, catalog.AlertDrillRPO, strings.Join(rpoParts, " or "), 0, static, map[string]string{
		catalog.AnnotationSummary:     "The last {{ $labels.scenario }} drill lost {{ $value | humanizeDuration }} of writes, above the RPO of {{ $labels.objective }}.",
		catalog.AnnotationDescription: "RPO of the last {{ $labels.scenario }} drill was {{ $value | humanizeDuration }}; the objective is {{ $labels.objective }}.",
		catalog.AnnotationDashboard:   dash,
	})
	for _, d := range drills {
		b.thresholdCases(nil, catalog.DrillRPO.Name, map[string]string{catalog.LabelScenario: d.scenario},
			map[string]string{objectiveLabel: d.rpo.String()}, d.rpo.Seconds()+3, d.rpo.Seconds()/2)
	}
}

func (b *builder) region(i int) string {
	return b.s.Regions[i%len(b.s.Regions)].Name
}

// engineAlerts watches the SLA engine itself and the log pipeline.
func (b *builder) engineAlerts(ov string) {
	s := b.s
	global := map[string]string{catalog.LabelRegion: catalog.GlobalRegion} // these watch the whole platform
	r := b.alert(GroupPlatform, catalog.AlertEnginePanic, catalog.EnginePanic.Name+" == 1", 0, global, map[string]string{
		catalog.AnnotationSummary:     "The SLA engine is in panic mode: too many regions are bad to break them.",
		catalog.AnnotationDescription: "More regions meet the trip rule than breaker.maxBrokenFraction (" + num(s.Breaker.MaxBrokenFraction) + ") allows, or only one region is left serving; the engine keeps them all serving and cannot shift traffic away from the bad ones.",
		catalog.AnnotationDashboard:   ov,
	})
	b.thresholdCases(r, catalog.EnginePanic.Name, map[string]string{}, nil, 1, 0)

	r = b.alert(GroupPlatform, catalog.AlertSignalsStale, catalog.SignalsStale.Name+" == 1", 0, nil, map[string]string{
		catalog.AnnotationSummary:     "The SLA engine has no fresh signals for region {{ $labels.region }}.",
		catalog.AnnotationDescription: "No fresh signal for {{ $labels.region }} for longer than engine.staleAfter (" + s.Engine.StaleAfter.String() + "). The engine holds the region's last decision (missing data never trips a breaker).",
		catalog.AnnotationDashboard:   ov + "?var-region={{ $labels.region }}",
	})
	b.thresholdCases(r, catalog.SignalsStale.Name, map[string]string{catalog.LabelRegion: b.region(0)}, nil, 1, 0)

	stall := max(3*time.Duration(s.Engine.Interval), time.Minute)
	r = b.alert(GroupPlatform, catalog.AlertEngineStalled,
		fmt.Sprintf(`sum without (outcome) (increase(%s{outcome="ok"}[%s])) == 0`, catalog.EngineTicks.Name, win(stall)), stall, global, map[string]string{
			catalog.AnnotationSummary:     "The SLA engine has not completed a tick in " + win(stall) + ".",
			catalog.AnnotationDescription: "No successful engine tick in " + win(stall) + " (it ticks every " + s.Engine.Interval.String() + "): breakers and route weights are frozen at their last values.",
			catalog.AnnotationDashboard:   ov,
		})
	b.counterCases(r, catalog.EngineTicks.Name, map[string]string{"outcome": "ok"}, nil, 0, 12)

	r = b.alert(GroupPlatform, catalog.AlertLogLoss,
		fmt.Sprintf("sum by (table, reason) (increase(%s[5m])) > 0", catalog.ChsinkLost.Name), 0, global, map[string]string{
			catalog.AnnotationSummary:     "The log pipeline to ClickHouse dropped {{ $value }} {{ $labels.table }} records in 5m ({{ $labels.reason }}).",
			catalog.AnnotationDescription: "The write-ahead log reached its bound while ClickHouse was unreachable or slow; records beyond it were dropped and counted. Retention of logs and SLA events (" + s.Logs.Retention.String() + ") has a gap.",
			catalog.AnnotationDashboard:   ov,
		})
	lost := map[string]string{catalog.LabelTable: "logs", catalog.LabelReason: "wal_full"}
	b.counterCases(r, catalog.ChsinkLost.Name, lost, lost, 10, 0)
}
