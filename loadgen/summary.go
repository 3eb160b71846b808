package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// SummaryVersion is the version of the JSON summary format.
const SummaryVersion = 1

// Latency holds latency percentiles in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Max  float64 `json:"max"`
}

// Stats are the requests of a run, a scenario or one operation.
type Stats struct {
	Requests     int64            `json:"requests"`
	Errors       int64            `json:"errors"`
	ErrorRate    float64          `json:"error_rate"`
	ErrorsByKind map[string]int64 `json:"errors_by_kind,omitempty"`
	// LatencyMS is derived from Histogram.
	LatencyMS Latency `json:"latency_ms"`
	// Histogram is the HDR histogram of every request's latency (µs),
	// encoded for merging.
	Histogram *Histogram `json:"histogram"`
}

// finish derives the rate and percentiles from the counts and histogram.
func (s *Stats) finish() {
	s.ErrorRate = 0
	if s.Requests > 0 {
		s.ErrorRate = float64(s.Errors) / float64(s.Requests)
	}
	if s.Histogram == nil {
		s.Histogram = NewHistogram()
	}
	h := s.Histogram
	s.LatencyMS = Latency{Min: ms(h.Min()), Mean: ms(h.Mean()), P50: ms(h.Quantile(50)), P90: ms(h.Quantile(90)),
		P95: ms(h.Quantile(95)), P99: ms(h.Quantile(99)), P999: ms(h.Quantile(99.9)), Max: ms(h.Max())}
}

func (s *Stats) add(o *Stats) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	for k, v := range o.ErrorsByKind {
		if s.ErrorsByKind == nil {
			s.ErrorsByKind = map[string]int64{}
		}
		s.ErrorsByKind[k] += v
	}
	if s.Histogram == nil {
		s.Histogram = NewHistogram()
	}
	s.Histogram.Merge(o.Histogram)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ScenarioSummary is one scenario's share of a run.
type ScenarioSummary struct {
	Weight int `json:"weight"`
	// Scheduled iterations came due; Iterations were started; Dropped found
	// no free worker; Interrupted were cancelled at the end of the run.
	Scheduled    int64   `json:"scheduled"`
	Iterations   int64   `json:"iterations"`
	Dropped      int64   `json:"dropped"`
	Interrupted  int64   `json:"interrupted"`
	TargetRate   float64 `json:"target_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Stats
	Operations map[string]*Stats `json:"operations"`
	// Events count outcomes that are not errors (a ride no driver took).
	Events map[string]int64 `json:"events,omitempty"`
}

// Summary is the result of a run (or of several merged): what was offered,
// what was achieved, and what the clients saw. It is the JSON output.
type Summary struct {
	Version   int       `json:"version"`
	RunID     string    `json:"run_id"`
	Runs      int       `json:"runs"`
	Target    string    `json:"target"`
	Scenario  string    `json:"scenario"`
	Schedule  string    `json:"schedule"`
	StartedAt time.Time `json:"started_at"`
	// DurationSeconds is the schedule's length, or longer when the
	// generator fell behind it, or shorter when it was stopped.
	DurationSeconds float64 `json:"duration_seconds"`
	Scheduled       int64   `json:"scheduled"`
	Iterations      int64   `json:"iterations"`
	Dropped         int64   `json:"dropped"`
	Interrupted     int64   `json:"interrupted"`
	// TargetRate is the schedule's mean arrival rate; AchievedRate the
	// started iterations per second of DurationSeconds.
	TargetRate   float64 `json:"target_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Stats
	Scenarios  map[string]*ScenarioSummary `json:"scenarios"`
	Thresholds []ThresholdResult           `json:"thresholds,omitempty"`
	// Passed is false when a threshold failed.
	Passed bool `json:"passed"`
}

