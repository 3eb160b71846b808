package drill

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/exporters/rto"
)

// PhaseCatchup is the RTO phase of the scenarios that do not fail over
// (replication stall, clock skew): from the fault's clearing to every
// replication pair of the faulted region back within its RPO.
const PhaseCatchup = "catchup"

// NotMeasured is the value of a number the drill could not measure.
const NotMeasured = -1.0

// Result is one drill's outcome: the top-level numbers (one row of the
// drill_results table) and the details behind them. Seconds not measured
// are NotMeasured (-1).
type Result struct {
	EventID  string    `json:"event_id"`
	TS       time.Time `json:"ts"` // T0, the fault's time (the start when there was none)
	Scenario string    `json:"scenario"`
	// Region is the faulted regions, comma-separated.
	Region string `json:"region"`
	Passed bool   `json:"passed"`
	// Measurable is false when the scenario could not be measured here
	// (Reason says why); such a drill has not passed.
	Measurable bool   `json:"measurable"`
	Reason     string `json:"reason,omitempty"`

	// RTOSeconds is the total: for a failover, T0 to the faulted regions'
	// riders served elsewhere with every gateway routing around them; for
	// a stall or skew, the catch-up after the fault was cleared.
	RTOSeconds float64 `json:"rto_seconds"`
	// RPOSeconds is the window of acknowledged writes the surviving
	// regions lacked after the settle time (0 when none was missing).
	RPOSeconds     float64 `json:"rpo_seconds"`
	DetectSeconds  float64 `json:"detect_seconds"` // T0 to detection
	DecideSeconds  float64 `json:"decide_seconds"` // detection to decision
	ShiftSeconds   float64 `json:"shift_seconds"`  // decision to the shift
	CatchupSeconds float64 `json:"catchup_seconds"`
	// SuccessRatio is the share of ride creations acknowledged over the drill.
	SuccessRatio float64 `json:"success_ratio"`

	Faulted    []string   `json:"faulted"`
	Survivors  []string   `json:"survivors"`
	Fault      Fault      `json:"fault"`
	External   bool       `json:"external"`
	Engine     bool       `json:"engine"`
	Objectives Objectives `json:"objectives"`
	Timeline   Timeline   `json:"timeline"`
	Load       LoadStats  `json:"load"`
	RPO        RPOReport  `json:"rpo"`
	IDs        IDReport   `json:"ids"`
	Checks     []Check    `json:"checks"`
	Notes      []string   `json:"notes,omitempty"`
}

// Timeline holds the drill's moments; unset ones were not reached.
type Timeline struct {
	Start    time.Time  `json:"start"`
	Baseline *time.Time `json:"baseline,omitempty"` // steady baseline reached
	T0       *time.Time `json:"t0,omitempty"`
	// T0Source says how T0 was known: "injected" (just before the admin
	// API call), "fault-at" (given), or the first failure observed.
	T0Source   string     `json:"t0_source,omitempty"`
	T0Acked    *time.Time `json:"t0_acked,omitempty"` // the admin API answered
	Detect     *time.Time `json:"detect,omitempty"`
	DetectedBy string     `json:"detected_by,omitempty"`
	Decide     *time.Time `json:"decide,omitempty"`
	DecidedBy  string     `json:"decided_by,omitempty"`
	// BreakerOpen is when the engine had every faulted region's breaker open.
	BreakerOpen *time.Time `json:"breaker_open,omitempty"`
	Shift       *time.Time `json:"shift,omitempty"`
	// FirstServedElsewhere is the first ride of a faulted region's rider,
	// sent after T0, acknowledged by another region.
	FirstServedElsewhere *time.Time `json:"first_served_elsewhere,omitempty"`
	ServedElsewhereBy    string     `json:"served_elsewhere_by,omitempty"`
	// Recovered is T0 + RTO for a failover: the later of the shift and the
	// first ride served elsewhere (RecoveredBy says which).
	Recovered   *time.Time `json:"recovered_at,omitempty"`
	RecoveredBy string     `json:"recovered_by,omitempty"`
	Cleared     *time.Time `json:"cleared,omitempty"`
	// FaultGone (external mode) is when the faulted regions answered their
	// health checks again: recovery counts from it.
	FaultGone *time.Time `json:"fault_gone,omitempty"`
	// TrafficBack is when every faulted region had served a ride again
	// after the fault (gateways hold an ejected region out for its ejection
	// time, whatever its probes say).
	TrafficBack *time.Time `json:"traffic_back,omitempty"`
	// Healthy is when every gateway saw the faulted regions healthy again
	// after the clear; CaughtUp when the replication metrics were back
	// within the RPOs; Replicated when every ride acknowledged before the
	// clear was found in every region (stall and skew).
	Healthy    *time.Time `json:"healthy,omitempty"`
	CaughtUp   *time.Time `json:"caught_up,omitempty"`
	Replicated *time.Time `json:"replicated,omitempty"`
	End        time.Time  `json:"end"`
}

