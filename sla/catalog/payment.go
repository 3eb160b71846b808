package catalog

// Payment adapter metrics, produced by services/payment.
var (
	PaymentAttempts = Metric{
		Name: "carpool_payment_attempts_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Charge attempts at a payment provider, by outcome: ok, error (the provider failed or timed out) or circuit_open (skipped because the provider's circuit was open).",
		Labels: []string{LabelRegion, "provider", LabelOutcome},
	}
	PaymentFailovers = Metric{
		Name: "carpool_payment_failovers_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Times a charge moved on from a failed or skipped provider to the next one in priority order.",
		Labels: []string{LabelRegion},
	}
	PaymentCharges = Metric{
		Name: "carpool_payment_charges_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Charge requests by outcome: charged (a provider took the money), replayed (an idempotency key returned an earlier result) or failed (no provider charged).",
		Labels: []string{LabelRegion, LabelOutcome},
	}
	PaymentRefunds = Metric{
		Name: "carpool_payment_refunds_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Refund requests by outcome: refunded, voided (nothing was charged under the key, which can no longer charge), replayed (already refunded) or failed.",
		Labels: []string{LabelRegion, LabelOutcome},
	}
	PaymentCircuitOpen = Metric{
		Name: "carpool_payment_provider_circuit_open", Type: Gauge, Unit: "bool", Producer: Services,
		Help:   "1 while a payment provider's circuit is open (it is skipped after consecutive failures until its cool-down ends), else 0.",
		Labels: []string{LabelRegion, "provider"},
	}
)

// Values of the outcome labels of the payment metrics.
const (
	PaymentOutcomeCircuitOpen = "circuit_open"
	PaymentOutcomeCharged     = "charged"
	PaymentOutcomeReplayed    = "replayed"
	PaymentOutcomeFailed      = "failed"
	PaymentOutcomeRefunded    = "refunded"
	PaymentOutcomeVoided      = "voided"
)

func init() {
	register(PaymentAttempts, PaymentFailovers, PaymentCharges, PaymentRefunds, PaymentCircuitOpen)
}
