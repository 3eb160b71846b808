package report

import (
	"context"
	"time"
)

// History is where the report reads the past: the SLI minute rollups, the
// engine's breaker events and the drill results (ClickHouse's sli_minutes,
// sla_events and drill_results; see the chstore package). It is three small
// interfaces so a test can fake only what it needs.
type History interface {
	SLIHistory
	EventHistory
	DrillHistory
}

// SLIHistory reads the per-minute good and total events of SLOs.
type SLIHistory interface {
	// SLIMinutes calls fn once per minute of [q.From, q.To) that holds
	// events of q's SLOs, in time order, with each SLO's good and total of
	// that minute summed over q's regions. fn must not keep the slice after
	// it returns. An error from fn stops the read and is returned.
	SLIMinutes(ctx context.Context, q SLIQuery, fn func(MinuteCounts) error) error
	// SLIBuckets sums good and total events per SLO in buckets of q.Step.
	SLIBuckets(ctx context.Context, q BucketQuery) ([]BucketCount, error)
}

// EventHistory reads the engine's breaker transitions.
type EventHistory interface {
	// BreakerEvents returns, per region, the breaker state in force at
	// q.From (from the last transition before it) and the transitions in
	// [q.From, q.To), oldest first, at most q.Limit of them.
	BreakerEvents(ctx context.Context, q EventQuery) (BreakerHistory, error)
}

// DrillHistory reads the results of DR drills.
type DrillHistory interface {
	// DrillStats summarises the drills of [q.From, q.To) per scenario.
	DrillStats(ctx context.Context, q DrillQuery) ([]DrillStats, error)
}

// SLOTarget is one SLO as the history queries need it.
type SLOTarget struct {
	Service string
	SLO     string
	// ObjectivePPB is the objective in parts per billion (99.95 % is
	// 999,500,000), so that "below objective" is decided in integers:
	// good·10⁹ < total·ObjectivePPB.
	ObjectivePPB uint64
	// Key marks a key SLO: its breach vetoes the composite.
	Key bool
}

// SLIQuery selects SLI minutes: minute ∈ [From, To), of the listed SLOs,
// in Region (all regions when empty).
type SLIQuery struct {
	From, To time.Time
	Region   string
	SLOs     []SLOTarget
}

// MinuteCounts is one minute's events of the SLOs that had any.
type MinuteCounts struct {
	Minute time.Time
	SLOs   []SLOCount
}

// SLOCount is one SLO's events over a minute or a window.
type SLOCount struct {
	Service, SLO string
	Good, Total  uint64
	// BadMinutes counts minutes with events whose attainment was below the
	// SLO's objective (in a window's count).
	BadMinutes int
}

// windowCounts is a window's minutes summed (see Reporter.sliCounts).
type windowCounts struct {
	SLOs []SLOCount
	// ServiceDownMinutes counts, per service, the minutes in which at least
	// one of its SLOs was below objective.
	ServiceDownMinutes map[string]int
	// CompositeDownMinutes counts the minutes whose composite, computed from
	// that minute's events alone, was below the composite objective, or in
	// which a key SLO was below its objective.
	CompositeDownMinutes int
	// Minutes counts the minutes that hold any events.
	Minutes int
}

// BucketQuery selects SLI buckets: minute ∈ [From, To), bucketed by Step
// from the Unix epoch, of the listed SLOs, in Region (all when empty).
type BucketQuery struct {
	From, To time.Time
	Step     time.Duration
	Region   string
	SLOs     []SLOTarget
}

// BucketCount is one SLO's events in one bucket.
type BucketCount struct {
	Start        time.Time
	Service, SLO string
	Good, Total  uint64
}

// EventQuery selects breaker transitions of [From, To) in Region (all
// regions when empty), at most Limit of them.
type EventQuery struct {
	From, To time.Time
	Region   string
	Limit    int
}

// BreakerEvent is one breaker transition of one region.
type BreakerEvent struct {
	At     time.Time
	Region string
	From   string // closed, open or recovering
	To     string
	Reason string
}

// BreakerHistory is the answer to an EventQuery.
type BreakerHistory struct {
	// Before holds, per region, the last transition before the window (its
	// To is the state in force at the window's start). Regions without one
	// were closed.
	Before map[string]BreakerEvent
	// Events are the transitions inside the window, oldest first.
	Events []BreakerEvent
	// Truncated is true when the window held more than Limit transitions.
	Truncated bool
}

// DrillQuery selects drills of [From, To) in Region (all when empty) and
// gives each scenario's objectives, so that compliance is counted per drill.
type DrillQuery struct {
	From, To time.Time
	Region   string
	// Objectives by scenario; scenarios not listed use Default.
	Objectives map[string]DrillObjective
	Default    DrillObjective
}

// DrillObjective is a scenario's RTO and RPO.
type DrillObjective struct {
	RTO, RPO time.Duration
}

// DrillStats summarises one scenario's drills.
type DrillStats struct {
	Scenario string
	Drills   int
	// Passed counts drills that judged themselves passed.
	Passed int
	// WithinObjectives counts drills whose RTO and RPO were both within the
	// scenario's objectives.
	WithinObjectives int
	// WorstRTOSeconds and WorstRPOSeconds are the largest measured.
	WorstRTOSeconds float64
	WorstRPOSeconds float64
}
