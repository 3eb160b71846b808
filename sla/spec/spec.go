// Package spec defines the carpoolsla/v1 SLA spec: the one YAML document an
// SRE edits to describe regions, services and their SLOs, the composite SLA,
// the health score, DR objectives, the breaker policy, probes, alerting and
// log retention. Load parses it strictly and Validate checks its fields
// against each other; every error names file:line:column and the field.
package spec

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// APIVersion is the only apiVersion this package reads.
const APIVersion = "carpoolsla/v1"

// Kind is the only kind this package reads.
const Kind = "SLASpec"

// Duration is a duration written the Prometheus way: 300ms, 5s, 2m, 6h, 30d.
type Duration model.Duration

// String formats d the Prometheus way (1h30m, 30d).
func (d Duration) String() string { return model.Duration(d).String() }

// Seconds returns d in seconds.
func (d Duration) Seconds() float64 { return time.Duration(d).Seconds() }

// UnmarshalYAML implements yaml.Unmarshaler with a located error.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &locatedError{Line: n.Line, Column: n.Column, Msg: "expected a duration such as 300ms, 5s, 2m, 6h or 30d"}
	}
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return &locatedError{Line: n.Line, Column: n.Column, Msg: fmt.Sprintf("%q is not a duration; write one such as 300ms, 5s, 2m, 6h or 30d (units ms, s, m, h, d, w, y; no decimals)", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// locatedError is a decode error that knows its position.
type locatedError struct {
	Line, Column int
	Msg          string
}

func (e *locatedError) Error() string { return fmt.Sprintf("line %d:%d: %s", e.Line, e.Column, e.Msg) }

// Spec is the whole document.
type Spec struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   Metadata   `yaml:"metadata"`
	Regions    []Region   `yaml:"regions"`
	Services   []Service  `yaml:"services"`
	Composite  Composite  `yaml:"composite"`
	Health     Health     `yaml:"health"`
	DR         DR         `yaml:"dr"`
	Breaker    Breaker    `yaml:"breaker"`
	Routing    Routing    `yaml:"routing"`
	Alerting   Alerting   `yaml:"alerting"`
	Logs       Logs       `yaml:"logs"`
	Dashboards Dashboards `yaml:"dashboards"`
	Tracing    Tracing    `yaml:"tracing"`
	Engine     Engine     `yaml:"engine"`
	Credits    []Credit   `yaml:"credits"`

	// File is the name the spec was read from, for messages. Not part of the YAML.
	File string `yaml:"-"`
}

// Metadata names the system the spec describes.
type Metadata struct {
	Name string `yaml:"name"`
	// Team is the owning team, put on every alert as the team label.
	Team string `yaml:"team"`
}

// Region is one active region of the carpool system.
type Region struct {
	Name string `yaml:"name"`
	City string `yaml:"city"`
}

// Service is one carpool service and its SLOs.
type Service struct {
	Name string `yaml:"name"`
	// Weight is the service's share of the composite SLA; all weights sum to 1.
	Weight     float64  `yaml:"weight"`
	Operations []string `yaml:"operations"`
	SLOs       []SLO    `yaml:"slos"`
}

// SLO kinds.
const (
	// KindAvailability: good events are requests whose outcome is ok.
	KindAvailability = "availability"
	// KindLatency: good events are requests faster than the threshold, read
	// from the request-duration histogram's bucket at that threshold.
	KindLatency = "latency"
)

// SLO is one service level objective of a service.
type SLO struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"`
	// Objective is the target share of good events, in percent, in (0,100).
	Objective float64 `yaml:"objective"`
	// Window is the rolling window (default 30d).
	Window Duration `yaml:"window"`
	// Threshold is the latency bar of a latency SLO; it must be a bucket
	// boundary of carpool_request_duration_seconds.
	Threshold Duration `yaml:"threshold"`
	// Operations restricts the SLO to some of the service's operations
	// (default: all of them).
	Operations []string `yaml:"operations"`
	// Key marks an SLO whose breach fails the composite SLA whatever the
	// weights say (the veto).
	Key         bool   `yaml:"key"`
	Description string `yaml:"description"`
}

