// Package catalog is the single source of truth for every metric the platform
// emits or reads: its name, type, help text, labels, histogram buckets and
// unit. Services, exporters, the rule and dashboard generators and the SLA
// engine all import it, so a name can never drift between producer and
// consumer.
//
// The package is pure data: it has no dependency on a metrics client. The
// telemetry package turns a Metric into a client_golang collector.
package catalog

import (
	"slices"
	"strconv"
)

// Type is the Prometheus metric type of a Metric.
type Type string

// Metric types used in the catalog. Recorded is a series produced by a
// generated Prometheus recording rule rather than by a process.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
	Recorded  Type = "recorded"
)

// Producer says which part of the platform emits a metric.
type Producer string

// Producers of catalog metrics.
const (
	Services  Producer = "services"
	Exporters Producer = "exporters"
	Engine    Producer = "engine"
	Rules     Producer = "rules"
)

// Label names shared by many metrics. Use these constants rather than string
// literals so that a rename is one edit.
const (
	LabelRegion       = "region"
	LabelService      = "service"
	LabelOperation    = "operation"
	LabelCode         = "code"
	LabelOutcome      = "outcome"
	LabelFrom         = "from"
	LabelTo           = "to"
	LabelSourceRegion = "source_region"
	LabelTargetRegion = "target_region"
	LabelStream       = "stream"
	LabelGroup        = "group"
	LabelSource       = "source"
	LabelTable        = "table"
	LabelKind         = "kind"
	LabelTarget       = "target"
	LabelScenario     = "scenario"
	LabelPhase        = "phase"
	LabelComponent    = "component"
	LabelSLO          = "slo"
	LabelLe           = "le"
)

// Values of the outcome label: a server-side failure is an error, a client's
// 4xx is not.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// GlobalRegion is the region label value of a series that covers every
// region (traffic-weighted).
const GlobalRegion = "global"

// Breaker states as exported by carpool_breaker_state.
const (
	BreakerClosed     = 0
	BreakerRecovering = 1
	BreakerOpen       = 2
)

// Metric describes one metric family.
type Metric struct {
	Name     string
	Type     Type
	Help     string
	Unit     string // base unit: seconds, ratio, messages, events, score, bool, timestamp_seconds, weight, state
	Labels   []string
	Buckets  []float64 // histograms only, ascending
	Producer Producer
}

// HasBucket reports whether le is one of the metric's histogram bucket
// boundaries.
func (m Metric) HasBucket(le float64) bool {
	return slices.Contains(m.Buckets, le)
}

// NearestBuckets returns the closest bucket boundaries below and above v.
// ok is false for a side that has no boundary.
func (m Metric) NearestBuckets(v float64) (below float64, okBelow bool, above float64, okAbove bool) {
	for _, b := range m.Buckets {
		if b <= v {
			below, okBelow = b, true
		}
		if b >= v && !okAbove {
			above, okAbove = b, true
		}
	}
	return below, okBelow, above, okAbove
}

// FormatLe formats a bucket boundary the way client_golang writes the le
// label, so that a selector on le matches the exposed series.
func FormatLe(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// RequestDurationBuckets are the boundaries of carpool_request_duration_seconds.
// They include 0.2 s, 0.3 s (the breaker's P99 bar) and 0.8 s (the load SLA's
// P99 bar) so that latency SLOs on those thresholds are exact.
var RequestDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1, 2.5, 5, 10}

