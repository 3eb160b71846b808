package alerts

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// The generated promtool test file evaluates every minute; every case feeds
// 31 samples one minute apart and evaluates at caseEval.
const (
	testInterval = time.Minute
	caseEval     = 10 * time.Minute
	caseSamples  = 30
)

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

// alertCase is one promtool alert_rule_test: the series, and the alerts
// expected at caseEval (none when silent).
type alertCase struct {
	Name   string
	Alert  string
	Series []inputSeries
	Want   []expAlert
	// Also, when set, names alerts that must stay silent on the same input.
	AlsoSilent []string
}

type recordCase struct {
	Name    string
	Series  []inputSeries
	Samples []recordSample
}

type recordSample struct {
	Expr   string
	Labels string
	Value  float64
}

func seriesString(name string, labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, labels[k])
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// counter is a series growing by perMinute each sample.
func counter(perMinute int) string { return fmt.Sprintf("0+%dx%d", perMinute, caseSamples) }

// gauge is a constant series.
func gauge(v float64) string { return fmt.Sprintf("%sx%d", num(v), caseSamples) }

// expected renders the alert an alerting rule produces for a series with
// labels seriesLabels and value v, expanding its annotations with
// Prometheus's own template engine.
func expected(r alertRule, seriesLabels map[string]string, v float64) expAlert {
	labels := maps.Clone(seriesLabels)
	delete(labels, model.MetricNameLabel)
	maps.Copy(labels, r.Rule.Labels)
	ann := map[string]string{}
	data := template.AlertTemplateData(seriesLabels, nil, "", promql.Sample{F: v})
	defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	for k, text := range r.Rule.Annotations {
		te := template.NewTemplateExpander(context.Background(), defs+text, "__alert_"+r.Rule.Alert, data, model.Time(caseEval.Milliseconds()), nil, nil, nil)
		out, err := te.Expand()
		if err != nil {
			out = "template error: " + err.Error()
		}
		ann[k] = out
	}
	return expAlert{ExpLabels: labels, ExpAnnotations: ann}
}

func (b *builder) lastRule() alertRule { return b.set.alertRules[len(b.set.alertRules)-1] }

func (b *builder) addCases(cs ...alertCase) { b.set.alertTests = append(b.set.alertTests, cs...) }

// thresholdCases tests a rule over one gauge: it fires at fireV (the series
// labels plus extra appear on the alert) and stays silent at quietV.
func (b *builder) thresholdCases(_ any, metric string, labels, extra map[string]string, fireV, quietV float64) {
	r := b.lastRule()
	sl := maps.Clone(labels)
	maps.Copy(sl, extra)
	b.addCases(
		alertCase{Name: fmt.Sprintf("%s fires when %s is %s", r.Rule.Alert, seriesString(metric, labels), num(fireV)), Alert: r.Rule.Alert,
			Series: []inputSeries{{seriesString(metric, labels), gauge(fireV)}},
			Want:   []expAlert{expected(r, sl, fireV)}},
		alertCase{Name: fmt.Sprintf("%s stays silent when %s is %s", r.Rule.Alert, seriesString(metric, labels), num(quietV)), Alert: r.Rule.Alert,
			Series: []inputSeries{{seriesString(metric, labels), gauge(quietV)}}},
	)
}

// counterCases adds a firing and a silent case for an alert on a counter:
// the counter grows by fireRate (then quietRate) per minute. The expected
// value is the increase over 5m, so only increase(…[5m])-style alerts fit
// (an alert on no increase expects 0).
func (b *builder) counterCases(_ any, metric string, labels, extra map[string]string, fireRate, quietRate int) {
	r := b.lastRule()
	// The expressions aggregate the counter's labels away; extra is what is left.
	left := map[string]string{}
	maps.Copy(left, extra)
	want := expected(r, left, float64(fireRate)*5)
	b.addCases(
		alertCase{Name: fmt.Sprintf("%s fires when %s grows by %d a minute", r.Rule.Alert, seriesString(metric, labels), fireRate), Alert: r.Rule.Alert,
			Series: []inputSeries{{seriesString(metric, labels), counter(fireRate)}},
			Want:   []expAlert{want}},
		alertCase{Name: fmt.Sprintf("%s stays silent when %s grows by %d a minute", r.Rule.Alert, seriesString(metric, labels), quietRate), Alert: r.Rule.Alert,
			Series: []inputSeries{{seriesString(metric, labels), counter(quietRate)}}},
	)
}

