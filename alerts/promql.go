package alerts

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// num formats a number for PromQL: the shortest form that parses back to the
// same float, after rounding away decimal noise (100-99.99 is 0.01, not
// 0.010000000000005116).
func num(v float64) string {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 12, 64), 64)
	return strconv.FormatFloat(r, 'g', -1, 64)
}

// lit parses num(v) back, so Go arithmetic on it matches PromQL's exactly.
func lit(v float64) float64 {
	f, _ := strconv.ParseFloat(num(v), 64)
	return f
}

// budget is an SLO's error budget as a ratio: 1 - objective/100.
func budget(objectivePercent float64) float64 { return lit((100 - objectivePercent) / 100) }

// win formats a window the Prometheus way (5m, 1h, 3d).
func win(d time.Duration) string { return spec.Duration(d).String() }

// selector renders name{k="v",...} with matchers in the order given.
func selector(name string, matchers ...string) string {
	if len(matchers) == 0 {
		return name
	}
	return name + "{" + strings.Join(matchers, ",") + "}"
}

func eq(label, value string) string { return fmt.Sprintf("%s=%q", label, value) }
func ne(label, value string) string { return fmt.Sprintf("%s!=%q", label, value) }

// oneOf matches label against any of values (exact names).
func oneOf(label string, values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	sort.Strings(quoted)
	return fmt.Sprintf("%s=~%q", label, strings.Join(quoted, "|"))
}

// notOneOf matches label against none of values.
func notOneOf(label string, values []string) string {
	return strings.Replace(oneOf(label, values), "=~", "!~", 1)
}

// sloMatchers selects an SLO's requests in the request-duration histogram.
func sloMatchers(svc spec.Service, slo spec.SLO) []string {
	m := []string{eq(catalog.LabelService, svc.Name)}
	if len(slo.Operations) > 0 && len(slo.Operations) < len(svc.Operations) {
		m = append(m, oneOf(catalog.LabelOperation, slo.Operations))
	}
	return m
}

var promqlParser = parser.NewParser(parser.Options{})

// checkExpr fails when expr is not valid PromQL.
func checkExpr(what, expr string) error {
	if _, err := promqlParser.ParseExpr(expr); err != nil {
		return fmt.Errorf("generated PromQL for %s does not parse: %w\n%s", what, err, expr)
	}
	return nil
}