// Composite is the weighted SLA over all services. Its value per region is
// sum(weight_s * attainment_s), where a service's attainment is the product
// of its SLOs' attainments. It is met when that value is at least Objective
// and no key SLO is below its own objective.
type Composite struct {
	// Objective in percent, in (0,100).
	Objective float64 `yaml:"objective"`
}

// Health is the per-region health score: a weighted sum of component scores,
// each 0-100 from a measurement through a curve.
type Health struct {
	// Floor is the score below which a region is unhealthy (P2 alert, and
	// the breaker's health trip rule).
	Floor float64 `yaml:"floor"`
	// For is how long the score must stay below Floor before the alert fires.
	For        Duration          `yaml:"for"`
	Components []HealthComponent `yaml:"components"`
}

// Measurements a health component can read.
const (
	MeasureSyncLag           = "sync_lag_seconds"       // worst sync lag into the region
	MeasureAPISuccess        = "api_success_percent"    // share of ok requests in the region over 5m
	MeasureStreamLag         = "stream_lag_messages"    // worst consumer-group lag in the region
	MeasureConfigConsistency = "config_consistent"      // 1 when all config hashes are equal
	MeasureProbeHealthy      = "probe_healthy_fraction" // share of probers that see the region healthy
)

// Measures lists the measurements a health component may name.
var Measures = []string{MeasureSyncLag, MeasureAPISuccess, MeasureStreamLag, MeasureConfigConsistency, MeasureProbeHealthy}

// HealthComponent is one input of the health score.
type HealthComponent struct {
	Name    string  `yaml:"name"`
	Weight  float64 `yaml:"weight"`
	Measure string  `yaml:"measure"`
	Curve   Curve   `yaml:"curve"`
}

// Curve types.
const (
	// CurveLinear scores 100 at or better than Good, 0 at or worse than Bad,
	// and linearly in between. Good may be below Bad (lower is better) or
	// above it (higher is better).
	CurveLinear = "linear"
	// CurveStep scores 100 at or better than Good and 0 otherwise.
	CurveStep = "step"
)

// Curve maps a measurement to a score from 0 to 100.
type Curve struct {
	Type string `yaml:"type"`
	// Good is the target: a measurement at least this good scores 100.
	Good float64 `yaml:"good"`
	// Bad is where the score reaches 0 (linear); for a step curve it only
	// gives the direction (defaults to below Good for "higher is better").
	Bad float64 `yaml:"bad"`
}

// DR holds the disaster-recovery objectives.
type DR struct {
	// RPO and RTO are the defaults for every region pair and drill.
	RPO    Duration  `yaml:"rpo"`
	RTO    Duration  `yaml:"rto"`
	Pairs  []DRPair  `yaml:"pairs"`
	Drills []DRDrill `yaml:"drills"`
}

// DRPair overrides the objectives for one source→target region pair.
type DRPair struct {
	Source string   `yaml:"source"`
	Target string   `yaml:"target"`
	RPO    Duration `yaml:"rpo"`
	RTO    Duration `yaml:"rto"`
}

// Drill scenarios the drill runner knows.
const (
	ScenarioRegionDown       = "region_down"
	ScenarioSameCityLoss     = "same_city_loss"
	ScenarioReplicationStall = "replication_stall"
	ScenarioLatencySpike     = "latency_spike"
	ScenarioClockSkew        = "clock_skew"
)

// Scenarios lists the drill scenarios.
var Scenarios = []string{ScenarioRegionDown, ScenarioSameCityLoss, ScenarioReplicationStall, ScenarioLatencySpike, ScenarioClockSkew}

// DRDrill sets the objectives a drill scenario must meet.
type DRDrill struct {
	Scenario string   `yaml:"scenario"`
	RPO      Duration `yaml:"rpo"`
	RTO      Duration `yaml:"rto"`
}

