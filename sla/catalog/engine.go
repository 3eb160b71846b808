package catalog

// Values of the outcome label of EngineTicks, EngineEmits and EngineRoutePushes
// are OutcomeOK and OutcomeError.

// Values of the kind label of EngineEvents (engine.Event.Kind).
const (
	EventKindBreaker = "breaker"
	EventKindPanic   = "panic"
	EventKindStale   = "stale"
)

// Metrics of the SLA engine's loop (sla/engine), next to the carpool_sla_*,
// carpool_breaker_state and carpool_route_weight metrics of the main
// catalog. The panic, dry-run and stale gauges are what alerts watch.
var (
	EnginePanic = Metric{
		Name: "carpool_sla_engine_panic", Type: Gauge, Unit: "bool", Producer: Engine,
		Help: "1 while the engine is in panic mode: a region meets the breaker's trip rule but opening it would break more than breaker.maxBrokenFraction of the regions, or the last serving one, so it keeps serving.",
	}
	BreakerTripDenied = Metric{
		Name: "carpool_breaker_trip_denied", Type: Gauge, Unit: "bool", Producer: Engine,
		Help:   "1 when the region meets the breaker's trip rule but stays in service because opening it would break too many regions (panic mode).",
		Labels: []string{LabelRegion},
	}
	EngineDryRun = Metric{
		Name: "carpool_sla_engine_dry_run", Type: Gauge, Unit: "bool", Producer: Engine,
		Help: "1 when the breaker runs dry (breaker.dryRun): carpool_breaker_state and the events say what was decided, but the route table pushed keeps every region closed at its computed weight.",
	}
	SignalsStale = Metric{
		Name: "carpool_sla_signals_stale", Type: Gauge, Unit: "bool", Producer: Engine,
		Help:   "1 when one of the region's breaker inputs (P99, P95 or a health component) has had no fresh value for longer than engine.staleAfter; the breaker holds its state (absence never trips it).",
		Labels: []string{LabelRegion},
	}
	EngineTicks = Metric{
		Name: "carpool_sla_engine_ticks_total", Type: Counter, Unit: "ticks", Producer: Engine,
		Help:   "Engine ticks, by outcome: error when reading the signals failed (the tick then decides on absent signals).",
		Labels: []string{LabelOutcome},
	}
	EngineTickDuration = Metric{
		Name: "carpool_sla_engine_tick_duration_seconds", Type: Histogram, Unit: "seconds", Producer: Engine,
		Help:    "Duration of an engine tick: read the signals, decide, expose, emit the events and push the route table.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	}
	EngineLastTick = Metric{
		Name: "carpool_sla_engine_last_tick_timestamp_seconds", Type: Gauge, Unit: "timestamp_seconds", Producer: Engine,
		Help: "Unix time of the engine's last tick (an engine that stops ticking stops moving it).",
	}
	EngineEvents = Metric{
		Name: "carpool_sla_engine_events_total", Type: Counter, Unit: "events", Producer: Engine,
		Help:   "Decision events the engine recorded, by kind (breaker, panic, stale).",
		Labels: []string{LabelKind},
	}
	EngineEmits = Metric{
		Name: "carpool_sla_engine_event_emits_total", Type: Counter, Unit: "emits", Producer: Engine,
		Help:   "Batches of decision events handed to the event sink, by outcome (ok, error).",
		Labels: []string{LabelOutcome},
	}
	EngineRoutePushes = Metric{
		Name: "carpool_sla_engine_route_pushes_total", Type: Counter, Unit: "pushes", Producer: Engine,
		Help:   "Route tables handed to the actuator (pushed to the gateways), by outcome (ok, error).",
		Labels: []string{LabelOutcome},
	}
	EngineRouteVersion = Metric{
		Name: "carpool_sla_engine_route_version", Type: Gauge, Unit: "version", Producer: Engine,
		Help: "Version of the latest route table the engine decided (it only grows, across restarts too).",
	}
)

func init() {
	register(EnginePanic, BreakerTripDenied, EngineDryRun, SignalsStale, EngineTicks, EngineTickDuration,
		EngineLastTick, EngineEvents, EngineEmits, EngineRoutePushes, EngineRouteVersion)
}