// Service metrics.
var (
	RequestDuration = Metric{
		Name: "carpool_request_duration_seconds", Type: Histogram, Unit: "seconds", Producer: Services,
		Help:    "Duration of requests served by a carpool service, by outcome (ok, or error for a server-side failure; a client's 4xx is ok).",
		Labels:  []string{LabelRegion, LabelService, LabelOperation, LabelCode, LabelOutcome},
		Buckets: RequestDurationBuckets,
	}
	OrdersCreated = Metric{
		Name: "carpool_orders_created_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Rides created (orders accepted) in a region.",
		Labels: []string{LabelRegion},
	}
	OrderTransitions = Metric{
		Name: "carpool_order_transitions_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Ride lifecycle transitions applied, by from and to state.",
		Labels: []string{LabelRegion, LabelFrom, LabelTo},
	}
	ReplicationApplied = Metric{
		Name: "carpool_replication_applied_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Replication events from a source region applied in a target region.",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
	ReplicationConflicts = Metric{
		Name: "carpool_replication_conflicts_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Replication events resolved by last-writer-wins because the target held a concurrent write.",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
	ReplicationBacklog = Metric{
		Name: "carpool_replication_backlog_events", Type: Gauge, Unit: "events", Producer: Services,
		Help:   "Outbox events committed in a source region and not yet applied in a target region.",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
)

// Exporter metrics.
var (
	SyncLag = Metric{
		Name: "carpool_sync_lag_seconds", Type: Gauge, Unit: "seconds", Producer: Exporters,
		Help:   "Now minus the newest source heartbeat applied in the target region (heartbeat method; keeps growing when replication stops).",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
	SyncHeartbeatWritten = Metric{
		Name: "carpool_sync_heartbeat_written_timestamp_seconds", Type: Gauge, Unit: "timestamp_seconds", Producer: Exporters,
		Help:   "Unix time of the newest heartbeat written in a region.",
		Labels: []string{LabelRegion},
	}
	SyncHeartbeatApplied = Metric{
		Name: "carpool_sync_heartbeat_applied_timestamp_seconds", Type: Gauge, Unit: "timestamp_seconds", Producer: Exporters,
		Help:   "Unix time carried by the newest source heartbeat applied in the target region.",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
	RPOExposure = Metric{
		Name: "carpool_rpo_exposure_seconds", Type: Gauge, Unit: "seconds", Producer: Exporters,
		Help:   "Age of the oldest write committed in the source region and not yet applied in the target: the data lost if the source died now.",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
	StreamLagMessages = Metric{
		Name: "carpool_stream_lag_messages", Type: Gauge, Unit: "messages", Producer: Exporters,
		Help:   "Messages in a stream not yet delivered to a consumer group.",
		Labels: []string{LabelRegion, LabelStream, LabelGroup},
	}
	StreamLagSeconds = Metric{
		Name: "carpool_stream_lag_seconds", Type: Gauge, Unit: "seconds", Producer: Exporters,
		Help:   "Age of the oldest message in a stream not yet delivered to a consumer group.",
		Labels: []string{LabelRegion, LabelStream, LabelGroup},
	}
	ConfigConsistent = Metric{
		Name: "carpool_config_consistent", Type: Gauge, Unit: "bool", Producer: Exporters,
		Help:   "1 when every region's normalized configuration from this source hashes the same, else 0.",
		Labels: []string{LabelSource},
	}
	VerifyRowsMismatched = Metric{
		Name: "carpool_verify_rows_mismatched_total", Type: Counter, Unit: "rows", Producer: Exporters,
		Help:   "Rows the data verifier found missing, extra or differing between two regions.",
		Labels: []string{LabelTable, LabelSourceRegion, LabelTargetRegion, LabelKind},
	}
	ProbeHealthy = Metric{
		Name: "carpool_probe_healthy", Type: Gauge, Unit: "bool", Producer: Exporters,
		Help:   "1 when the region's probe of a target is healthy (fewer consecutive failures than the unhealthy threshold), else 0.",
		Labels: []string{LabelRegion, LabelTarget},
	}
	ProbeDuration = Metric{
		Name: "carpool_probe_duration_seconds", Type: Gauge, Unit: "seconds", Producer: Exporters,
		Help:   "Duration of the region's last probe of a target.",
		Labels: []string{LabelRegion, LabelTarget},
	}
	DrillRTO = Metric{
		Name: "carpool_drill_rto_seconds", Type: Gauge, Unit: "seconds", Producer: Exporters,
		Help:   "Recovery time measured by the last drill of a scenario, by phase (detect, decide, shift, total).",
		Labels: []string{LabelScenario, LabelPhase},
	}
	DrillRPO = Metric{
		Name: "carpool_drill_rpo_seconds", Type: Gauge, Unit: "seconds", Producer: Exporters,
		Help:   "Data-loss window measured by the last drill of a scenario.",
		Labels: []string{LabelScenario},
	}
)

// Engine metrics.
var (
	HealthScore = Metric{
		Name: "carpool_sla_health_score", Type: Gauge, Unit: "score", Producer: Engine,
		Help:   "Health score of a region, 0 to 100, the weighted sum of its component scores.",
		Labels: []string{LabelRegion},
	}
	HealthComponentScore = Metric{
		Name: "carpool_sla_health_component_score", Type: Gauge, Unit: "score", Producer: Engine,
		Help:   "Score of one health component of a region, 0 to 100, from its measurement through the spec's curve.",
		Labels: []string{LabelRegion, LabelComponent},
	}
	Attainment = Metric{
		Name: "carpool_sla_attainment_ratio", Type: Gauge, Unit: "ratio", Producer: Engine,
		Help:   "Share of good events over the SLO's rolling window.",
		Labels: []string{LabelService, LabelSLO, LabelRegion},
	}
	ErrorBudgetRemaining = Metric{
		Name: "carpool_sla_error_budget_remaining_ratio", Type: Gauge, Unit: "ratio", Producer: Engine,
		Help:   "Share of the SLO's error budget left over its rolling window (negative when overspent).",
		Labels: []string{LabelService, LabelSLO, LabelRegion},
	}
	CompositeRatio = Metric{
		Name: "carpool_sla_composite_ratio", Type: Gauge, Unit: "ratio", Producer: Engine,
		Help:   "Weighted composite SLA of a region (region=\"global\" for the traffic-weighted whole).",
		Labels: []string{LabelRegion},
	}
	BreakerState = Metric{
		Name: "carpool_breaker_state", Type: Gauge, Unit: "state", Producer: Engine,
		Help:   "Circuit breaker state of a region: 0 closed, 1 recovering, 2 open.",
		Labels: []string{LabelRegion},
	}
	RouteWeight = Metric{
		Name: "carpool_route_weight", Type: Gauge, Unit: "weight", Producer: Engine,
		Help:   "Routing weight the engine assigns to a region, 1 to 100.",
		Labels: []string{LabelRegion},
	}
)

// extra holds metrics declared in the catalog's other files (one file per
// area: gateway.go, replication.go, ...), appended by their init functions
// in file-name order.
var extra []Metric

// register adds metrics declared outside this file to Produced.
func register(ms ...Metric) { extra = append(extra, ms...) }

// Produced lists every metric a process of the platform exposes, in
// documentation order.
func Produced() []Metric {
	return append([]Metric{
		RequestDuration, OrdersCreated, OrderTransitions, ReplicationApplied, ReplicationConflicts, ReplicationBacklog,
		SyncLag, SyncHeartbeatWritten, SyncHeartbeatApplied, RPOExposure, StreamLagMessages, StreamLagSeconds,
		ConfigConsistent, VerifyRowsMismatched, ProbeHealthy, ProbeDuration, DrillRTO, DrillRPO,
		HealthScore, HealthComponentScore, Attainment, ErrorBudgetRemaining, CompositeRatio, BreakerState, RouteWeight,
	}, extra...)
}
