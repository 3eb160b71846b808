package catalog

// Loadgen is the producer of the load generator's client-side metrics
// (loadgen/): what the clients offered and saw, as opposed to what the
// services report about themselves.
const Loadgen Producer = "loadgen"

// Labels of the load generator's metrics.
const (
	// LabelRun is the load-generator run's id, so that concurrent runs
	// (several machines, or a drill's load beside a demo's) stay apart.
	LabelRun = "run"
)

// Load generator metrics, produced by loadgen and pushed to a
// Prometheus-compatible import endpoint (VictoriaMetrics'
// /api/v1/import/prometheus) when one is configured. The offered rate is
// rate(carpool_loadgen_scheduled_iterations_total), the achieved rate
// rate(carpool_loadgen_iterations_total); the difference is dropped.
var (
	LoadgenScheduled = Metric{
		Name: "carpool_loadgen_scheduled_iterations_total", Type: Counter, Unit: "events", Producer: Loadgen,
		Help:   "Iterations whose intended start time has come, started or dropped: the offered load of an open-model run.",
		Labels: []string{LabelRun, LabelScenario},
	}
	LoadgenIterations = Metric{
		Name: "carpool_loadgen_iterations_total", Type: Counter, Unit: "events", Producer: Loadgen,
		Help:   "Iterations started by a worker: the achieved load of an open-model run.",
		Labels: []string{LabelRun, LabelScenario},
	}
	LoadgenDropped = Metric{
		Name: "carpool_loadgen_dropped_iterations_total", Type: Counter, Unit: "events", Producer: Loadgen,
		Help:   "Iterations not started because every worker was busy at their intended time (the generator could not keep its schedule).",
		Labels: []string{LabelRun, LabelScenario},
	}
	LoadgenRequests = Metric{
		Name: "carpool_loadgen_requests_total", Type: Counter, Unit: "events", Producer: Loadgen,
		Help:   "Requests (HTTP, gRPC calls or WebSocket messages) made by the load generator, by operation and outcome (ok or error, as the client saw it).",
		Labels: []string{LabelRun, LabelScenario, LabelOperation, LabelOutcome},
	}
	LoadgenErrors = Metric{
		Name: "carpool_loadgen_errors_total", Type: Counter, Unit: "errors", Producer: Loadgen,
		Help:   "Failed requests by kind: http_5xx, http_4xx, timeout, conn_refused, conn_reset, conn_error, grpc_<code>, ws_closed, ws_error_reply, bad_response.",
		Labels: []string{LabelRun, LabelScenario, LabelKind},
	}
	LoadgenRequestDuration = Metric{
		Name: "carpool_loadgen_request_duration_seconds", Type: Histogram, Unit: "seconds", Producer: Loadgen,
		Help:    "Client-observed request latency, measured from the request's intended start (no coordinated omission).",
		Labels:  []string{LabelRun, LabelScenario, LabelOperation},
		Buckets: RequestDurationBuckets,
	}
	LoadgenWorkers = Metric{
		Name: "carpool_loadgen_workers", Type: Gauge, Unit: "workers", Producer: Loadgen,
		Help:   "Load-generator workers allocated (preallocated plus those started on demand, up to the maximum).",
		Labels: []string{LabelRun},
	}
	LoadgenWorkersBusy = Metric{
		Name: "carpool_loadgen_workers_busy", Type: Gauge, Unit: "workers", Producer: Loadgen,
		Help:   "Load-generator workers running an iteration now.",
		Labels: []string{LabelRun},
	}
)

func init() {
	register(LoadgenScheduled, LoadgenIterations, LoadgenDropped, LoadgenRequests, LoadgenErrors, LoadgenRequestDuration,
		LoadgenWorkers, LoadgenWorkersBusy)
}
