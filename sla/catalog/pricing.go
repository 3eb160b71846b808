package catalog

// LabelPoolState is the label of PricingPoolConnections: active (in the
// pool's current target set) or draining (retired by a target swap, waiting
// for its calls in flight to finish before it closes).
const LabelPoolState = "state"

// Values of LabelPoolState.
const (
	PoolStateActive   = "active"
	PoolStateDraining = "draining"
)

// SurgeBuckets are the boundaries of PricingSurge: the surge multipliers a
// quote can carry, from none (1) to the default cap (3).
var SurgeBuckets = []float64{1, 1.1, 1.2, 1.5, 1.75, 2, 2.5, 3}

// Pricing metrics (services/pricing). Quote latency and outcomes are
// RequestDuration with service="pricing", operation="quote".
var (
	PricingSurge = Metric{
		Name: "carpool_pricing_surge_multiplier", Type: Histogram, Unit: "multiplier", Producer: Services,
		Help:    "Surge multiplier of the quotes a region's pricing service gave (1 is no surge).",
		Labels:  []string{LabelRegion},
		Buckets: SurgeBuckets,
	}
	PricingServerConnections = Metric{
		Name: "carpool_pricing_server_connections", Type: Gauge, Unit: "connections", Producer: Services,
		Help:   "Client connections open to a region's pricing gRPC server.",
		Labels: []string{LabelRegion},
	}
	PricingPoolConnections = Metric{
		Name: "carpool_pricing_pool_connections", Type: Gauge, Unit: "connections", Producer: Services,
		Help:   "Connections of a pricing client pool, by state (active, or draining after a target swap until their calls in flight finish).",
		Labels: []string{LabelRegion, LabelPoolState},
	}
)

func init() { register(PricingSurge, PricingServerConnections, PricingPoolConnections) }
