package dashboards

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// catalogNames maps every series name a dashboard may select to the label
// names its series carry. Built by knownSeries from the catalog and the spec,
// it is what keeps dashboard queries from drifting away from what the
// services, exporters, engine and recording rules produce.
type catalogNames map[string][]string

// scrapeLabels are the target labels Prometheus adds to every scraped series.
var scrapeLabels = []string{"job", "instance"}

// knownSeries lists the series names of the catalog: each produced metric
// (a histogram as its _bucket, _count and _sum series), each recorded series,
// and the SLI error ratio of each burn-rate window the spec's alerts use.
func knownSeries(s *spec.Spec) catalogNames {
	known := catalogNames{}
	for _, m := range catalog.Produced() {
		lbls := slices.Concat(m.Labels, scrapeLabels)
		if m.Type == catalog.Histogram {
			known[m.Name+"_bucket"] = slices.Concat(lbls, []string{catalog.LabelLe})
			known[m.Name+"_count"] = lbls
			known[m.Name+"_sum"] = lbls
			continue
		}
		known[m.Name] = lbls
	}
	for _, m := range catalog.RecordedSeries() {
		if m.Name == catalog.SLIErrorRatio.Name {
			continue // a family; its members are named per window below
		}
		known[m.Name] = m.Labels
	}
	for _, w := range s.AlertWindows() {
		known[catalog.SLIErrorRatioName(spec.Duration(w).String())] = catalog.SLIErrorRatio.Labels
	}
	return known
}

// variableRe matches Grafana's three variable syntaxes: $name, ${name} or
// ${name:format}, and [[name]] or [[name:format]].
var variableRe = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)`)

// builtinValues are stand-ins for Grafana's global variables, chosen so that
// a query using them is valid PromQL.
var builtinValues = map[string]string{
	"__rate_interval":    "5m",
	"__interval":         "1m",
	"__range":            "6h",
	"__auto":             "1m",
	"__interval_ms":      "60000",
	"__range_ms":         "21600000",
	"__range_s":          "21600",
	"__rate_interval_ms": "300000",
}

// variableRefs lists the dashboard variables expr refers to, Grafana's
// builtins left out, in order of first use.
func variableRefs(expr string) []string {
	var out []string
	for _, m := range variableRe.FindAllStringSubmatch(expr, -1) {
		name := m[1] + m[2] + m[3]
		if _, builtin := builtinValues[name]; builtin || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
	}
	return out
}

// substituteVariables replaces Grafana variables with concrete values: the
// builtin intervals with durations and every dashboard variable with `.*`,
// which is a valid value inside both = and =~ matchers.
func substituteVariables(expr string) string {
	return variableRe.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRe.FindStringSubmatch(ref)
		if v, ok := builtinValues[m[1]+m[2]+m[3]]; ok {
			return v
		}
		return ".*"
	})
}

var promql = parser.NewParser(parser.Options{})

// checkQuery reports whether expr, once its Grafana variables are
// substituted, is valid PromQL that selects only series of the catalog, by
// name, with label matchers only on labels those series carry.
func checkQuery(expr string, known catalogNames) error {
	if strings.TrimSpace(expr) == "" {
		return errors.New("the query is empty")
	}
	ast, err := promql.ParseExpr(substituteVariables(expr))
	if err != nil {
		return fmt.Errorf("not valid PromQL: %w", err)
	}
	var errs []error
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if err := checkSelector(vs, known); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	return errors.Join(errs...)
}

func checkSelector(vs *parser.VectorSelector, known catalogNames) error {
	name := vs.Name
	if name == "" {
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
	}
	if name == "" {
		return fmt.Errorf("selector %s names no metric; select a catalog series by its name", vs)
	}
	lbls, ok := known[name]
	if !ok {
		return fmt.Errorf("metric %q is not in the catalog (sla/catalog); add it there or use one of its names (%s)", name, closestNames(name, known))
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			continue
		}
		if !slices.Contains(lbls, m.Name) {
			return fmt.Errorf("metric %q has no label %q (it has %s)", name, m.Name, strings.Join(lbls, ", "))
		}
	}
	return nil
}

// closestNames lists up to three catalog names sharing the longest prefix
// with name, to help a reader spot a typo.
func closestNames(name string, known catalogNames) string {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	common := func(a string) int {
		i := 0
		for i < len(a) && i < len(name) && a[i] == name[i] {
			i++
		}
		return i
	}
	sort.Slice(names, func(i, j int) bool {
		ci, cj := common(names[i]), common(names[j])
		if ci != cj {
			return ci > cj
		}
		return names[i] < names[j]
	})
	return strings.Join(names[:min(3, len(names))], ", ")
}

// labelValuesRe matches a Prometheus query variable's label_values(metric, label).
var labelValuesRe = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// checkLabelValues checks a label_values(selector, label) variable query:
// the selector must pass checkQuery and its metric must carry the label.
func checkLabelValues(q string, known catalogNames) error {
	m := labelValuesRe.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return fmt.Errorf("%q is not label_values(metric, label)", q)
	}
	if err := checkQuery(m[1], known); err != nil {
		return err
	}
	ast, err := promql.ParseExpr(substituteVariables(m[1]))
	if err != nil {
		return err
	}
	vs, ok := ast.(*parser.VectorSelector)
	if !ok {
		return fmt.Errorf("%q: label_values takes a series selector", q)
	}
	if !slices.Contains(known[vs.Name], m[2]) {
		return fmt.Errorf("metric %q has no label %q", vs.Name, m[2])
	}
	return nil
}