// Summary returns the run's results; call it after Run returns (during a
// run it gives the results so far).
func (e *Executor) Summary() *Summary {
	sched := e.cfg.Schedule
	s := &Summary{Version: SummaryVersion, RunID: e.cfg.RunID, Runs: 1, Target: e.cfg.Target, Scenario: e.cfg.Mix.String(),
		Schedule: sched.String(), TargetRate: sched.MeanRate(), Scenarios: map[string]*ScenarioSummary{}, Passed: true}
	if start := e.start.Load(); start != 0 {
		s.StartedAt = time.Unix(0, start).UTC()
		s.DurationSeconds = e.elapsed().Seconds()
	}
	for _, sc := range e.scens {
		ops, events := sc.snapshot()
		ss := &ScenarioSummary{Weight: sc.weight, Scheduled: sc.scheduled.Load(), Iterations: sc.iterations.Load(),
			Dropped: sc.dropped.Load(), Interrupted: sc.interrupted.Load(), Operations: ops, Events: events,
			TargetRate: s.TargetRate * float64(sc.weight) / float64(e.totalWeight())}
		if len(ss.Events) == 0 {
			ss.Events = nil
		}
		for _, o := range ops {
			ss.add(o)
		}
		ss.finish()
		if s.DurationSeconds > 0 {
			ss.AchievedRate = float64(ss.Iterations) / s.DurationSeconds
		}
		s.Scenarios[sc.name] = ss
		s.Scheduled += ss.Scheduled
		s.Iterations += ss.Iterations
		s.Dropped += ss.Dropped
		s.Interrupted += ss.Interrupted
		s.add(&ss.Stats)
	}
	s.finish()
	if s.DurationSeconds > 0 {
		s.AchievedRate = float64(s.Iterations) / s.DurationSeconds
	}
	return s
}

func (e *Executor) totalWeight() int {
	t := 0
	for _, sc := range e.scens {
		t += sc.weight
	}
	return t
}

// DroppedRate is the share of scheduled iterations dropped.
func (s *Summary) DroppedRate() float64 {
	if s.Scheduled == 0 {
		return 0
	}
	return float64(s.Dropped) / float64(s.Scheduled)
}

// WriteJSON writes the summary as indented JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("writing the JSON summary: %w", err)
	}
	return nil
}

// ReadSummary reads a JSON summary written by WriteJSON and re-derives its
// percentiles from its histograms.
func ReadSummary(r io.Reader) (*Summary, error) {
	var s Summary
	dec := json.NewDecoder(r)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("reading a load-generator summary: %w", err)
	}
	if s.Version != SummaryVersion {
		return nil, fmt.Errorf("reading a load-generator summary: version %d; this build reads version %d (write it with `carpoolsla loadgen --json`)", s.Version, SummaryVersion)
	}
	if s.Histogram == nil {
		return nil, errors.New("reading a load-generator summary: it has no histogram, so it cannot be merged")
	}
	s.finish()
	for name, sc := range s.Scenarios {
		if sc == nil {
			return nil, fmt.Errorf("reading a load-generator summary: scenario %s is null", name)
		}
		sc.finish()
		for _, o := range sc.Operations {
			if o != nil {
				o.finish()
			}
		}
	}
	return &s, nil
}

// Merge combines summaries of runs made at the same time (on several
// machines against one system): counts add up, histograms merge, rates add
// up, and the duration is the longest. Thresholds are not carried over;
// evaluate them on the result.
func Merge(ss ...*Summary) (*Summary, error) {
	if len(ss) == 0 {
		return nil, errors.New("merge: no summary given")
	}
	out := &Summary{Version: SummaryVersion, Scenarios: map[string]*ScenarioSummary{}, Passed: true}
	var ids, targets, mixes, scheds []string
	for i, s := range ss {
		if s == nil || s.Histogram == nil {
			return nil, fmt.Errorf("merge: summary %d has no histogram", i+1)
		}
		runs := max(s.Runs, 1)
		out.Runs += runs
		ids = append(ids, s.RunID)
		targets = appendNew(targets, s.Target)
		mixes = appendNew(mixes, s.Scenario)
		scheds = appendNew(scheds, s.Schedule)
		if out.StartedAt.IsZero() || (!s.StartedAt.IsZero() && s.StartedAt.Before(out.StartedAt)) {
			out.StartedAt = s.StartedAt
		}
		out.DurationSeconds = math.Max(out.DurationSeconds, s.DurationSeconds)
		out.Scheduled += s.Scheduled
		out.Iterations += s.Iterations
		out.Dropped += s.Dropped
		out.Interrupted += s.Interrupted
		out.TargetRate += s.TargetRate
		out.AchievedRate += s.AchievedRate
		out.add(&s.Stats)
		for name, sc := range s.Scenarios {
			m := out.Scenarios[name]
			if m == nil {
				m = &ScenarioSummary{Weight: sc.Weight, Operations: map[string]*Stats{}}
				out.Scenarios[name] = m
			}
			m.Scheduled += sc.Scheduled
			m.Iterations += sc.Iterations
			m.Dropped += sc.Dropped
			m.Interrupted += sc.Interrupted
			m.TargetRate += sc.TargetRate
			m.AchievedRate += sc.AchievedRate
			m.add(&sc.Stats)
			for op, o := range sc.Operations {
				if m.Operations[op] == nil {
					m.Operations[op] = &Stats{}
				}
				m.Operations[op].add(o)
			}
			for k, v := range sc.Events {
				if m.Events == nil {
					m.Events = map[string]int64{}
				}
				m.Events[k] += v
			}
		}
	}
	out.RunID = strings.Join(ids, "+")
	out.Target = strings.Join(targets, " ")
	out.Scenario = strings.Join(mixes, " ")
	out.Schedule = strings.Join(scheds, " + ")
	out.finish()
	for _, sc := range out.Scenarios {
		sc.finish()
		for _, o := range sc.Operations {
			o.finish()
		}
	}
	return out, nil
}

