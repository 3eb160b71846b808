package catalog

// LabelGateway names the region whose gateway the SLA engine pushes its
// routing table to.
const LabelGateway = "gateway"

// The SLA engine's pusher (sla/engine/actuate): every route table goes to
// every region's gateway (PUT /admin/routing).
var (
	EnginePushErrors = Metric{
		Name: "carpool_engine_push_errors_total", Type: Counter, Unit: "errors", Producer: Engine,
		Help:   "Route-table pushes to a region's gateway that failed after every retry (a network error, a timeout, a 5xx, or a rejection such as a 401 or 400).",
		Labels: []string{LabelGateway},
	}
	EnginePushLastSuccess = Metric{
		Name: "carpool_engine_push_last_success_timestamp_seconds", Type: Gauge, Unit: "timestamp_seconds", Producer: Engine,
		Help:   "Unix time of the last route-table push a region's gateway accepted (applied, or already held at that version or a newer one).",
		Labels: []string{LabelGateway},
	}
	EnginePushedVersion = Metric{
		Name: "carpool_engine_pushed_version", Type: Gauge, Unit: "version", Producer: Engine,
		Help:   "Version of the route table a region's gateway reported holding after the engine's last successful push.",
		Labels: []string{LabelGateway},
	}
)

func init() { register(EnginePushErrors, EnginePushLastSuccess, EnginePushedVersion) }
