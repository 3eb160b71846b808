package catalog

// Series recorded by the generated Prometheus rules. Their names follow
// level:metric:operations. Dashboards, alerts and the engine read them by
// these names.

// SLIErrorRatioName is the recorded error ratio of an SLO over a window
// (for example carpool:sli_errors:ratio_rate5m), labelled service, slo and
// region (region="global" for all regions together).
func SLIErrorRatioName(window string) string { return "carpool:sli_errors:ratio_rate" + window }

// SLIErrorRatio describes the family of SLIErrorRatioName series.
var SLIErrorRatio = Metric{
	Name: "carpool:sli_errors:ratio_rate<window>", Type: Recorded, Unit: "ratio", Producer: Rules,
	Help:   "Share of bad events of an SLO over a window (one series per burn-rate window the alerts use).",
	Labels: []string{LabelService, LabelSLO, LabelRegion},
}

// Recorded series with fixed names.
var (
	// SLIBadEventsRate and SLIEventsRate are the tier under the windows
	// longer than an hour: per-second rates of an SLO's bad and total events
	// over 5 minutes, per region, recorded once a minute. A long window's
	// ratio is the ratio of their sums over it, so it reads one series per
	// SLO and region, a sample a minute, instead of every raw counter and
	// histogram bucket at scrape resolution.
	SLIBadEventsRate = Metric{
		Name: "carpool:sli_bad_events:rate5m", Type: Recorded, Unit: "events per second", Producer: Rules,
		Help:   "Per-second rate of an SLO's bad events over 5 minutes, per region, recorded every minute: the tier its windows longer than an hour are summed from.",
		Labels: []string{LabelService, LabelSLO, LabelRegion},
	}
	SLIEventsRate = Metric{
		Name: "carpool:sli_events:rate5m", Type: Recorded, Unit: "events per second", Producer: Rules,
		Help:   "Per-second rate of all an SLO's events over 5 minutes, per region, recorded every minute: the tier its windows longer than an hour are summed from.",
		Labels: []string{LabelService, LabelSLO, LabelRegion},
	}
	SLOAttainment = Metric{
		Name: "carpool:slo_attainment:ratio", Type: Recorded, Unit: "ratio", Producer: Rules,
		Help:   "Share of good events of an SLO over its rolling window, event-weighted: from increases of good and total events, or for windows longer than an hour from the sums of their recorded 5-minute rates.",
		Labels: []string{LabelService, LabelSLO, LabelRegion},
	}
	SLOErrorBudgetRemaining = Metric{
		Name: "carpool:slo_error_budget_remaining:ratio", Type: Recorded, Unit: "ratio", Producer: Rules,
		Help:   "Share of an SLO's error budget left over its rolling window: 1 - (1 - attainment) / (1 - objective).",
		Labels: []string{LabelService, LabelSLO, LabelRegion},
	}
	ServiceAttainment = Metric{
		Name: "carpool:service_attainment:ratio", Type: Recorded, Unit: "ratio", Producer: Rules,
		Help:   "Product of a service's SLO attainments: the share of its events that met every objective.",
		Labels: []string{LabelService, LabelRegion},
	}
	CompositeSLA = Metric{
		Name: "carpool:sla_composite:ratio", Type: Recorded, Unit: "ratio", Producer: Rules,
		Help:   "Weighted composite SLA: the sum over services of weight times service attainment.",
		Labels: []string{LabelRegion},
	}
	CompositeMet = Metric{
		Name: "carpool:sla_composite_met:bool", Type: Recorded, Unit: "bool", Producer: Rules,
		Help:   "1 when the composite SLA meets its objective and no key SLO is breached (the veto), else 0.",
		Labels: []string{LabelRegion},
	}
	KeySLOBreached = Metric{
		Name: "carpool:sla_key_slo_breached:count", Type: Recorded, Unit: "count", Producer: Rules,
		Help:   "Number of key SLOs below their objective; any breach vetoes the composite.",
		Labels: []string{LabelRegion},
	}
	RegionErrorRatio = Metric{
		Name: "carpool:region_errors:ratio_rate1m", Type: Recorded, Unit: "ratio", Producer: Rules,
		Help:   "Share of a region's requests, all services but the gateways (which label requests with their own region whichever served them), that failed server-side over the last minute.",
		Labels: []string{LabelRegion},
	}
	RegionLatencyP99 = Metric{
		Name: "carpool:request_duration_seconds:p99_rate1m", Type: Recorded, Unit: "seconds", Producer: Rules,
		Help:   "99th percentile request duration of a region, all services but the gateways, over the last minute.",
		Labels: []string{LabelRegion},
	}
)

// RecordedSeries lists the recorded families in documentation order.
func RecordedSeries() []Metric {
	return []Metric{SLIErrorRatio, SLIBadEventsRate, SLIEventsRate, SLOAttainment, SLOErrorBudgetRemaining, ServiceAttainment, CompositeSLA, KeySLOBreached, CompositeMet, RegionErrorRatio, RegionLatencyP99}
}
