package loadgen

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Threshold is a pass/fail criterion on a run's summary, written as in k6:
// [scope:]metric op value, e.g. "p99<800ms", "error_rate<0.0005",
// "dropped==0", "achieved_rate>=190", "ride:p99<1s", "ride/create_ride:p95<300ms".
//
// The scope is empty (the whole run), a scenario, or scenario/operation.
// Metrics:
//   - latency: pNN (any percentile, e.g. p50, p90, p95, p99, p99.9; also
//     k6's p(99.9)), min, mean, max; the value is a duration (800ms, 1.5s,
//     250us) or a bare number of milliseconds;
//   - error_rate (a ratio, or a percentage such as 0.05%), errors, requests;
//   - dropped, dropped_rate, interrupted, iterations, achieved_rate
//     (iterations per second), not for an operation scope.
//
// Operators: < <= > >= == !=.
type Threshold struct {
	Expr   string
	Scope  string
	Metric string
	// Percentile is set for a pNN metric.
	Percentile float64
	Op         string
	// Value is in milliseconds for latency metrics.
	Value float64
}

// ThresholdResult is a threshold evaluated on a summary.
type ThresholdResult struct {
	Expr   string  `json:"expr"`
	Passed bool    `json:"passed"`
	Actual float64 `json:"actual"`
	// Detail says what was measured, or why the threshold could not be
	// evaluated.
	Detail string `json:"detail"`
}

var (
	thresholdRe  = regexp.MustCompile(`^(?:([a-z][a-z0-9_]*(?:/[a-z0-9_]+)?)\s*:)?\s*([a-z0-9_.()]+)\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$`)
	percentileRe = regexp.MustCompile(`^p(?:\(([0-9]+(?:\.[0-9]+)?)\)|([0-9]+(?:\.[0-9]+)?))$`)
	runMetrics   = map[string]bool{"dropped": true, "dropped_rate": true, "interrupted": true, "iterations": true, "achieved_rate": true}
	countMetrics = map[string]bool{"errors": true, "requests": true, "dropped": true, "interrupted": true, "iterations": true}
	latencyNames = map[string]bool{"min": true, "mean": true, "max": true}
)

const metricList = "p50, p90, p95, p99, p99.9 (any pNN), min, mean, max, error_rate, errors, requests, dropped, dropped_rate, interrupted, iterations, achieved_rate"

// ParseThreshold parses one threshold; the error names the threshold and
// what is wrong with it.
func ParseThreshold(expr string) (Threshold, error) {
	fail := func(format string, args ...any) (Threshold, error) {
		return Threshold{}, fmt.Errorf("threshold %q: %s", expr, fmt.Sprintf(format, args...))
	}
	m := thresholdRe.FindStringSubmatch(strings.TrimSpace(expr))
	if m == nil {
		if !strings.ContainsAny(expr, "<>=!") {
			return fail("no comparison; write metric, operator, value, e.g. p99<800ms (operators < <= > >= == !=)")
		}
		return fail("cannot read it; write [scenario:]metric operator value, e.g. p99<800ms or ride:error_rate<0.001")
	}
	t := Threshold{Expr: expr, Scope: m[1], Metric: m[2], Op: m[3]}
	if p := percentileRe.FindStringSubmatch(t.Metric); p != nil {
		v, _ := strconv.ParseFloat(p[1]+p[2], 64)
		if v <= 0 || v > 100 {
			return fail("percentile %s is outside (0, 100]; for the 99.9th write p99.9", t.Metric)
		}
		t.Percentile = v
	} else if !latencyNames[t.Metric] && !countMetrics[t.Metric] && !runMetrics[t.Metric] && t.Metric != "error_rate" {
		return fail("unknown metric %q; use one of %s", t.Metric, metricList)
	}
	if strings.Contains(t.Scope, "/") && runMetrics[t.Metric] {
		return fail("%s is counted per run or scenario, not per operation; drop the /%s", t.Metric, strings.SplitN(t.Scope, "/", 2)[1])
	}
	raw := m[4]
	switch {
	case t.latency():
		v, err := parseMillis(raw)
		if err != nil {
			return fail("value %q is not a duration; write e.g. 800ms, 1.5s, 250us, or a number of milliseconds", raw)
		}
		t.Value = v
	case t.Metric == "error_rate" || t.Metric == "dropped_rate":
		pct := strings.HasSuffix(raw, "%")
		v, err := strconv.ParseFloat(strings.TrimSuffix(raw, "%"), 64)
		if err != nil || v < 0 {
			return fail("value %q is not a ratio; write e.g. 0.0005 or 0.05%%", raw)
		}
		if pct {
			v /= 100
		}
		if v > 1 {
			return fail("value %q is above 1; a rate is a ratio (0.0005) or a percentage (0.05%%)", raw)
		}
		t.Value = v
	default:
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || v < 0 {
			return fail("value %q is not a non-negative number", raw)
		}
		if countMetrics[t.Metric] && v != float64(int64(v)) {
			return fail("value %q: %s is a count; write a whole number", raw, t.Metric)
		}
		t.Value = v
	}
	return t, nil
}