// LoadStats summarises the ride load.
type LoadStats struct {
	RateTarget   float64 `json:"rate_target"`
	AchievedRate float64 `json:"achieved_rate"`
	Scheduled    int     `json:"scheduled"`
	Sent         int     `json:"sent"`
	// Acked rides got a 2xx with their id; Failed got none after every
	// attempt; Dropped were never sent (the generator had no free slot).
	Acked   int `json:"acked"`
	Failed  int `json:"failed"`
	Dropped int `json:"dropped"`
	// SentAfterFault and FailedAfterFault count rides sent at or after T0.
	SentAfterFault   int `json:"sent_after_fault"`
	FailedAfterFault int `json:"failed_after_fault"`
	// FirstAttemptFailed rides needed the app's fallback to another
	// gateway (Fallbacks of them tried one).
	FirstAttemptFailed       int      `json:"first_attempt_failed"`
	Fallbacks                int      `json:"fallbacks"`
	SuccessRatio             float64  `json:"success_ratio"`
	FirstAttemptSuccessRatio float64  `json:"first_attempt_success_ratio"`
	LatencyP50Seconds        float64  `json:"latency_p50_seconds"`
	LatencyP99Seconds        float64  `json:"latency_p99_seconds"`
	LatencyMaxSeconds        float64  `json:"latency_max_seconds"`
	FailureExamples          []string `json:"failure_examples,omitempty"`
}

// PairLag is one replication pair's lag as scraped.
type PairLag struct {
	SyncLagSeconds      *float64 `json:"sync_lag_seconds,omitempty"`
	ExposureSeconds     *float64 `json:"rpo_exposure_seconds,omitempty"`
	RPOObjectiveSeconds float64  `json:"rpo_objective_seconds"`
}

