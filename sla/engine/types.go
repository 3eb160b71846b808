package engine

import "time"

// Measured is one signal value read at one time. OK is false when the
// signal was absent; At is the sample's own timestamp, so the engine can tell
// a stale value from a fresh one.
type Measured struct {
	Value float64
	At    time.Time
	OK    bool
}

// Val returns a present measurement taken at t.
func Val(v float64, t time.Time) Measured { return Measured{Value: v, At: t, OK: true} }

// SLOSignal is one SLO's recorded state in one region (or region "global").
type SLOSignal struct {
	Service string
	SLO     string
	// Attainment is the share of good events over the SLO's window, 0..1.
	Attainment Measured
	// BudgetRemaining is the share of the error budget left, 1 - (1-att)/(1-objective).
	BudgetRemaining Measured
	// BurnRates by window ("5m", "1h", ...): error ratio over the window / (1 - objective).
	BurnRates map[string]Measured
}

// RegionSignals is everything the engine reads about one region in one tick.
type RegionSignals struct {
	Region string
	// LatencyP99 and LatencyP95 are the region's request latency quantiles, seconds.
	LatencyP99 Measured
	LatencyP95 Measured
	// Components holds the health measurements by spec measure name
	// (spec.MeasureSyncLag, MeasureAPISuccess, MeasureStreamLag, MeasureConfigConsistency).
	Components map[string]Measured
	// SLOs are the region's SLO signals, in spec order.
	SLOs []SLOSignal
	// Traffic is the region's request rate (per second), the weight of the
	// region in the traffic-weighted global composite.
	Traffic Measured
}

// Signals is one tick's input: every region of the spec, in spec order.
type Signals struct {
	At      time.Time
	Regions []RegionSignals
}

// BreakerState is a region's circuit state.
type BreakerState string

// Breaker states. Their numbers in carpool_breaker_state are catalog.BreakerClosed etc.
const (
	Closed     BreakerState = "closed"
	Open       BreakerState = "open"
	Recovering BreakerState = "recovering" // ramping traffic back in steps
)

// Event is a decision the engine records: every breaker state change, every
// panic-mode entry or exit, every staleness alert. Values holds the numbers
// that decided it (p99_seconds, health, ...).
type Event struct {
	ID     string             `json:"id"` // unique, so a replayed event is not counted twice
	At     time.Time          `json:"at"`
	Kind   string             `json:"kind"` // "breaker", "panic", "stale", "weight"
	Region string             `json:"region"`
	From   string             `json:"from"`
	To     string             `json:"to"`
	Reason string             `json:"reason"`
	Values map[string]float64 `json:"values,omitempty"`
}

// RouteTable is what the engine pushes to every region's gateway
// (PUT /admin/routing) and serves for their pull fallback. Its JSON is the
// gateway's routing table: a version that only grows, and per region a
// weight (0 when the breaker is open) and a breaker state.
type RouteTable struct {
	Version int64                 `json:"version"`
	Regions map[string]RouteEntry `json:"regions"`
}

// RouteEntry is one region's row of the RouteTable.
type RouteEntry struct {
	Weight  float64      `json:"weight"`
	Breaker BreakerState `json:"breaker"`
}