func appendNew(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// WriteText writes the human-readable summary.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	runs := ""
	if s.Runs > 1 {
		runs = fmt.Sprintf(" (%d runs merged)", s.Runs)
	}
	fmt.Fprintf(&b, "load %s  scenario %s%s\n", orDash(s.Target), orDash(s.Scenario), runs)
	fmt.Fprintf(&b, "  schedule     %s, %.1fs\n", orDash(s.Schedule), s.DurationSeconds)
	fmt.Fprintf(&b, "  rate         target %.1f/s  achieved %.1f/s\n", s.TargetRate, s.AchievedRate)
	fmt.Fprintf(&b, "  iterations   %d scheduled, %d started, %d dropped (%.2f%%), %d interrupted\n",
		s.Scheduled, s.Iterations, s.Dropped, 100*s.DroppedRate(), s.Interrupted)
	writeStats(&b, "  ", &s.Stats)
	for _, name := range slices.Sorted(maps.Keys(s.Scenarios)) {
		sc := s.Scenarios[name]
		fmt.Fprintf(&b, "  %s (weight %d): %d iterations, %.1f/s of %.1f/s, %d dropped", name, sc.Weight, sc.Iterations,
			sc.AchievedRate, sc.TargetRate, sc.Dropped)
		if len(sc.Events) > 0 {
			fmt.Fprintf(&b, "; %s", kv(sc.Events))
		}
		b.WriteString("\n")
		for _, op := range slices.Sorted(maps.Keys(sc.Operations)) {
			o := sc.Operations[op]
			fmt.Fprintf(&b, "    %-20s %7d req  p50 %s  p99 %s  max %s  errors %d", op, o.Requests, fmtMS(o.LatencyMS.P50),
				fmtMS(o.LatencyMS.P99), fmtMS(o.LatencyMS.Max), o.Errors)
			if len(o.ErrorsByKind) > 0 {
				fmt.Fprintf(&b, " (%s)", kv(o.ErrorsByKind))
			}
			b.WriteString("\n")
		}
	}
	if len(s.Thresholds) > 0 {
		b.WriteString("  thresholds\n")
		for _, t := range s.Thresholds {
			mark := "ok  "
			if !t.Passed {
				mark = "FAIL"
			}
			fmt.Fprintf(&b, "    %s %-28s %s\n", mark, t.Expr, t.Detail)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeStats(b *strings.Builder, indent string, s *Stats) {
	fmt.Fprintf(b, "%srequests     %d, errors %d (%.4f%%)", indent, s.Requests, s.Errors, 100*s.ErrorRate)
	if len(s.ErrorsByKind) > 0 {
		fmt.Fprintf(b, ": %s", kv(s.ErrorsByKind))
	}
	b.WriteString("\n")
	l := s.LatencyMS
	fmt.Fprintf(b, "%slatency      p50 %s  p90 %s  p95 %s  p99 %s  p99.9 %s  max %s\n", indent,
		fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P95), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max))
}

func kv(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func fmtMS(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