// RPOReport is how the acknowledged writes fared.
type RPOReport struct {
	// LagAtFault is every pair involving a faulted region, scraped just
	// before T0: what a real loss at T0 would have cost.
	LagAtFault map[string]PairLag `json:"lag_at_fault,omitempty"`
	// MaxLagSeconds is the largest sync lag or exposure of such a pair
	// while the fault held.
	MaxLagSeconds float64 `json:"max_lag_seconds"`
	MaxLagPair    string  `json:"max_lag_pair,omitempty"`
	// Checked acknowledged rides were looked up in each of CheckedIn at
	// CheckedAt (after the settle time; for a failover, while the fault held).
	Checked   int       `json:"checked"`
	CheckedIn []string  `json:"checked_in,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
	// Missing counts, per region, acknowledged rides it still lacked after
	// the settle time; LossWindowSeconds is the span of their
	// acknowledgements up to the loss (T0 for a region down).
	Missing           map[string]int `json:"missing,omitempty"`
	MissingExamples   []string       `json:"missing_examples,omitempty"`
	LossWindowSeconds float64        `json:"loss_window_seconds"`
	// HeldBack counts, per region, acknowledged rides it lacked just
	// before the fault of a stall or skew was cleared, and
	// HeldBackWindowSeconds the span of their acknowledgements up to then:
	// what losing the faulted region at that moment would have cost.
	HeldBack              map[string]int `json:"held_back,omitempty"`
	HeldBackWindowSeconds float64        `json:"held_back_window_seconds"`
	// Unverified lookups got neither 200 nor 404.
	Unverified int `json:"unverified"`
	// NotConverged counts, per region, acknowledged rides still missing
	// after recovery; Converged is true when every region had every one.
	ConvergenceChecked bool           `json:"convergence_checked"`
	NotConverged       map[string]int `json:"not_converged,omitempty"`
}

// IDReport is the ride-id check.
type IDReport struct {
	Checked         int      `json:"checked"`
	Nodes           int      `json:"nodes"`
	Duplicates      int      `json:"duplicates"`
	OrderViolations int      `json:"order_violations"`
	Examples        []string `json:"examples,omitempty"`
}

// Check is one objective held against what was measured.
type Check struct {
	Name      string `json:"name"`
	Objective string `json:"objective"`
	Measured  string `json:"measured"`
	Passed    bool   `json:"passed"`
	Detail    string `json:"detail,omitempty"`
}

// JSON is the result as indented JSON.
func (r Result) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the drill result: %w", err)
	}
	return append(b, '\n'), nil
}

// Phases returns the measured RTO phases by rto phase name, for
// rto.Drills.Record: detect, decide, shift and total, and catchup for the
// scenarios that do not fail over (whose total is their catch-up). A phase
// not measured is left out.
func (r Result) Phases() map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, v := range map[string]float64{rto.PhaseDetect: r.DetectSeconds, rto.PhaseDecide: r.DecideSeconds,
		rto.PhaseShift: r.ShiftSeconds, rto.PhaseTotal: r.RTOSeconds, PhaseCatchup: r.CatchupSeconds} {
		if v >= 0 && !math.IsNaN(v) {
			out[name] = time.Duration(v * float64(time.Second))
		}
	}
	return out
}

// Failed lists the names of the checks that did not pass.
func (r Result) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.Passed {
			out = append(out, c.Name)
		}
	}
	return out
}

// Markdown renders the result as a report for people.
func (r Result) Markdown() string {
	var b strings.Builder
	verdict := "PASSED"
	switch {
	case !r.Measurable:
		verdict = "NOT MEASURABLE"
	case !r.Passed:
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "# Drill %s of %s: %s\n\n", r.Scenario, r.Region, verdict)
	if r.Reason != "" {
		fmt.Fprintf(&b, "%s\n\n", r.Reason)
	}
	mode := "injected by the drill through the fault admin API"
	if r.External {
		mode = "injected outside the drill (external mode)"
	}
	fmt.Fprintf(&b, "- event: `%s`\n- fault: %s in %s, %s\n", r.EventID, r.Fault, strings.Join(r.Faulted, ", "), mode)
	fmt.Fprintf(&b, "- surviving regions: %s\n", strings.Join(r.Survivors, ", "))
	engine := "none (the gateways' probes and ejection decide)"
	if r.Engine {
		engine = "polled"
	}
	fmt.Fprintf(&b, "- SLA engine: %s\n", engine)
	if r.Timeline.T0 != nil {
		fmt.Fprintf(&b, "- T0: %s (%s)\n", r.Timeline.T0.Format(time.RFC3339Nano), r.Timeline.T0Source)
	}
	b.WriteString("\n## Objectives\n\n| check | objective | measured | result |\n|---|---|---|---|\n")
	for _, c := range r.Checks {
		res := "pass"
		if !c.Passed {
			res = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Name, c.Objective, c.Measured, res)
	}
	for _, c := range r.Checks {
		if c.Detail != "" {
			fmt.Fprintf(&b, "\n- %s: %s", c.Name, c.Detail)
		}
	}
	b.WriteString("\n\n## RTO by phase\n\n| phase | seconds | moment | by |\n|---|---|---|---|\n")
	tl := r.Timeline
	row := func(phase string, v float64, at *time.Time, by string) {
		s, when := "not reached", ""
		if v >= 0 {
			s = fmt.Sprintf("%.3f", v)
		}
		if at != nil {
			when = at.Format("15:04:05.000")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", phase, s, when, by)
	}
	row("detect (T0 → noticed)", r.DetectSeconds, tl.Detect, tl.DetectedBy)
	if r.CatchupSeconds < 0 {
		row("decide (noticed → decided)", r.DecideSeconds, tl.Decide, tl.DecidedBy)
		row("shift (decided → routed around)", r.ShiftSeconds, tl.Shift, "")
		row("total (T0 → riders served elsewhere, routed around)", r.RTOSeconds, tl.Recovered, tl.RecoveredBy)
	} else {
		at := tl.CaughtUp
		if tl.Replicated != nil && (at == nil || tl.Replicated.After(*at)) {
			at = tl.Replicated
		}
		row("catch-up (cleared → replication within RPO, every ride everywhere)", r.CatchupSeconds, at, "")
	}
	b.WriteString("\n## Moments\n\n| moment | time |\n|---|---|\n")
	for _, m := range []struct {
		name string
		at   *time.Time
	}{{"load start", &tl.Start}, {"steady baseline", tl.Baseline}, {"T0", tl.T0}, {"fault API answered", tl.T0Acked},
		{"detected", tl.Detect}, {"decided", tl.Decide}, {"engine breaker open", tl.BreakerOpen}, {"shifted", tl.Shift},
		{"first ride served elsewhere", tl.FirstServedElsewhere}, {"RTO reached (T0 + total)", tl.Recovered}, {"fault cleared", tl.Cleared}, {"fault gone (health checks pass)", tl.FaultGone},
		{"healthy again", tl.Healthy}, {"serving again (a ride served by every faulted region)", tl.TrafficBack}, {"replication metrics within RPO", tl.CaughtUp}, {"every ride in every region", tl.Replicated}, {"end", &tl.End}} {
		if m.at != nil && !m.at.IsZero() {
			rel := ""
			if tl.T0 != nil {
				rel = fmt.Sprintf(" (T0%+.3fs)", m.at.Sub(*tl.T0).Seconds())
			}
			fmt.Fprintf(&b, "| %s | %s%s |\n", m.name, m.at.Format("15:04:05.000"), rel)
		}
	}
	l := r.Load
	fmt.Fprintf(&b, "\n## Load\n\n- rate: %.1f rides/s target, %.1f achieved; %d scheduled, %d sent, %d dropped\n", l.RateTarget, l.AchievedRate, l.Scheduled, l.Sent, l.Dropped)
	fmt.Fprintf(&b, "- acknowledged %d, failed %d (%d of %d sent after T0): success %.4f%%\n", l.Acked, l.Failed, l.FailedAfterFault, l.SentAfterFault, 100*l.SuccessRatio)
	fmt.Fprintf(&b, "- first attempts failed %d (success %.4f%% without the app's fallback); fallbacks to another gateway %d\n", l.FirstAttemptFailed, 100*l.FirstAttemptSuccessRatio, l.Fallbacks)
	fmt.Fprintf(&b, "- latency from the intended start: p50 %.3fs, p99 %.3fs, max %.3fs\n", l.LatencyP50Seconds, l.LatencyP99Seconds, l.LatencyMaxSeconds)
	for _, e := range l.FailureExamples {
		fmt.Fprintf(&b, "  - %s\n", e)
	}
	p := r.RPO
	fmt.Fprintf(&b, "\n## RPO\n\n- %d acknowledged rides looked up in %s at %s\n", p.Checked, strings.Join(p.CheckedIn, ", "), p.CheckedAt.Format("15:04:05.000"))
	for _, reg := range slices.Sorted(maps.Keys(p.Missing)) {
		fmt.Fprintf(&b, "- missing in %s: %d\n", reg, p.Missing[reg])
	}
	fmt.Fprintf(&b, "- loss window: %.3fs; unverified lookups: %d\n", p.LossWindowSeconds, p.Unverified)
	for _, reg := range slices.Sorted(maps.Keys(p.HeldBack)) {
		fmt.Fprintf(&b, "- lacking in %s just before the fault was cleared: %d rides\n", reg, p.HeldBack[reg])
	}
	if len(p.HeldBack) > 0 {
		fmt.Fprintf(&b, "- held-back window then: %.3fs (what losing the faulted region at that moment would have cost)\n", p.HeldBackWindowSeconds)
	}
	for _, e := range p.MissingExamples {
		fmt.Fprintf(&b, "  - %s\n", e)
	}
	if len(p.LagAtFault) > 0 {
		b.WriteString("\n| pair | sync lag at T0 | RPO exposure at T0 | pair RPO |\n|---|---|---|---|\n")
		for _, k := range slices.Sorted(maps.Keys(p.LagAtFault)) {
			pl := p.LagAtFault[k]
			fmt.Fprintf(&b, "| %s | %s | %s | %gs |\n", k, optSeconds(pl.SyncLagSeconds), optSeconds(pl.ExposureSeconds), pl.RPOObjectiveSeconds)
		}
	}
	if p.MaxLagPair != "" {
		fmt.Fprintf(&b, "\nLargest lag while the fault held: %.3fs (%s).\n", p.MaxLagSeconds, p.MaxLagPair)
	}
	if p.ConvergenceChecked {
		if len(p.NotConverged) == 0 {
			b.WriteString("\nAfter recovery every region had every acknowledged ride.\n")
		} else {
			for _, reg := range slices.Sorted(maps.Keys(p.NotConverged)) {
				fmt.Fprintf(&b, "\nAfter recovery %s still lacked %d acknowledged rides.\n", reg, p.NotConverged[reg])
			}
		}
	}
	fmt.Fprintf(&b, "\n## Ride ids\n\n- %d ids from %d nodes: %d duplicates, %d out of order on their node\n", r.IDs.Checked, r.IDs.Nodes, r.IDs.Duplicates, r.IDs.OrderViolations)
	for _, e := range r.IDs.Examples {
		fmt.Fprintf(&b, "  - %s\n", e)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func optSeconds(v *float64) string {
	if v == nil {
		return "absent"
	}
	return fmt.Sprintf("%.3fs", *v)
}