// requestSeries returns series for an SLO in region whose bad ratio is
// bad/total per minute.
func requestSeries(region string, svc spec.Service, slo spec.SLO, bad, total int) []inputSeries {
	op := svc.Operations[0]
	if len(slo.Operations) > 0 {
		op = slo.Operations[0]
	}
	base := map[string]string{catalog.LabelRegion: region, catalog.LabelService: svc.Name, catalog.LabelOperation: op}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	if slo.Kind == spec.KindLatency {
		return []inputSeries{
			{seriesString(reqBucket, with(catalog.LabelCode, "200", catalog.LabelOutcome, catalog.OutcomeOK, catalog.LabelLe, catalog.FormatLe(slo.Threshold.Seconds()))), counter(total - bad)},
			{seriesString(reqCount, with(catalog.LabelCode, "200", catalog.LabelOutcome, catalog.OutcomeOK)), counter(total)},
		}
	}
	out := []inputSeries{{seriesString(reqCount, with(catalog.LabelCode, "200", catalog.LabelOutcome, catalog.OutcomeOK)), counter(total - bad)}}
	if bad > 0 {
		out = append(out, inputSeries{seriesString(reqCount, with(catalog.LabelCode, "500", catalog.LabelOutcome, catalog.OutcomeError)), counter(bad)})
	}
	return out
}

func minFactor(ws []spec.BurnWindow) float64 {
	m := math.Inf(1)
	for _, w := range ws {
		m = min(m, w.Factor)
	}
	return m
}

func maxFactor(ws []spec.BurnWindow) float64 {
	m := 0.0
	for _, w := range ws {
		m = max(m, w.Factor)
	}
	return m
}

func (b *builder) burnCases(_ any, a catalog.Alert, svc spec.Service, slo spec.SLO, windows []spec.BurnWindow) {
	r := b.lastRule()
	region := b.region(0)
	labels := map[string]string{catalog.LabelRegion: region, catalog.LabelService: svc.Name, catalog.LabelSLO: slo.Name}
	name := fmt.Sprintf("%s for %s/%s", a.Name, svc.Name, slo.Name)
	bud := budget(slo.Objective)
	page, ticket := b.s.Alerting.BurnRates.Page, b.s.Alerting.BurnRates.Ticket
	if a.Name == catalog.AlertBurnFast.Name {
		// Half the events bad: every page window burns.
		b.addCases(alertCase{Name: name + " fires when half the events are bad", Alert: a.Name,
			Series: requestSeries(region, svc, slo, 30, 60), Want: []expAlert{expected(r, labels, 0.5)}})
	} else {
		// A ratio between the ticket and the page thresholds: the ticket
		// fires and the page stays silent.
		target := bud * maxFactor(ticket) * 1.5
		if len(page) > 0 && maxFactor(ticket) < minFactor(page) {
			target = bud * (maxFactor(ticket) + minFactor(page)) / 2
		}
		total := int(math.Floor(1 / target))
		c := alertCase{Name: fmt.Sprintf("%s fires and the page stays silent when 1 event in %d is bad", name, total), Alert: a.Name,
			Series: requestSeries(region, svc, slo, 1, total), Want: []expAlert{expected(r, labels, 1/float64(total))}}
		if len(page) > 0 && maxFactor(ticket) < minFactor(page) {
			c.AlsoSilent = []string{catalog.AlertBurnFast.Name}
		}
		b.addCases(c)
	}
	b.addCases(alertCase{Name: name + " stays silent when every event is good", Alert: a.Name, Series: requestSeries(region, svc, slo, 0, 60)})
}

func (b *builder) regionDownCases(_ any) {
	r := b.lastRule()
	down := b.region(0)
	var fire, quiet []inputSeries
	for i, reg := range b.s.Regions {
		l := map[string]string{catalog.LabelRegion: reg.Name, catalog.LabelTarget: down}
		fire = append(fire, inputSeries{seriesString(catalog.ProbeHealthy.Name, l), gauge(0)})
		v := 0.0
		if i == len(b.s.Regions)-1 {
			v = 1
		}
		quiet = append(quiet, inputSeries{seriesString(catalog.ProbeHealthy.Name, l), gauge(v)})
	}
	b.addCases(
		alertCase{Name: "RegionDown fires when no prober sees the region healthy", Alert: r.Rule.Alert, Series: fire,
			Want: []expAlert{expected(r, map[string]string{catalog.LabelTarget: down, catalog.LabelRegion: down}, 0)}},
		alertCase{Name: "RegionDown stays silent while one prober sees the region healthy", Alert: r.Rule.Alert, Series: quiet},
	)
}

