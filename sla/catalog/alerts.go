package catalog

// The alert contract: names, labels and tiers shared by the rule generator
// (alerts/), the Alertmanager routing generator (alerts/routing) and the
// dashboards, so that a route or an inhibition can never name an alert or
// label the rules do not produce.

// Labels every generated alert carries.
const (
	AlertLabelSeverity = "severity"
	AlertLabelTier     = "tier"
	AlertLabelTeam     = "team"
	// AlertLabelRegion, AlertLabelService and AlertLabelSLO reuse the metric
	// label names region, service and slo.
	AlertLabelRegion  = LabelRegion
	AlertLabelService = LabelService
	AlertLabelSLO     = LabelSLO
)

// Annotations every generated alert carries.
const (
	AnnotationSummary     = "summary"
	AnnotationDescription = "description"
	AnnotationRunbook     = "runbook_url"
	AnnotationDashboard   = "dashboard"
)

// Tier is an alert's urgency: it picks the receiver.
type Tier string

// Tiers and where they go.
const (
	P0 Tier = "P0" // PagerDuty Events v2, high urgency
	P1 Tier = "P1" // chat webhook
	P2 Tier = "P2" // ticket webhook
)

// Severity returns the severity label value of a tier.
func (t Tier) Severity() string {
	switch t {
	case P0:
		return "critical"
	case P1:
		return "warning"
	default:
		return "info"
	}
}

// Receiver names in the generated Alertmanager configuration.
const (
	ReceiverPagerDuty = "pagerduty"
	ReceiverChat      = "chat"
	ReceiverTicket    = "ticket"
)

// Receiver returns the receiver a tier routes to.
func (t Tier) Receiver() string {
	switch t {
	case P0:
		return ReceiverPagerDuty
	case P1:
		return ReceiverChat
	default:
		return ReceiverTicket
	}
}

// Tiers lists the tiers in order of urgency.
var Tiers = []Tier{P0, P1, P2}

// Pseudo service and region label values for alerts that are not about one
// service or one region.
const (
	AllServices = "all"
	Replication = "replication"
	DRService   = "dr"
	Verifier    = "verifier"
	Platform    = "platform"
)

// Alert describes one generated alert.
type Alert struct {
	Name string
	Tier Tier
	// Service and SLO are the service and slo label values for alerts not
	// tied to one of the spec's SLOs; empty when they come from the SLO.
	Service, SLO string
	Summary      string
}

// The generated alerts.
var (
	AlertBurnFast = Alert{Name: "SLOErrorBudgetBurnFast", Tier: P0,
		Summary: "An SLO is burning its error budget fast enough to exhaust it within days (page)."}
	AlertBurnSlow = Alert{Name: "SLOErrorBudgetBurnSlow", Tier: P2,
		Summary: "An SLO is burning its error budget faster than it can sustain over its window (ticket)."}
	AlertSyncLag = Alert{Name: "SyncLagHigh", Tier: P0, Service: Replication, SLO: "sync_lag",
		Summary: "Cross-region sync lag between a region pair is above the P0 threshold."}
	AlertRegionDown = Alert{Name: "RegionDown", Tier: P0, Service: AllServices, SLO: "probe",
		Summary: "No other region's probe sees this region healthy."}
	AlertErrorRate = Alert{Name: "RegionErrorRateHigh", Tier: P1, Service: AllServices, SLO: "error_rate",
		Summary: "A region's server-side error rate is above the P1 threshold."}
	AlertRPO = Alert{Name: "RPOExposureHigh", Tier: P1, Service: Replication, SLO: "rpo",
		Summary: "Writes not yet replicated are older than the pair's RPO objective."}
	AlertBreakerOpen = Alert{Name: "RegionBreakerOpen", Tier: P1, Service: AllServices, SLO: "breaker",
		Summary: "A region's circuit breaker is open and its traffic is shifted away."}
	AlertTargetDown = Alert{Name: "ScrapeTargetDown", Tier: P1, Service: Platform, SLO: "scrape",
		Summary: "A scrape target or exporter is down; the SLA is blind to what it measures."}
	AlertHealthLow = Alert{Name: "RegionHealthLow", Tier: P2, Service: AllServices, SLO: "health",
		Summary: "A region's health score is below its floor."}
	AlertCompositeBreached = Alert{Name: "CompositeSLABreached", Tier: P2, Service: AllServices, SLO: "composite",
		Summary: "The composite SLA is below its objective, or a key SLO is breached."}
	AlertDrillRTO = Alert{Name: "DrillRTOAboveObjective", Tier: P2, Service: DRService, SLO: "rto",
		Summary: "The last drill of a scenario recovered slower than its RTO objective."}
	AlertDrillRPO = Alert{Name: "DrillRPOAboveObjective", Tier: P2, Service: DRService, SLO: "rpo",
		Summary: "The last drill of a scenario lost a longer window of writes than its RPO objective."}
	AlertVerifier = Alert{Name: "DataVerifierMismatch", Tier: P2, Service: Verifier, SLO: "consistency",
		Summary: "The data verifier found rows that differ between two regions."}
	AlertEnginePanic = Alert{Name: "SLAEnginePanicMode", Tier: P0, Service: Platform, SLO: "breaker",
		Summary: "Too many regions are bad to break them all: the engine serves from every region (panic mode)."}
	AlertSignalsStale = Alert{Name: "SLAEngineSignalsStale", Tier: P1, Service: Platform, SLO: "signals",
		Summary: "The SLA engine has had no fresh signals for a region past its staleness bound; it is holding its last decision blind."}
	AlertEngineStalled = Alert{Name: "SLAEngineNotTicking", Tier: P1, Service: Platform, SLO: "engine",
		Summary: "The SLA engine has not completed a tick recently: breakers and weights are frozen."}
	AlertLogLoss = Alert{Name: "LogPipelineLosingRecords", Tier: P1, Service: Platform, SLO: "logs",
		Summary: "The ClickHouse log pipeline dropped records: its write-ahead log is over its bound."}
)

// Alerts lists every generated alert.
func Alerts() []Alert {
	return []Alert{AlertBurnFast, AlertBurnSlow, AlertSyncLag, AlertRegionDown, AlertErrorRate, AlertRPO, AlertBreakerOpen,
		AlertTargetDown, AlertHealthLow, AlertCompositeBreached, AlertDrillRTO, AlertDrillRPO, AlertVerifier,
		AlertEnginePanic, AlertSignalsStale, AlertEngineStalled, AlertLogLoss}
}

// Inhibition: a page inhibits the ticket of the same SLO and region
// (AlertBurnFast over AlertBurnSlow, equal on service, slo, region), and
// AlertRegionDown inhibits the region's per-service and region alerts listed
// in RegionDownInhibits (equal on region).
var RegionDownInhibits = []string{AlertBurnFast.Name, AlertBurnSlow.Name, AlertErrorRate.Name, AlertBreakerOpen.Name, AlertHealthLow.Name}
