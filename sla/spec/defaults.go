package spec

import (
	"time"
)

func dur(d time.Duration) Duration { return Duration(d) }

const day = 24 * time.Hour

// DefaultWindow is an SLO's rolling window when it names none.
const DefaultWindow = 30 * day

// Default returns a spec holding the seed's numbers for everything but the
// regions and services, which every spec must list itself. Parse decodes a
// document on top of it, so a field the document leaves out keeps its default.
func Default() Spec {
	return Spec{
		APIVersion: APIVersion,
		Kind:       Kind,
		Composite:  Composite{Objective: 99.9},
		Health: Health{
			Floor: 70,
			For:   dur(5 * time.Minute),
			Components: []HealthComponent{
				{Name: "sync_lag", Weight: 0.35, Measure: MeasureSyncLag, Curve: Curve{Type: CurveLinear, Good: 2, Bad: 10}},
				{Name: "api_success", Weight: 0.30, Measure: MeasureAPISuccess, Curve: Curve{Type: CurveLinear, Good: 99.95, Bad: 99}},
				{Name: "stream_consistency", Weight: 0.25, Measure: MeasureStreamLag, Curve: Curve{Type: CurveLinear, Good: 100, Bad: 1000}},
				{Name: "config_consistency", Weight: 0.10, Measure: MeasureConfigConsistency, Curve: Curve{Type: CurveStep, Good: 1, Bad: 0}},
			},
		},
		DR: DR{RPO: dur(5 * time.Second), RTO: dur(90 * time.Second)},
		Breaker: Breaker{
			Trip:              BreakerRule{LatencyP99: dur(300 * time.Millisecond), Health: 50, For: dur(2 * time.Minute)},
			Recover:           BreakerRule{LatencyP99: dur(200 * time.Millisecond), Health: 70, For: dur(2 * time.Minute)},
			Ramp:              Ramp{Steps: []float64{10, 25, 50, 100}, StepDuration: dur(30 * time.Second)},
			Hold:              HoldOpen{Initial: dur(30 * time.Second), Multiplier: 2, Max: dur(10 * time.Minute), ResetAfter: dur(time.Hour)},
			MaxBrokenFraction: 0.5,
		},
		Routing: Routing{
			Probes:  Probes{Interval: dur(time.Second), Timeout: dur(300 * time.Millisecond), UnhealthyAfter: 3, HealthyAfter: 2},
			Weights: Weights{Period: dur(5 * time.Second), Min: 1, Max: 100},
		},
		Alerting: Alerting{
			RunbookBaseURL: "https://github.com/carpoolsla/carpoolsla/blob/main/docs/runbooks",
			GrafanaURL:     "http://127.0.0.1:3000",
			Grouping: Grouping{
				By:             []string{"alertname", "region", "service", "slo"},
				GroupWait:      dur(30 * time.Second),
				GroupInterval:  dur(5 * time.Minute),
				RepeatInterval: dur(4 * time.Hour),
			},
			BurnRates: BurnRates{
				Page: []BurnWindow{
					{Factor: 14.4, Long: dur(time.Hour), Short: dur(5 * time.Minute)},
					{Factor: 6, Long: dur(6 * time.Hour), Short: dur(30 * time.Minute)},
				},
				Ticket: []BurnWindow{{Factor: 1, Long: dur(3 * day), Short: dur(6 * time.Hour)}},
			},
			SyncLag:        ThresholdAlert{Threshold: 5, For: dur(30 * time.Second)},
			ErrorRate:      ThresholdAlert{Threshold: 3, For: dur(2 * time.Minute)},
			TargetDownFor:  dur(2 * time.Minute),
			BreakerOpenFor: dur(0),
			RPOFor:         dur(time.Minute),
		},
		Logs:       Logs{Retention: dur(180 * day)},
		Dashboards: Dashboards{UIDPrefix: "carpoolsla", Datasource: "Prometheus"},
		Tracing:    Tracing{SampleRatio: 0.01},
		Engine: Engine{
			Interval:         dur(5 * time.Second),
			StaleAfter:       dur(time.Minute),
			RecoveryBlackout: dur(30 * time.Second),
			ScrapeInterval:   dur(5 * time.Second),
			Retention:        dur(15 * day),
		},
		Credits: []Credit{{Below: 99.9, Percent: 10}, {Below: 99, Percent: 25}, {Below: 95, Percent: 100}},
	}
}

// fillDefaults sets the per-element defaults a document cannot inherit from
// Default: SLO windows, and drill and pair objectives from the DR defaults.
func (s *Spec) fillDefaults() {
	for i := range s.Services {
		for j := range s.Services[i].SLOs {
			if s.Services[i].SLOs[j].Window == 0 {
				s.Services[i].SLOs[j].Window = dur(DefaultWindow)
			}
		}
	}
	for i := range s.DR.Pairs {
		if s.DR.Pairs[i].RPO == 0 {
			s.DR.Pairs[i].RPO = s.DR.RPO
		}
		if s.DR.Pairs[i].RTO == 0 {
			s.DR.Pairs[i].RTO = s.DR.RTO
		}
	}
	for i := range s.DR.Drills {
		if s.DR.Drills[i].RPO == 0 {
			s.DR.Drills[i].RPO = s.DR.RPO
		}
		if s.DR.Drills[i].RTO == 0 {
			s.DR.Drills[i].RTO = s.DR.RTO
		}
	}
}