func (b *builder) errorRateCases(_ any) {
	r := b.lastRule()
	region := b.region(0)
	svc := b.s.Services[0]
	avail := spec.SLO{Kind: spec.KindAvailability}
	b.addCases(
		alertCase{Name: "RegionErrorRateHigh fires when half of a region's requests fail", Alert: r.Rule.Alert,
			Series: requestSeries(region, svc, avail, 30, 60), Want: []expAlert{expected(r, map[string]string{catalog.LabelRegion: region}, 0.5)}},
		alertCase{Name: "RegionErrorRateHigh stays silent at 1% errors", Alert: r.Rule.Alert, Series: requestSeries(region, svc, avail, 1, 100)},
	)
}

func (b *builder) compositeCases(_ any) {
	r := b.lastRule()
	region := b.region(0)
	var fire, quiet []inputSeries
	keyBroken := false
	for _, svc := range b.s.Services {
		for _, slo := range svc.SLOs {
			bad := 0
			if slo.Key && !keyBroken {
				bad, keyBroken = 30, true
			}
			fire = append(fire, requestSeries(region, svc, slo, bad, 60)...)
			quiet = append(quiet, requestSeries(region, svc, slo, 0, 60)...)
		}
	}
	if !keyBroken {
		// No key SLO: break every SLO so the weighted value falls.
		fire = nil
		for _, svc := range b.s.Services {
			for _, slo := range svc.SLOs {
				fire = append(fire, requestSeries(region, svc, slo, 30, 60)...)
			}
		}
	}
	fire = dedupSeries(fire)
	quiet = dedupSeries(quiet)
	want := []expAlert{
		expected(r, map[string]string{catalog.LabelRegion: catalog.GlobalRegion}, 0),
		expected(r, map[string]string{catalog.LabelRegion: region}, 0),
	}
	b.addCases(
		alertCase{Name: "CompositeSLABreached fires when a key SLO is breached", Alert: r.Rule.Alert, Series: fire, Want: want},
		alertCase{Name: "CompositeSLABreached stays silent when every SLO is met", Alert: r.Rule.Alert, Series: quiet},
	)
	// Recorded composite values on the all-good input: every attainment is
	// exactly 1, so the composite is the sum of the weights, added in the
	// rule's order.
	composite := 0.0
	for i, svc := range b.s.Services {
		if i == 0 {
			composite = lit(svc.Weight) * 1
		} else {
			composite += lit(svc.Weight) * 1
		}
	}
	var samples []recordSample
	for _, reg := range []string{region, catalog.GlobalRegion} {
		samples = append(samples, recordSample{Expr: selector(catalog.CompositeSLA.Name, eq(catalog.LabelRegion, reg)), Labels: seriesString(catalog.CompositeSLA.Name, map[string]string{catalog.LabelRegion: reg}), Value: composite})
		met := 0.0
		if composite >= lit(b.s.Composite.Objective/100) {
			met = 1
		}
		samples = append(samples, recordSample{Expr: selector(catalog.CompositeMet.Name, eq(catalog.LabelRegion, reg)), Labels: seriesString(catalog.CompositeMet.Name, map[string]string{catalog.LabelRegion: reg}), Value: met})
	}
	for _, svc := range b.s.Services {
		for _, reg := range []string{region, catalog.GlobalRegion} {
			samples = append(samples, recordSample{Expr: selector(catalog.ServiceAttainment.Name, eq(catalog.LabelService, svc.Name), eq(catalog.LabelRegion, reg)),
				Labels: seriesString(catalog.ServiceAttainment.Name, map[string]string{catalog.LabelRegion: reg, catalog.LabelService: svc.Name}), Value: 1})
		}
	}
	b.set.recordTests = append(b.set.recordTests, recordCase{Name: "the composite SLA of an all-good region is the sum of the service weights", Series: quiet, Samples: samples})
	b.sloRecordCases()
}

