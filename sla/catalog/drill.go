package catalog

// Drill results beyond the RTO and RPO (DrillRTO, DrillRPO), produced by the
// drill runner (loadgen/drill) next to the RTO exporter's drill results: the
// last drill of each scenario.
var (
	DrillPassed = Metric{
		Name: "carpool_drill_passed", Type: Gauge, Unit: "bool", Producer: Exporters,
		Help:   "1 when the last drill of a scenario met every objective (RTO, RPO, order-creation success, ride ids), else 0.",
		Labels: []string{LabelScenario},
	}
	DrillOrderSuccess = Metric{
		Name: "carpool_drill_order_success_ratio", Type: Gauge, Unit: "ratio", Producer: Exporters,
		Help:   "Share of ride creations acknowledged during the last drill of a scenario, from the load's first ride to its last.",
		Labels: []string{LabelScenario},
	}
	DrillLostWrites = Metric{
		Name: "carpool_drill_lost_writes", Type: Gauge, Unit: "events", Producer: Exporters,
		Help:   "Acknowledged ride creations the surviving regions still lacked after the settle time in the last drill of a scenario (the largest count over the surviving regions).",
		Labels: []string{LabelScenario},
	}
)

func init() { register(DrillPassed, DrillOrderSuccess, DrillLostWrites) }
