package report

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Live is where the report API reads the present: the SLA engine's last
// decision. GET /api/v1/live returns what it answers.
type Live interface {
	Live(ctx context.Context) (LiveStatus, error)
}

// Breaker states as LiveRegion.Breaker and BreakerEvent carry them (the
// engine's BreakerState values).
const (
	BreakerClosed     = "closed"
	BreakerOpen       = "open"
	BreakerRecovering = "recovering"
)

// LiveStatus is the engine's view of now.
type LiveStatus struct {
	// At is when the engine decided (its last tick).
	At time.Time `json:"at"`
	// Panic is true while the engine is in panic mode (too many regions
	// broken at once, so it stopped shifting traffic).
	Panic bool `json:"panic"`
	// CompositePercent is the global composite SLA attainment in percent,
	// null when unknown.
	CompositePercent *float64     `json:"composite_percent"`
	Regions          []LiveRegion `json:"regions"`
}

// LiveRegion is one region's live state.
type LiveRegion struct {
	Name string `json:"name"`
	// Health is the region's health score, 0 to 100.
	Health float64 `json:"health"`
	// Components are the health components' scores (0 to 100) by name.
	Components map[string]float64 `json:"components"`
	// Breaker is closed, open or recovering.
	Breaker string `json:"breaker"`
	// Weight is the region's route weight (0 while its breaker is open).
	Weight float64 `json:"weight"`
	// CompositePercent is the region's composite SLA attainment in percent,
	// null when unknown.
	CompositePercent *float64 `json:"composite_percent"`
	// Faults are the injected faults in force in the region, one short
	// phrase each ("down", "order: +500ms latency"): empty when there are
	// none, null when the live source does not know them.
	Faults []string `json:"faults"`
}

// Faults forwards fault injection to a region's services (their
// /admin/faults API). POST /api/v1/faults uses it.
type Faults interface {
	Inject(ctx context.Context, region string, f FaultRequest) error
	Clear(ctx context.Context, region string) error
}

// Fault limits, so that a typo on the status page cannot hang a region for
// an hour.
const (
	MaxFaultLatencyMS   = 60_000
	MaxFaultClockSkewMS = 3_600_000
)

// FaultRequest is a fault to inject into one region. Zero fields inject
// nothing; Inject replaces the region's earlier faults.
type FaultRequest struct {
	// Service is the spec service the latency and error rate apply to; empty
	// or "*" means every service.
	Service string `json:"service,omitempty"`
	// LatencyMS is a fixed latency added to each request, 0 to 60000.
	LatencyMS int `json:"latency_ms,omitempty"`
	// ErrorRate is the share of requests failed with a 5xx, 0 to 1.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// Down makes the whole region unreachable.
	Down bool `json:"down,omitempty"`
	// ReplicationStalled stops applying replication into the region.
	ReplicationStalled bool `json:"replication_stalled,omitempty"`
	// ClockSkewMS skews the region's clock, -3600000 to 3600000.
	ClockSkewMS int `json:"clock_skew_ms,omitempty"`
}

// Validate checks the request against the spec's services; the error is a
// *ParamError naming the field (fault.error_rate, ...).
func (f FaultRequest) Validate(services []string) error {
	switch {
	case f.Service != "" && f.Service != "*" && !slices.Contains(services, f.Service):
		return &ParamError{Param: "fault.service", Msg: fmt.Sprintf("%q is not a service of the spec; use one of %v, or * for all", f.Service, services)}
	case f.LatencyMS < 0 || f.LatencyMS > MaxFaultLatencyMS:
		return &ParamError{Param: "fault.latency_ms", Msg: fmt.Sprintf("is %d; give 0 to %d milliseconds", f.LatencyMS, MaxFaultLatencyMS)}
	case !(f.ErrorRate >= 0 && f.ErrorRate <= 1):
		return &ParamError{Param: "fault.error_rate", Msg: fmt.Sprintf("is %g; give a share of requests from 0 to 1 (0.05 fails 5 %%)", f.ErrorRate)}
	case f.ClockSkewMS < -MaxFaultClockSkewMS || f.ClockSkewMS > MaxFaultClockSkewMS:
		return &ParamError{Param: "fault.clock_skew_ms", Msg: fmt.Sprintf("is %d; give -%d to %d milliseconds", f.ClockSkewMS, MaxFaultClockSkewMS, MaxFaultClockSkewMS)}
	}
	return nil
}
