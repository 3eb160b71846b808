package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseMixAndItsShares(t *testing.T) {
	m, err := ParseMix("ride=70, quote=20,drivers=10")
	if err != nil {
		t.Fatal(err)
	}
	if m.String() != "ride=70,quote=20,drivers=10" {
		t.Errorf("mix %s", m)
	}
	s := newSWRR([]int{70, 20, 10})
	counts := make([]int, 3)
	for range 1000 {
		counts[s.next()]++
	}
	if counts[0] != 700 || counts[1] != 200 || counts[2] != 100 {
		t.Errorf("shares over 10 periods = %v, want exactly 700/200/100", counts)
	}
	if one, _ := ParseMix("ride"); len(one) != 1 || one[0].Weight != 1 {
		t.Errorf("a bare name: %v", one)
	}
	for name, c := range map[string]struct{ in, want string }{
		"An empty mix says how to write one.":  {"", "ride=70"},
		"A zero weight is refused.":            {"ride=0", "whole number from 1"},
		"A weight that is not a number fails.": {"ride=x", "whole number"},
		"A repeated scenario is refused.":      {"ride,ride=2", "given twice"},
		"A bad name is refused.":               {"Ride!", "lower-case"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseMix(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParseMix(%q) = %v, want %q", c.in, err, c.want)
			}
		})
	}
}

// TestSummaryJSONRoundTripsAndMerges: a summary written as JSON reads back
// with the same numbers, and two summaries merge into one whose counts add
// up and whose percentiles are those of all the requests together.
func TestSummaryJSONRoundTripsAndMerges(t *testing.T) {
	a := summaryOf([]time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}, 1, 2)
	a.RunID, a.Target, a.TargetRate, a.DurationSeconds, a.Runs, a.Version = "a", "http://x", 100, 3, 1, SummaryVersion
	b := summaryOf([]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, 0, 0)
	b.RunID, b.Target, b.TargetRate, b.DurationSeconds, b.Runs, b.Version = "b", "http://x", 50, 4, 1, SummaryVersion
	var buf bytes.Buffer
	if err := a.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSummary(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Requests != 3 || back.Errors != 1 || back.LatencyMS.P50 != a.LatencyMS.P50 || !back.Histogram.Equal(a.Histogram) ||
		back.Scenarios["http"].Operations["get"].Requests != 3 {
		t.Errorf("round trip changed the summary: %+v", back)
	}
	m, err := Merge(back, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Runs != 2 || m.Requests != 5 || m.Errors != 1 || m.Dropped != 2 || m.TargetRate != 150 || m.DurationSeconds != 4 ||
		m.Target != "http://x" || m.RunID != "a+b" {
		t.Errorf("merged: %+v", m)
	}
	if m.Histogram.Count() != 5 || m.Histogram.Max() < 199*time.Millisecond || m.Scenarios["http"].Requests != 5 ||
		m.Scenarios["http"].Operations["get"].Histogram.Count() != 5 {
		t.Errorf("merged histograms: total %d max %v", m.Histogram.Count(), m.Histogram.Max())
	}
	if m.ErrorRate != 0.2 {
		t.Errorf("merged error rate %v, want 0.2", m.ErrorRate)
	}
	var text bytes.Buffer
	if err := m.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(2 runs merged)", "target 150.0/s", "2 dropped", "p99.9"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
}

func TestReadSummaryRefusesWhatItCannotMerge(t *testing.T) {
	for name, c := range map[string]struct{ in, want string }{
		"Another version is refused.":      {`{"version": 9}`, "version 9"},
		"A summary without histogram.":     {`{"version": 1}`, "no histogram"},
		"Not JSON at all.":                 {`nope`, "reading a load-generator summary"},
		"A corrupt histogram is an error.": {`{"version": 1, "histogram": "zz"}`, "decoding a latency histogram"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadSummary(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

// TestRunCarriesTheLoadRunsColumns: the record of a run has every column of
// ClickHouse's load_runs table, filled from the summary.
func TestRunCarriesTheLoadRunsColumns(t *testing.T) {
	s := summaryOf([]time.Duration{time.Millisecond, 10 * time.Millisecond}, 1, 3)
	s.RunID, s.Scenario, s.Target, s.TargetRate, s.AchievedRate, s.DurationSeconds = "r1", "http=1", "http://x", 10, 9, 2
	s.StartedAt = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ts, _ := ParseThresholds([]string{"error_rate<0.1"})
	Evaluate(s, ts)
	var got Run
	rec := RecorderFunc(func(_ context.Context, r Run) error { got = r; return nil })
	r, err := RunOf(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.RecordRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	var cols map[string]any
	_ = json.Unmarshal(b, &cols)
	for _, c := range []string{"event_id", "ts", "scenario", "target", "target_rate", "achieved_rate", "duration_seconds", "requests",
		"errors", "dropped", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "passed", "summary"} {
		if _, ok := cols[c]; !ok {
			t.Errorf("column %s missing from %s", c, b)
		}
	}
	if got.EventID != "r1" || got.Requests != 2 || got.Errors != 1 || got.Dropped != 3 || got.Passed || got.P99Ms < 9.9 ||
		!got.TS.Equal(s.StartedAt) {
		t.Errorf("run %+v", got)
	}
	if strings.Contains(got.Summary, `"histogram":"`) || !strings.Contains(got.Summary, `"error_rate<0.1"`) {
		t.Errorf("the summary column should hold the thresholds and no encoded histogram: %s", got.Summary)
	}
}
