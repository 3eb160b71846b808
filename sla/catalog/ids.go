package catalog

// Ride-id (snowflake) metrics, produced by services/ids.
var (
	IDClockRollbacks = Metric{
		Name: "carpool_id_clock_rollbacks_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Id requests that found the clock behind the last id issued, by outcome: waited (the rollback was within the bound and was waited out) or refused (beyond it; no id was issued).",
		Labels: []string{LabelRegion, LabelOutcome},
	}
	IDSequenceExhausted = Metric{
		Name: "carpool_id_sequence_exhausted_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Id requests that found all 4096 sequence numbers of the current millisecond used and waited for the next millisecond.",
		Labels: []string{LabelRegion},
	}
)

// Values of the outcome label of IDClockRollbacks.
const (
	IDRollbackWaited  = "waited"
	IDRollbackRefused = "refused"
)

func init() { register(IDClockRollbacks, IDSequenceExhausted) }
