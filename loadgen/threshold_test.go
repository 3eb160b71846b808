package loadgen

import (
	"strings"
	"testing"
	"time"
)

func TestParseThreshold(t *testing.T) {
	good := map[string]struct {
		in   string
		want Threshold
	}{
		"A percentile under a duration.":              {"p99<800ms", Threshold{Metric: "p99", Percentile: 99, Op: "<", Value: 800}},
		"The 99.9th percentile, written plainly.":     {"p99.9 <= 1.5s", Threshold{Metric: "p99.9", Percentile: 99.9, Op: "<=", Value: 1500}},
		"The 99.9th percentile, written as k6 does.":  {"p(99.9)<1s", Threshold{Metric: "p(99.9)", Percentile: 99.9, Op: "<", Value: 1000}},
		"A bare number of milliseconds.":              {"max<250", Threshold{Metric: "max", Op: "<", Value: 250}},
		"Microseconds.":                               {"p50<250us", Threshold{Metric: "p50", Percentile: 50, Op: "<", Value: 0.25}},
		"An error rate as a ratio.":                   {"error_rate<0.0005", Threshold{Metric: "error_rate", Op: "<", Value: 0.0005}},
		"An error rate as a percentage.":              {"error_rate<0.05%", Threshold{Metric: "error_rate", Op: "<", Value: 0.0005}},
		"Dropped iterations equal to zero.":           {"dropped==0", Threshold{Metric: "dropped", Op: "==", Value: 0}},
		"An achieved rate floor.":                     {"achieved_rate>=190.5", Threshold{Metric: "achieved_rate", Op: ">=", Value: 190.5}},
		"A threshold on one scenario.":                {"ride:p95<300ms", Threshold{Scope: "ride", Metric: "p95", Percentile: 95, Op: "<", Value: 300}},
		"A threshold on one operation of a scenario.": {"ride/create_ride:errors!=3", Threshold{Scope: "ride/create_ride", Metric: "errors", Op: "!=", Value: 3}},
	}
	for name, c := range good {
		t.Run(name, func(t *testing.T) {
			got, err := ParseThreshold(c.in)
			if err != nil {
				t.Fatal(err)
			}
			c.want.Expr = c.in
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
	bad := map[string]struct{ in, want string }{
		"No operator says which operators exist.":           {"p99 800ms", "no comparison"},
		"An unknown metric lists the metrics.":              {"p99x<1s", `unknown metric "p99x"; use one of p50`},
		"A percentile over 100 suggests p99.9.":             {"p999<1s", "write p99.9"},
		"A latency value that is not a duration is named.":  {"p99<8x0ms", `value "8x0ms" is not a duration`},
		"An error rate above 1 says how to write a rate.":   {"error_rate<5", "above 1"},
		"An error rate that is not a number is named.":      {"error_rate<abc", `value "abc" is not a ratio`},
		"A fractional count is refused.":                    {"dropped<0.5", "whole number"},
		"A run metric on an operation is refused.":          {"ride/create_ride:dropped==0", "not per operation"},
		"A negative duration is refused.":                   {"p99<-1s", "not a duration"},
		"An expression that cannot be read says the shape.": {"<800ms", "[scenario:]metric operator value"},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseThreshold(c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.in) {
				t.Errorf("ParseThreshold(%q) = %v; want an error naming the threshold and containing %q", c.in, err, c.want)
			}
		})
	}
}

func summaryOf(lat []time.Duration, errs int64, dropped int64) *Summary {
	h := NewHistogram()
	for _, d := range lat {
		h.Record(d)
	}
	s := &Summary{Scheduled: int64(len(lat)) + dropped, Iterations: int64(len(lat)), Dropped: dropped, AchievedRate: 99,
		Stats: Stats{Requests: int64(len(lat)), Errors: errs, Histogram: h}, Scenarios: map[string]*ScenarioSummary{}}
	s.finish()
	sc := &ScenarioSummary{Stats: Stats{Requests: s.Requests, Errors: errs, Histogram: h.Clone()}, Iterations: s.Iterations,
		Operations: map[string]*Stats{"get": {Requests: s.Requests, Errors: errs, Histogram: h.Clone()}}}
	sc.finish()
	sc.Operations["get"].finish()
	s.Scenarios["http"] = sc
	return s
}

func TestThresholdsPassAndFailOnTheSummary(t *testing.T) {
	var lat []time.Duration
	for i := range 1000 {
		lat = append(lat, time.Duration(i+1)*time.Millisecond) // 1..1000 ms
	}
	s := summaryOf(lat, 2, 0)
	cases := map[string]bool{
		"p99<995ms": true, "p99<985ms": false, "p50<=501ms": true, "p50<499ms": false,
		"max>=999ms": true, "max<900ms": false, "min<2ms": true, "mean>400ms": true,
		"error_rate<0.003": true, "error_rate<0.001": false, "errors==2": true, "requests>=1000": true,
		"dropped==0": true, "dropped_rate<0.01": true, "achieved_rate>=99": true, "achieved_rate>100": false,
		"http:p99<995ms": true, "http:iterations==1000": true, "http/get:errors<1": false,
		"ride:p99<1s": false, "http/put:p99<1s": false,
	}
	for expr, want := range cases {
		th, err := ParseThreshold(expr)
		if err != nil {
			t.Fatal(err)
		}
		if r := th.Eval(s); r.Passed != want {
			t.Errorf("%s: passed %v (%s), want %v", expr, r.Passed, r.Detail, want)
		}
	}
	ts, _ := ParseThresholds([]string{"p99<995ms", "ride:p99<1s"})
	if Evaluate(s, ts) || s.Passed || len(s.Thresholds) != 2 || !strings.Contains(s.Thresholds[1].Detail, `no scenario "ride"`) {
		t.Errorf("Evaluate: passed %v, results %+v", s.Passed, s.Thresholds)
	}
}
