package catalog

// LabelFamily names a query family of the SLA engine's signal reader
// (latency_p99, attainment, burn_rate_5m, ...).
const LabelFamily = "family"

// The SLA engine's signal reader (sla/engine/signals): one PromQL query per
// family per tick, through the embedded store or an external
// Prometheus-compatible API.
var (
	EngineQueryErrors = Metric{
		Name: "carpool_engine_query_errors_total", Type: Counter, Unit: "errors", Producer: Engine,
		Help:   "Signal queries of the SLA engine that failed (the store was unreachable, timed out or rejected the query), by query family; the family's signals are absent for that tick.",
		Labels: []string{LabelFamily},
	}
	EngineReadDuration = Metric{
		Name: "carpool_engine_read_duration_seconds", Type: Gauge, Unit: "seconds", Producer: Engine,
		Help: "Duration of the SLA engine's last signal read: every query family of one tick, run concurrently.",
	}
)

func init() { register(EngineQueryErrors, EngineReadDuration) }
