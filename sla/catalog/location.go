package catalog

// LabelLocationReason is the label of the location service's rejected
// positions and closed connections that says why. Its value is "reason",
// the same label name other areas use for the same idea.
const LabelLocationReason = "reason"

// Values of the reason label of LocationPositionsRejected.
const (
	// LocationRejectInvalid: the message was not a valid position (a JSON error was
	// sent back to the driver).
	LocationRejectInvalid = "invalid"
	// LocationRejectStale: the position was older than the service accepts; it was
	// dropped silently (a reconnecting client flushing its buffer is not
	// misbehaving).
	LocationRejectStale = "stale"
	// LocationRejectQueueFull: the bounded publish queue was full; under the
	// drop_oldest policy the oldest queued position was dropped, under reject
	// the new one was.
	LocationRejectQueueFull = "queue_full"
	// LocationRejectPublishError: the stream refused the position (Redis down).
	LocationRejectPublishError = "publish_error"
)

// Values of the reason label of LocationConnectionsClosed.
const (
	LocationCloseNormal          = "normal"           // the driver closed (1000 or 1001)
	LocationClosePolicyViolation = "policy_violation" // too many bad messages in a row (1008)
	LocationCloseMessageTooBig   = "message_too_big"  // a message above the size limit (1009)
	LocationCloseSlowConsumer    = "slow_consumer"    // the driver did not read its replies (1013)
	LocationCloseGoingAway       = "going_away"       // the server shut down (1001)
	LocationCloseRegionDown      = "region_down"      // the region-down fault dropped the connection
	LocationCloseIdle            = "idle"             // no message or ping within the idle timeout (1001)
	LocationCloseError           = "error"            // a transport error or a close without a status
)

// Location service metrics (services/location): drivers stream positions
// over WebSocket, the service publishes them onto a stream, and a consumer
// group feeds the dispatch index. Stream lag is measured by the exporters
// (StreamLagMessages, StreamLagSeconds).
var (
	LocationPositionsReceived = Metric{
		Name: "carpool_location_positions_received_total", Type: Counter, Unit: "messages", Producer: Services,
		Help:   "WebSocket messages received from drivers on the position stream, valid or not.",
		Labels: []string{LabelRegion},
	}
	LocationPositionsRejected = Metric{
		Name: "carpool_location_positions_rejected_total", Type: Counter, Unit: "messages", Producer: Services,
		Help:   "Driver positions that did not reach the stream, by reason (invalid, stale, queue_full, publish_error).",
		Labels: []string{LabelRegion, LabelLocationReason},
	}
	LocationPositionsPublished = Metric{
		Name: "carpool_location_positions_published_total", Type: Counter, Unit: "messages", Producer: Services,
		Help:   "Driver positions appended to a stream.",
		Labels: []string{LabelRegion, LabelStream},
	}
	LocationPositionsConsumed = Metric{
		Name: "carpool_location_positions_consumed_total", Type: Counter, Unit: "messages", Producer: Services,
		Help:   "Driver positions a consumer group applied to the driver index and acknowledged.",
		Labels: []string{LabelRegion, LabelStream, LabelGroup},
	}
	LocationPositionsRedelivered = Metric{
		Name: "carpool_location_positions_redelivered_total", Type: Counter, Unit: "messages", Producer: Services,
		Help:   "Stream messages a consumer reclaimed after another consumer of its group left them unacknowledged past the claim timeout.",
		Labels: []string{LabelRegion, LabelStream, LabelGroup},
	}
	LocationPublishQueue = Metric{
		Name: "carpool_location_publish_queue_messages", Type: Gauge, Unit: "messages", Producer: Services,
		Help:   "Positions waiting in the bounded queue between the WebSocket readers and the stream.",
		Labels: []string{LabelRegion},
	}
	LocationConnectionsOpen = Metric{
		Name: "carpool_location_connections_open", Type: Gauge, Unit: "connections", Producer: Services,
		Help:   "Driver WebSocket connections open now.",
		Labels: []string{LabelRegion},
	}
	LocationConnectionsClosed = Metric{
		Name: "carpool_location_connections_closed_total", Type: Counter, Unit: "connections", Producer: Services,
		Help:   "Driver WebSocket connections closed, by reason (normal, policy_violation, message_too_big, slow_consumer, going_away, region_down, idle, error).",
		Labels: []string{LabelRegion, LabelLocationReason},
	}
	LocationIndexDrivers = Metric{
		Name: "carpool_location_index_drivers", Type: Gauge, Unit: "drivers", Producer: Services,
		Help:   "Drivers held by the dispatch index, fresh or not yet swept.",
		Labels: []string{LabelRegion},
	}
)

func init() {
	register(LocationPositionsReceived, LocationPositionsRejected, LocationPositionsPublished,
		LocationPositionsConsumed, LocationPositionsRedelivered, LocationPublishQueue,
		LocationConnectionsOpen, LocationConnectionsClosed, LocationIndexDrivers)
}