// Breaker is the circuit-breaker policy applied to each region.
type Breaker struct {
	// DryRun decides and reports without acting.
	DryRun  bool        `yaml:"dryRun"`
	Trip    BreakerRule `yaml:"trip"`
	Recover BreakerRule `yaml:"recover"`
	Ramp    Ramp        `yaml:"ramp"`
	Hold    HoldOpen    `yaml:"holdOpen"`
	// MaxBrokenFraction is the largest share of regions that may be open at
	// once, in (0,1). The last serving region is never broken.
	MaxBrokenFraction float64 `yaml:"maxBrokenFraction"`
}

// BreakerRule is a trip or recovery rule: latency P99 against a bar, or the
// health score against a bar, held for a duration. A rule holds when either
// condition holds (trip) or when both do (recover).
type BreakerRule struct {
	// LatencyP99 is the P99 bar (trip: above it; recover: at or below it).
	LatencyP99 Duration `yaml:"latencyP99"`
	// Health is the health-score bar (trip: below it; recover: at or above it).
	Health float64  `yaml:"health"`
	For    Duration `yaml:"for"`
}

// Ramp brings a recovered region's traffic back in steps.
type Ramp struct {
	// Steps are percentages of the region's full weight, increasing, ending at 100.
	Steps []float64 `yaml:"steps"`
	// StepDuration is how long each step holds while the recovery rule keeps holding.
	StepDuration Duration `yaml:"stepDuration"`
}

// HoldOpen is how long an open breaker stays open: Initial, times
// Multiplier for each repeated trip, capped at Max.
type HoldOpen struct {
	Initial    Duration `yaml:"initial"`
	Multiplier float64  `yaml:"multiplier"`
	Max        Duration `yaml:"max"`
	// ResetAfter forgets earlier trips after this long closed.
	ResetAfter Duration `yaml:"resetAfter"`
}

// Routing configures the gateways' probes and weight updates.
type Routing struct {
	Probes  Probes  `yaml:"probes"`
	Weights Weights `yaml:"weights"`
}

// Probes configures active health checks between regions.
type Probes struct {
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	// UnhealthyAfter consecutive failures mark a target unhealthy.
	UnhealthyAfter int `yaml:"unhealthyAfter"`
	// HealthyAfter consecutive successes mark it healthy again.
	HealthyAfter int `yaml:"healthyAfter"`
}

// Weights configures how route weights are recomputed.
type Weights struct {
	Period Duration `yaml:"period"`
	Min    float64  `yaml:"min"`
	Max    float64  `yaml:"max"`
}

// Tier names.
const (
	TierP0 = "P0"
	TierP1 = "P1"
	TierP2 = "P2"
)

// Alerting configures the generated alerts and Alertmanager routing.
type Alerting struct {
	// RunbookBaseURL prefixes each alert's runbook (…/<AlertName>.md).
	RunbookBaseURL string `yaml:"runbookBaseURL"`
	// GrafanaURL prefixes each alert's dashboard link.
	GrafanaURL string         `yaml:"grafanaURL"`
	Receivers  Receivers      `yaml:"receivers"`
	Grouping   Grouping       `yaml:"grouping"`
	BurnRates  BurnRates      `yaml:"burnRates"`
	SyncLag    ThresholdAlert `yaml:"syncLag"`
	ErrorRate  ThresholdAlert `yaml:"errorRate"`
	// TargetDown fires when a scrape target or exporter is down for this long.
	TargetDownFor Duration `yaml:"targetDownFor"`
	// BreakerOpenFor fires when a region's breaker is open for this long.
	BreakerOpenFor Duration `yaml:"breakerOpenFor"`
	// RPOFor fires when RPO exposure stays above the pair's RPO this long.
	RPOFor Duration `yaml:"rpoFor"`
}

