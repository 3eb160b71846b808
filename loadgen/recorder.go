package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Run is one load-generator run as recorded for later reports: the row of
// ClickHouse's load_runs table (its columns are the JSON names).
type Run struct {
	EventID         string    `json:"event_id"`
	TS              time.Time `json:"ts"`
	Scenario        string    `json:"scenario"`
	Target          string    `json:"target"`
	TargetRate      float64   `json:"target_rate"`
	AchievedRate    float64   `json:"achieved_rate"`
	DurationSeconds float64   `json:"duration_seconds"`
	Requests        int64     `json:"requests"`
	Errors          int64     `json:"errors"`
	Dropped         int64     `json:"dropped"`
	P50Ms           float64   `json:"p50_ms"`
	P90Ms           float64   `json:"p90_ms"`
	P99Ms           float64   `json:"p99_ms"`
	P999Ms          float64   `json:"p999_ms"`
	Passed          bool      `json:"passed"`
	// Summary is the run's summary as compact JSON without histograms:
	// errors by kind, scenarios, operations, events and thresholds.
	Summary string `json:"summary"`
}

// RunRecorder records finished runs (ClickHouse's load_runs, a file...).
type RunRecorder interface {
	RecordRun(ctx context.Context, r Run) error
}

// RecorderFunc adapts a function to RunRecorder.
type RecorderFunc func(ctx context.Context, r Run) error

// RecordRun calls f.
func (f RecorderFunc) RecordRun(ctx context.Context, r Run) error { return f(ctx, r) }

// RunOf turns a summary into its record. The event id is the run id; the
// time is the run's start.
func RunOf(s *Summary) (Run, error) {
	compact, err := compactSummary(s)
	if err != nil {
		return Run{}, err
	}
	ts := s.StartedAt
	if ts.IsZero() {
		ts = time.Now().UTC()
	}
	return Run{
		EventID: s.RunID, TS: ts, Scenario: s.Scenario, Target: s.Target,
		TargetRate: s.TargetRate, AchievedRate: s.AchievedRate, DurationSeconds: s.DurationSeconds,
		Requests: s.Requests, Errors: s.Errors, Dropped: s.Dropped,
		P50Ms: s.LatencyMS.P50, P90Ms: s.LatencyMS.P90, P99Ms: s.LatencyMS.P99, P999Ms: s.LatencyMS.P999,
		Passed: s.Passed, Summary: compact,
	}, nil
}

// compactSummary is the summary's JSON without the encoded histograms.
func compactSummary(s *Summary) (string, error) {
	c := *s
	c.Histogram = nil
	c.Scenarios = map[string]*ScenarioSummary{}
	for name, sc := range s.Scenarios {
		cs := *sc
		cs.Histogram = nil
		cs.Operations = map[string]*Stats{}
		for op, o := range sc.Operations {
			co := *o
			co.Histogram = nil
			cs.Operations[op] = &co
		}
		cs.Events = maps.Clone(sc.Events)
		c.Scenarios[name] = &cs
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return "", fmt.Errorf("encoding the run summary: %w", err)
	}
	return strings.TrimSpace(b.String()), nil
}
