package catalog

// LabelStep says which step of the synthetic business probe failed.
const LabelStep = "step"

// Values of the step label of SyntheticProbeFailures.
const (
	SyntheticStepCreate = "create" // POST /v1/rides
	SyntheticStepCancel = "cancel" // POST /v1/rides/{id}/cancel
)

// RTO inputs produced by exporters/rto next to DrillRTO and DrillRPO: a
// synthetic business probe that creates and cancels a ride in each region
// every second, and when each drill scenario last ran.
var (
	SyntheticProbeSuccess = Metric{
		Name: "carpool_synthetic_probe_success", Type: Gauge, Unit: "bool", Producer: Exporters,
		Help:   "1 when the last synthetic business probe of the region (create a ride, then cancel it) succeeded, else 0.",
		Labels: []string{LabelRegion},
	}
	SyntheticProbeDuration = Metric{
		Name: "carpool_synthetic_probe_duration_seconds", Type: Gauge, Unit: "seconds", Producer: Exporters,
		Help:   "Duration of the region's last synthetic business probe, create and cancel together (up to the failing step).",
		Labels: []string{LabelRegion},
	}
	SyntheticProbeRuns = Metric{
		Name: "carpool_synthetic_probe_runs_total", Type: Counter, Unit: "probes", Producer: Exporters,
		Help:   "Synthetic business probes run against the region.",
		Labels: []string{LabelRegion},
	}
	SyntheticProbeFailures = Metric{
		Name: "carpool_synthetic_probe_failures_total", Type: Counter, Unit: "probes", Producer: Exporters,
		Help:   "Synthetic business probes of the region that failed, by the step that failed (create or cancel).",
		Labels: []string{LabelRegion, LabelStep},
	}
	DrillTimestamp = Metric{
		Name: "carpool_drill_timestamp_seconds", Type: Gauge, Unit: "timestamp_seconds", Producer: Exporters,
		Help:   "Unix time at which the last drill of a scenario was recorded.",
		Labels: []string{LabelScenario},
	}
)

func init() {
	register(SyntheticProbeSuccess, SyntheticProbeDuration, SyntheticProbeRuns, SyntheticProbeFailures, DrillTimestamp)
}
