package catalog

// Label names used only by the gateway's metrics.
const (
	// LabelReason says why something did not happen (a retry denied).
	LabelReason = "reason"
	// LabelResult says what became of a routing table update.
	LabelResult = "result"
)

// Values of the gateway's reason and result labels.
const (
	// RetryDeniedBudget: the retry budget (share of retries to requests) was spent.
	RetryDeniedBudget = "budget"
	// RetryDeniedNoRegion: no other region could take the retry.
	RetryDeniedNoRegion = "no_other_region"

	// RoutingApplied: the update's version was newer and it now routes traffic.
	RoutingApplied = "applied"
	// RoutingStale: the update's version was not newer; it was ignored.
	RoutingStale = "stale"
	// RoutingInvalid: the update was rejected as malformed.
	RoutingInvalid = "invalid"
	// RoutingFailed: fetching the update failed (pull only).
	RoutingFailed = "failed"

	// RoutingSourcePush and RoutingSourcePull are the values of the source
	// label of GatewayRoutingUpdates.
	RoutingSourcePush = "push"
	RoutingSourcePull = "pull"
)

// Gateway metrics: the per-region HTTP entry that routes requests between
// regions (services/gateway). The probe metrics ProbeHealthy and
// ProbeDuration, and RequestDuration with service="gateway", come from the
// main catalog.
var (
	GatewayUpstreamRequests = Metric{
		Name: "carpool_gateway_upstream_requests_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Attempts a region's gateway sent to a target region, by outcome (error for a 5xx, a connection error or a timeout; a 4xx is ok).",
		Labels: []string{LabelRegion, LabelTarget, LabelOutcome},
	}
	GatewayRetries = Metric{
		Name: "carpool_gateway_retries_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Requests with an Idempotency-Key retried in another region after a failure, by the region retried in.",
		Labels: []string{LabelRegion, LabelTarget},
	}
	GatewayRetriesDenied = Metric{
		Name: "carpool_gateway_retries_denied_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Failed requests with an Idempotency-Key that were not retried, by reason (budget, no_other_region).",
		Labels: []string{LabelRegion, LabelReason},
	}
	GatewayEjections = Metric{
		Name: "carpool_gateway_ejections_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Target regions ejected by the gateway's passive outlier detection after consecutive failures on live traffic.",
		Labels: []string{LabelRegion, LabelTarget},
	}
	GatewayEjectionsSkipped = Metric{
		Name: "carpool_gateway_ejections_skipped_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Ejections the gateway did not make because the target was the last region serving traffic.",
		Labels: []string{LabelRegion, LabelTarget},
	}
	GatewayPanicRoutes = Metric{
		Name: "carpool_gateway_panic_routes_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Requests routed in panic mode: no region was both probe-healthy and not ejected, so the gateway spread them over every region whose breaker is not open.",
		Labels: []string{LabelRegion},
	}
	GatewayHomeUnavailable = Metric{
		Name: "carpool_gateway_home_unavailable_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Payment requests answered 409 because the rider's home region (target) was unavailable.",
		Labels: []string{LabelRegion, LabelTarget},
	}
	GatewayRoutingUpdates = Metric{
		Name: "carpool_gateway_routing_updates_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Routing table updates the gateway received, by source (push, pull) and result (applied, stale, invalid, failed).",
		Labels: []string{LabelRegion, LabelSource, LabelResult},
	}
	GatewayRoutingVersion = Metric{
		Name: "carpool_gateway_routing_version", Type: Gauge, Unit: "version", Producer: Services,
		Help:   "Version of the routing table (region weights and breaker states) the gateway applies; 0 before the first update.",
		Labels: []string{LabelRegion},
	}
	GatewayRouteWeight = Metric{
		Name: "carpool_gateway_route_weight", Type: Gauge, Unit: "weight", Producer: Services,
		Help:   "Weight of a target region in the gateway's applied routing table.",
		Labels: []string{LabelRegion, LabelTarget},
	}
)

func init() {
	register(GatewayUpstreamRequests, GatewayRetries, GatewayRetriesDenied, GatewayEjections, GatewayEjectionsSkipped,
		GatewayPanicRoutes, GatewayHomeUnavailable, GatewayRoutingUpdates, GatewayRoutingVersion, GatewayRouteWeight)
}
