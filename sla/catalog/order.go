package catalog

// Values of the kind label of OrderPaymentCompensations.
const (
	// CompensationRefunded: the refund of any partial charge succeeded (or
	// there was nothing to refund).
	CompensationRefunded = "refunded"
	// CompensationRefundFailed: the refund failed too; the ride needs a
	// person to look at it.
	CompensationRefundFailed = "refund_failed"
)

// Order and dispatch metrics (services/order). The request durations of
// both, with service="order" and service="dispatch" (operation
// "match_driver"), and OrdersCreated and OrderTransitions come from the main
// catalog.
var (
	DispatchRejected = Metric{
		Name: "carpool_dispatch_rejected_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Ride requests answered 503 at once because the dispatch queue was full (nothing was written).",
		Labels: []string{LabelRegion},
	}
	DispatchQueued = Metric{
		Name: "carpool_dispatch_queued_rides", Type: Gauge, Unit: "rides", Producer: Services,
		Help:   "Rides waiting in the dispatch queue (new and retried) for a worker to look for a driver.",
		Labels: []string{LabelRegion},
	}
	DispatchAbandoned = Metric{
		Name: "carpool_dispatch_abandoned_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Rides cancelled by dispatch because no driver was found within the retry budget (attempts or time).",
		Labels: []string{LabelRegion},
	}
	OrderPaymentCompensations = Metric{
		Name: "carpool_order_payment_compensations_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Completed rides whose charge failed after every retry and were compensated (marked payment_failed, any partial charge refunded), by kind (refunded, refund_failed).",
		Labels: []string{LabelRegion, LabelKind},
	}
	OrderActiveActors = Metric{
		Name: "carpool_order_active_actors", Type: Gauge, Unit: "actors", Producer: Services,
		Help:   "Ride actors running now: rides with a transition being applied or waiting in their mailbox.",
		Labels: []string{LabelRegion},
	}
)

func init() {
	register(DispatchRejected, DispatchQueued, DispatchAbandoned, OrderPaymentCompensations, OrderActiveActors)
}
