package engine

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Number is a measured or computed value that may be unknown. Unknown is
// NaN; it marshals to JSON null (encoding/json cannot write NaN), and null
// unmarshals back to NaN.
type Number float64

// Unknown is the Number of a value the engine could not compute.
var Unknown = Number(math.NaN())

// Known reports whether n holds a value.
func (n Number) Known() bool { return !math.IsNaN(float64(n)) && !math.IsInf(float64(n), 0) }

// MarshalJSON implements json.Marshaler: null when unknown.
func (n Number) MarshalJSON() ([]byte, error) {
	if !n.Known() {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(n), 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler: null is unknown.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Unknown
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Number(f)
	return nil
}

// Decision is what the engine decided at one tick: every region's scores,
// breaker and weight, the global composite, panic mode, the events of the
// tick and the route table to push.
type Decision struct {
	At      time.Time        `json:"tick"`
	Regions []RegionDecision `json:"regions"`
	// Global is the traffic-weighted composite over every region.
	Global GlobalDecision `json:"global"`
	// Panic is true while some region meets the trip rule but may not be
	// opened (it would break more than breaker.maxBrokenFraction of the
	// regions, or the last serving one); PanicRegions names them.
	Panic        bool     `json:"panic"`
	PanicRegions []string `json:"panic_regions,omitempty"`
	// DryRun is the spec's breaker.dryRun: Regions hold what was decided,
	// Table what is pushed (every region closed at its computed weight).
	DryRun bool `json:"dry_run"`
	// Events are the state changes of this tick.
	Events []Event `json:"events,omitempty"`
	// Table is the route table for the gateways. The core leaves Version 0;
	// the Engine numbers it.
	Table RouteTable `json:"table"`
}

// Region returns the decision of the named region and whether it exists.
func (d Decision) Region(name string) (RegionDecision, bool) {
	for _, r := range d.Regions {
		if r.Region == name {
			return r, true
		}
	}
	return RegionDecision{}, false
}

// RegionDecision is one region's row of a Decision.
type RegionDecision struct {
	Region string `json:"region"`
	// Health is the spec's weighted health score, 0-100, from the
	// components' latest values (a component without a value for longer than
	// engine.staleAfter scores 0, as the spec says of a missing measurement).
	Health     Number            `json:"health"`
	Components []ComponentStatus `json:"components"`
	// LatencyP99 and LatencyP95 are the region's latest latency quantiles, seconds.
	LatencyP99 Number `json:"latency_p99_seconds"`
	LatencyP95 Number `json:"latency_p95_seconds"`
	// Traffic is the region's request rate, its weight in the global composite.
	Traffic Number `json:"traffic_rps"`

	// Breaker is the decided breaker state (in dry-run mode too); Since is
	// when it was entered and Reason why.
	Breaker BreakerState `json:"breaker"`
	Since   time.Time    `json:"since"`
	Reason  string       `json:"reason"`
	// RampPercent is the share of the computed weight a recovering region
	// gets (the current ramp step), 100 when closed and 0 when open.
	RampPercent float64 `json:"ramp_percent"`
	// HoldUntil is when an open breaker's hold ends (zero unless open).
	HoldUntil time.Time `json:"hold_until,omitzero"`
	// Trips counts the repeated trips that set the hold time (0 for the
	// first trip; forgotten after breaker.holdOpen.resetAfter closed).
	Trips int `json:"repeat_trips"`
	// TripDenied is true when the trip rule held for its duration but the
	// region stayed in service (panic mode).
	TripDenied bool `json:"trip_denied"`

	// ComputedWeight is the weight from latency and health before the
	// breaker; Weight is what the region gets after it (0 open, ramp
	// percent of ComputedWeight recovering).
	ComputedWeight float64 `json:"computed_weight"`
	Weight         float64 `json:"weight"`
	// Blackout is true while a recovered region's latency is not trusted
	// for its weight (engine.recoveryBlackout after it leaves open).
	Blackout bool `json:"blackout"`

	// Composite is the region's weighted composite SLA, 0-1; CompositeMet
	// is true when it is at least composite.objective and no key SLO is
	// below its objective (KeySLOsBreached lists those, "service/slo").
	Composite       Number      `json:"composite"`
	CompositeMet    bool        `json:"composite_met"`
	KeySLOsBreached []string    `json:"key_slos_breached,omitempty"`
	SLOs            []SLOStatus `json:"slos"`

	// Stale is true when one of the breaker's inputs (P99, P95, a health
	// component) has had no fresh value for longer than engine.staleAfter;
	// StaleInputs names them.
	Stale       bool     `json:"stale"`
	StaleInputs []string `json:"stale_inputs,omitempty"`
}

// ComponentStatus is one health component of a region.
type ComponentStatus struct {
	Name    string `json:"name"`
	Measure string `json:"measure"`
	// Value is the raw measurement (unknown when absent), Score its score 0-100.
	Value Number  `json:"value"`
	Score float64 `json:"score"`
}

// SLOStatus is one SLO of one service in one region (or global).
type SLOStatus struct {
	Service string `json:"service"`
	SLO     string `json:"slo"`
	// Objective is the SLO's objective as a ratio (99.9 % is 0.999).
	Objective       float64           `json:"objective"`
	Key             bool              `json:"key"`
	Attainment      Number            `json:"attainment"`
	BudgetRemaining Number            `json:"budget_remaining"`
	BurnRates       map[string]Number `json:"burn_rates,omitempty"`
}

// GlobalDecision is the traffic-weighted composite over every region.
type GlobalDecision struct {
	Composite       Number      `json:"composite"`
	CompositeMet    bool        `json:"composite_met"`
	KeySLOsBreached []string    `json:"key_slos_breached,omitempty"`
	SLOs            []SLOStatus `json:"slos"`
}

// Status is the engine's latest decision as GET /api/v1/status serves it,
// with the route table's version and tick counters.
type Status struct {
	Decision
	// Version is the version of the route table last decided.
	Version int64 `json:"version"`
	// Ticks counts ticks since the engine started; ReadErrors those whose
	// read failed (they decide on absent signals).
	Ticks      int64 `json:"ticks"`
	ReadErrors int64 `json:"read_errors"`
}
