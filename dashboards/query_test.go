package dashboards

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

func TestCheckQuery(t *testing.T) {
	known := knownSeries(shippedSpec(t))
	tests := map[string]struct {
		expr string
		want string // a part of the error; empty when the query is valid
	}{
		"A rate of a produced counter over Grafana's rate interval is valid.": {
			expr: `sum by (region) (rate(carpool_orders_created_total{region=~"$region"}[$__rate_interval]))`,
		},
		"A quantile over the request-duration buckets is valid.": {
			expr: `histogram_quantile(0.99, sum by (le) (rate(carpool_request_duration_seconds_bucket{service=~"${service:regex}", le!=""}[$__rate_interval])))`,
		},
		"A recorded series is valid.": {
			expr: `carpool:sla_composite:ratio{region="global"}`,
		},
		"The SLI error ratio of an alert window is valid.": {
			expr: `carpool:sli_errors:ratio_rate6h{service="order", slo="latency"} / 0.01`,
		},
		"Grafana's range macros are substituted.": {
			expr: `increase(carpool_verify_rows_mismatched_total[$__range]) / $__range_s`,
		},
		"Old-style [[variable]] references are substituted.": {
			expr: `carpool_sla_health_score{region=~"[[region]]"}`,
		},
		"A constant needs no series.": {
			expr: `vector(1)`,
		},
		"An empty query should fail.": {
			expr: "  ",
			want: "empty",
		},
		"A query with an unbalanced parenthesis should fail.": {
			expr: `sum(rate(carpool_orders_created_total[5m])`,
			want: "not valid PromQL",
		},
		"A query with an unknown function should fail.": {
			expr: `ratee(carpool_orders_created_total[5m])`,
			want: "not valid PromQL",
		},
		"A metric name that is not in the catalog should fail.": {
			expr: `rate(carpool_orders_creted_total[5m])`,
			want: `metric "carpool_orders_creted_total" is not in the catalog`,
		},
		"A histogram's bare name should fail: only its _bucket, _count and _sum series exist.": {
			expr: `carpool_request_duration_seconds`,
			want: "is not in the catalog",
		},
		"The SLI error ratio of a window no alert uses should fail.": {
			expr: `carpool:sli_errors:ratio_rate2h`,
			want: "is not in the catalog",
		},
		"An unknown name inside a binary expression should fail.": {
			expr: `carpool_sla_health_score / up`,
			want: `metric "up" is not in the catalog`,
		},
		"A label the series does not carry should fail.": {
			expr: `carpool_sync_lag_seconds{region="sh-a"}`,
			want: `has no label "region"`,
		},
		"le on a histogram's _count series should fail.": {
			expr: `carpool_request_duration_seconds_count{le="0.3"}`,
			want: `has no label "le"`,
		},
		"A selector without a metric name should fail.": {
			expr: `{region="sh-a"}`,
			want: "names no metric",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := checkQuery(tc.expr, known)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("checkQuery(%q) = %v, want nil", tc.expr, err)
			case tc.want != "" && err == nil:
				t.Fatalf("checkQuery(%q) = nil, want an error containing %q", tc.expr, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("checkQuery(%q) = %v, want an error containing %q", tc.expr, err, tc.want)
			}
		})
	}
}

func TestSubstituteVariables(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := substituteVariables(in); got != want {
			t.Errorf("substituteVariables(%q) = %q, want %q", in, got, want)
		}
	}
	f(`rate(x[$__rate_interval])`, `rate(x[5m])`)
	f(`rate(x[${__interval}])`, `rate(x[1m])`)
	f(`increase(x[$__range])`, `increase(x[6h])`)
	f(`x{a=~"$region", b=~"${service}", c=~"${operation:regex}", d=~"[[region]]"}`, `x{a=~".*", b=~".*", c=~".*", d=~".*"}`)
	f(`x{a=~"global|$region"}`, `x{a=~"global|.*"}`)
	f(`x{a=~"foo$"}`, `x{a=~"foo$"}`)
}

func TestVariableRefs(t *testing.T) {
	got := variableRefs(`x{a=~"$region", b=~"${service:pipe}", c=~"[[region]]"}[$__rate_interval]`)
	if want := []string{"region", "service"}; !slices.Equal(got, want) {
		t.Errorf("variableRefs = %v, want %v", got, want)
	}
}

func TestCheckLabelValues(t *testing.T) {
	known := knownSeries(shippedSpec(t))
	f := func(q, want string) {
		t.Helper()
		err := checkLabelValues(q, known)
		if want == "" {
			if err != nil {
				t.Errorf("checkLabelValues(%q) = %v, want nil", q, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkLabelValues(%q) = %v, want an error containing %q", q, err, want)
		}
	}
	f(`label_values(carpool_sla_health_score, region)`, "")
	f(`label_values(carpool_request_duration_seconds_count{service=~"$service"}, operation)`, "")
	f(`label_values(carpool_sync_lag_seconds, region)`, `has no label "region"`)
	f(`label_values(carpool_nothing, region)`, "is not in the catalog")
	f(`query_result(up)`, "is not label_values")
}

func TestAnInjectedBadQueryIsReportedWithItsDashboardPanelAndQuery(t *testing.T) {
	s := shippedSpec(t)
	f := func(expr, want string) {
		t.Helper()
		b := board{
			file: "dashboards/broken.json", uidSuffix: "broken", title: "Broken dashboard",
			variables: overview(s).variables,
			sections: []section{{title: "Row", panels: []panel{
				{title: "Good panel", targets: []target{{expr: sel(catalog.HealthScore.Name, inRegions)}}},
				{title: "Bad panel", targets: []target{{expr: sel(catalog.HealthScore.Name, inRegions)}, {expr: expr}}},
			}}},
		}
		d, _, err := b.build(s, []board{b})
		if err != nil {
			t.Fatal(err)
		}
		err = checkDashboard(d, knownSeries(s))
		if err == nil {
			t.Fatalf("checkDashboard accepted %q", expr)
		}
		for _, part := range []string{`dashboard "Broken dashboard"`, "carpoolsla-broken", `panel 3 "Bad panel"`, "query B", fmt.Sprintf("%q", expr), want} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("error %q does not contain %q", err, part)
			}
		}
		if strings.Contains(err.Error(), "Good panel") {
			t.Errorf("error %q blames the good panel", err)
		}
	}
	f(`sum(rate(carpool_orders_created_total[5m])`, "not valid PromQL")
	f(`rate(carpool_orders_made_total[5m])`, "not in the catalog")
	f(`carpool_sla_health_score{region=~"$zone"}`, "variable $zone is not defined")
}

func TestAPanelWithoutQueriesIsRejected(t *testing.T) {
	s := shippedSpec(t)
	b := board{uidSuffix: "empty", title: "Empty", variables: overview(s).variables,
		sections: []section{{title: "Row", panels: []panel{{title: "Nothing"}}}}}
	d, _, err := b.build(s, []board{b})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkDashboard(d, knownSeries(s)); err == nil || !strings.Contains(err.Error(), `panel 2 "Nothing": no query`) {
		t.Fatalf("checkDashboard = %v, want the panel without a query named", err)
	}
}