// Receivers are where each tier's notifications go.
type Receivers struct {
	PagerDuty PagerDuty `yaml:"pagerduty"`
	Chat      Webhook   `yaml:"chat"`
	Ticket    Webhook   `yaml:"ticket"`
}

// PagerDuty is the P0 receiver (Events API v2). The routing key is read by
// Alertmanager from RoutingKeyFile at run time; it never appears in
// generated output.
type PagerDuty struct {
	RoutingKeyFile string `yaml:"routingKeyFile"`
	// URL overrides the Events API v2 endpoint (tests point it at 127.0.0.1).
	URL string `yaml:"url"`
}

// Webhook is a P1 (chat) or P2 (ticket) receiver.
type Webhook struct {
	URL string `yaml:"url"`
	// CredentialsFile, when set, holds a bearer token Alertmanager sends.
	CredentialsFile string `yaml:"credentialsFile"`
}

// Grouping configures Alertmanager's grouping and timing.
type Grouping struct {
	By             []string `yaml:"by"`
	GroupWait      Duration `yaml:"groupWait"`
	GroupInterval  Duration `yaml:"groupInterval"`
	RepeatInterval Duration `yaml:"repeatInterval"`
}

// BurnRates are the multi-window multi-burn-rate alert windows.
type BurnRates struct {
	Page   []BurnWindow `yaml:"page"`
	Ticket []BurnWindow `yaml:"ticket"`
}

// BurnWindow fires when the error ratio over both Long and Short exceeds
// Factor times the error budget (1 - objective).
type BurnWindow struct {
	Factor float64  `yaml:"factor"`
	Long   Duration `yaml:"long"`
	Short  Duration `yaml:"short"`
}

// ThresholdAlert is a plain threshold held for a duration.
type ThresholdAlert struct {
	// Threshold: seconds for sync lag, percent for error rate.
	Threshold float64  `yaml:"threshold"`
	For       Duration `yaml:"for"`
}

// Logs configures log and event retention.
type Logs struct {
	Retention Duration `yaml:"retention"`
}

// Dashboards configures the generated Grafana dashboards.
type Dashboards struct {
	// UIDPrefix starts every dashboard uid (stable across generations).
	UIDPrefix string `yaml:"uidPrefix"`
	// Datasource is the default Prometheus datasource name.
	Datasource string `yaml:"datasource"`
}

// Tracing configures the services' OpenTelemetry traces.
type Tracing struct {
	// SampleRatio is the share of new traces sampled, in [0, 1]; children
	// follow their parent's decision. 0 turns tracing off (no cost on the hot path).
	SampleRatio float64 `yaml:"sampleRatio"`
	// OTLPEndpoint, when set, receives spans over OTLP/HTTP (host:port or URL).
	OTLPEndpoint string `yaml:"otlpEndpoint"`
}

// Engine configures the SLA engine's loop and its embedded metrics store.
type Engine struct {
	// Interval is how often the engine reads its signals and decides.
	Interval Duration `yaml:"interval"`
	// StaleAfter bounds how long the engine holds its last decision when a
	// signal is missing or stale; past it, it alerts (it never trips on absence).
	StaleAfter Duration `yaml:"staleAfter"`
	// RecoveryBlackout is how long a region's measured latency is ignored for
	// its route weight after it comes back (its first samples are not trusted).
	RecoveryBlackout Duration `yaml:"recoveryBlackout"`
	// ScrapeInterval is the embedded store's scrape and rule-evaluation interval.
	ScrapeInterval Duration `yaml:"scrapeInterval"`
	// Retention is how long the embedded store keeps samples on disk.
	Retention Duration `yaml:"retention"`
}

// Credit is one row of the SLA credit table: when a month's attainment is
// below Below (percent), the customer is owed Percent of that month's fee.
// The report applies the row with the lowest Below the attainment is under.
type Credit struct {
	Below   float64 `yaml:"below"`
	Percent float64 `yaml:"percent"`
}

// D converts a spec duration to a time.Duration.
func D(d Duration) time.Duration { return time.Duration(d) }