// ParseThresholds parses several thresholds, stopping at the first error.
func ParseThresholds(exprs []string) ([]Threshold, error) {
	out := make([]Threshold, 0, len(exprs))
	for _, e := range exprs {
		t, err := ParseThreshold(e)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (t Threshold) latency() bool { return t.Percentile > 0 || latencyNames[t.Metric] }

// Scenario is the scenario a threshold's scope names ("" for the run).
func (t Threshold) Scenario() string {
	s, _, _ := strings.Cut(t.Scope, "/")
	return s
}

func parseMillis(s string) (float64, error) {
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		if v < 0 {
			return 0, fmt.Errorf("negative")
		}
		return v, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("not a duration")
	}
	return ms(d), nil
}

// Eval evaluates the threshold on a summary. A scope the summary does not
// have fails the threshold, saying so.
func (t Threshold) Eval(s *Summary) ThresholdResult {
	r := ThresholdResult{Expr: t.Expr}
	stats := &s.Stats
	var sc *ScenarioSummary
	if t.Scope != "" {
		name, op, hasOp := strings.Cut(t.Scope, "/")
		if sc = s.Scenarios[name]; sc == nil {
			r.Detail = fmt.Sprintf("no scenario %q in this run", name)
			return r
		}
		stats = &sc.Stats
		if hasOp {
			if stats = sc.Operations[op]; stats == nil {
				r.Detail = fmt.Sprintf("no operation %q in scenario %s", op, name)
				return r
			}
		}
	}
	var v float64
	switch {
	case t.Percentile > 0:
		v = ms(stats.Histogram.Quantile(t.Percentile))
	case t.Metric == "min":
		v = ms(stats.Histogram.Min())
	case t.Metric == "mean":
		v = ms(stats.Histogram.Mean())
	case t.Metric == "max":
		v = ms(stats.Histogram.Max())
	case t.Metric == "error_rate":
		v = stats.ErrorRate
	case t.Metric == "errors":
		v = float64(stats.Errors)
	case t.Metric == "requests":
		v = float64(stats.Requests)
	case sc != nil:
		v = scenarioMetric(sc, t.Metric)
	default:
		v = runMetric(s, t.Metric)
	}
	r.Actual = v
	r.Passed = compare(v, t.Op, t.Value)
	if t.latency() {
		r.Detail = fmt.Sprintf("measured %s", fmtMS(v))
	} else {
		r.Detail = fmt.Sprintf("measured %s", strconv.FormatFloat(v, 'g', 6, 64))
	}
	return r
}

func scenarioMetric(sc *ScenarioSummary, m string) float64 {
	switch m {
	case "dropped":
		return float64(sc.Dropped)
	case "dropped_rate":
		if sc.Scheduled == 0 {
			return 0
		}
		return float64(sc.Dropped) / float64(sc.Scheduled)
	case "interrupted":
		return float64(sc.Interrupted)
	case "iterations":
		return float64(sc.Iterations)
	default: // achieved_rate
		return sc.AchievedRate
	}
}

func runMetric(s *Summary, m string) float64 {
	switch m {
	case "dropped":
		return float64(s.Dropped)
	case "dropped_rate":
		return s.DroppedRate()
	case "interrupted":
		return float64(s.Interrupted)
	case "iterations":
		return float64(s.Iterations)
	default: // achieved_rate
		return s.AchievedRate
	}
}

func compare(v float64, op string, want float64) bool {
	switch op {
	case "<":
		return v < want
	case "<=":
		return v <= want
	case ">":
		return v > want
	case ">=":
		return v >= want
	case "==":
		return v == want
	default: // !=
		return v != want
	}
}

// Evaluate evaluates every threshold on s, stores the results in
// s.Thresholds and sets s.Passed; it returns s.Passed.
func Evaluate(s *Summary, ts []Threshold) bool {
	s.Thresholds = s.Thresholds[:0]
	s.Passed = true
	for _, t := range ts {
		r := t.Eval(s)
		s.Thresholds = append(s.Thresholds, r)
		s.Passed = s.Passed && r.Passed
	}
	return s.Passed
}