// sloRecordCases checks each SLO's recorded ratios on half-bad input, where
// every ratio is exactly 0.5.
func (b *builder) sloRecordCases() {
	region := b.region(0)
	for _, svc := range b.s.Services {
		for _, slo := range svc.SLOs {
			var samples []recordSample
			for _, reg := range []string{region, catalog.GlobalRegion} {
				l := map[string]string{catalog.LabelRegion: reg, catalog.LabelService: svc.Name, catalog.LabelSLO: slo.Name}
				sel := func(name string) string {
					return selector(name, eq(catalog.LabelService, svc.Name), eq(catalog.LabelSLO, slo.Name), eq(catalog.LabelRegion, reg))
				}
				for _, w := range b.s.AlertWindows() {
					n := catalog.SLIErrorRatioName(win(w))
					samples = append(samples, recordSample{Expr: sel(n), Labels: seriesString(n, l), Value: 0.5})
				}
				samples = append(samples, recordSample{Expr: sel(catalog.SLOAttainment.Name), Labels: seriesString(catalog.SLOAttainment.Name, l), Value: 0.5})
				samples = append(samples, recordSample{Expr: sel(catalog.SLOErrorBudgetRemaining.Name), Labels: seriesString(catalog.SLOErrorBudgetRemaining.Name, l), Value: 1 - (1-0.5)/budget(slo.Objective)})
			}
			b.set.recordTests = append(b.set.recordTests, recordCase{
				Name:    fmt.Sprintf("%s/%s records a 0.5 error ratio, attainment and the budget left when half the events are bad", svc.Name, slo.Name),
				Series:  requestSeries(region, svc, slo, 30, 60),
				Samples: samples,
			})
		}
	}
}

func (b *builder) verifierCases(_ any) {
	r := b.lastRule()
	l := map[string]string{catalog.LabelTable: "rides", catalog.LabelSourceRegion: b.region(0), catalog.LabelTargetRegion: b.region(1), catalog.LabelKind: "missing"}
	sl := maps.Clone(l)
	sl[catalog.LabelRegion] = b.region(1)
	b.addCases(
		alertCase{Name: "DataVerifierMismatch fires when mismatched rows were found in the last window", Alert: r.Rule.Alert,
			Series: []inputSeries{{seriesString(catalog.VerifyRowsMismatched.Name, l), fmt.Sprintf("0x5 3x%d", caseSamples-5)}},
			Want:   []expAlert{expected(r, sl, 0)}},
		alertCase{Name: "DataVerifierMismatch stays silent while the counter is flat", Alert: r.Rule.Alert,
			Series: []inputSeries{{seriesString(catalog.VerifyRowsMismatched.Name, l), gauge(3)}}},
	)
}

func dedupSeries(in []inputSeries) []inputSeries {
	seen := map[string]bool{}
	var out []inputSeries
	for _, s := range in {
		if !seen[s.Series] {
			seen[s.Series] = true
			out = append(out, s)
		}
	}
	return out
}

// promtool's rule-test file format (2.42).
type testFile struct {
	RuleFiles          []string    `yaml:"rule_files"`
	EvaluationInterval string      `yaml:"evaluation_interval"`
	Tests              []testGroup `yaml:"tests"`
}

type testGroup struct {
	Name            string        `yaml:"name"`
	Interval        string        `yaml:"interval"`
	InputSeries     []inputSeries `yaml:"input_series"`
	AlertRuleTests  []alertTest   `yaml:"alert_rule_test,omitempty"`
	PromqlExprTests []exprTest    `yaml:"promql_expr_test,omitempty"`
}

type alertTest struct {
	EvalTime  string     `yaml:"eval_time"`
	Alertname string     `yaml:"alertname"`
	ExpAlerts []expAlert `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type exprTest struct {
	Expr       string      `yaml:"expr"`
	EvalTime   string      `yaml:"eval_time"`
	ExpSamples []expSample `yaml:"exp_samples"`
}

type expSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
}

// testFileFor renders the set's cases as a promtool test file over ruleFile.
func (set *Set) testFileFor(ruleFile string) testFile {
	tf := testFile{RuleFiles: []string{ruleFile}, EvaluationInterval: win(testInterval)}
	evalAt := win(caseEval)
	for _, c := range set.alertTests {
		g := testGroup{Name: c.Name, Interval: win(testInterval), InputSeries: c.Series}
		want := slices.Clone(c.Want)
		sort.Slice(want, func(i, j int) bool {
			return want[i].ExpLabels[catalog.LabelRegion] < want[j].ExpLabels[catalog.LabelRegion]
		})
		g.AlertRuleTests = append(g.AlertRuleTests, alertTest{EvalTime: evalAt, Alertname: c.Alert, ExpAlerts: want})
		for _, silent := range c.AlsoSilent {
			g.AlertRuleTests = append(g.AlertRuleTests, alertTest{EvalTime: evalAt, Alertname: silent})
		}
		tf.Tests = append(tf.Tests, g)
	}
	for _, c := range set.recordTests {
		g := testGroup{Name: c.Name, Interval: win(testInterval), InputSeries: c.Series}
		for _, s := range c.Samples {
			g.PromqlExprTests = append(g.PromqlExprTests, exprTest{Expr: s.Expr, EvalTime: evalAt, ExpSamples: []expSample{{Labels: s.Labels, Value: s.Value}}})
		}
		tf.Tests = append(tf.Tests, g)
	}
	return tf
}
