package engine

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// metrics are the engine's collectors, built from the catalog. A nil
// *metrics (no Registerer) records nothing.
type metrics struct {
	health, component, attainment, budget, composite *prometheus.GaugeVec
	breaker, weight, denied, stale                   *prometheus.GaugeVec
	panic, dryRun, lastTick, version                 prometheus.Gauge
	ticks, events, emits, pushes                     *prometheus.CounterVec
	tickDuration                                     prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, s *spec.Spec) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	gauge := func(m catalog.Metric) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: m.Name, Help: m.Help})
	}
	m := &metrics{
		health:     telemetry.NewGaugeVec(catalog.HealthScore),
		component:  telemetry.NewGaugeVec(catalog.HealthComponentScore),
		attainment: telemetry.NewGaugeVec(catalog.Attainment),
		budget:     telemetry.NewGaugeVec(catalog.ErrorBudgetRemaining),
		composite:  telemetry.NewGaugeVec(catalog.CompositeRatio),
		breaker:    telemetry.NewGaugeVec(catalog.BreakerState),
		weight:     telemetry.NewGaugeVec(catalog.RouteWeight),
		denied:     telemetry.NewGaugeVec(catalog.BreakerTripDenied),
		stale:      telemetry.NewGaugeVec(catalog.SignalsStale),
		panic:      gauge(catalog.EnginePanic),
		dryRun:     gauge(catalog.EngineDryRun),
		lastTick:   gauge(catalog.EngineLastTick),
		version:    gauge(catalog.EngineRouteVersion),
		ticks:      telemetry.NewCounterVec(catalog.EngineTicks),
		events:     telemetry.NewCounterVec(catalog.EngineEvents),
		emits:      telemetry.NewCounterVec(catalog.EngineEmits),
		pushes:     telemetry.NewCounterVec(catalog.EngineRoutePushes),
	}
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: catalog.EngineTickDuration.Name,
		Help: catalog.EngineTickDuration.Help, Buckets: catalog.EngineTickDuration.Buckets})
	m.tickDuration = hist
	for _, c := range []prometheus.Collector{m.health, m.component, m.attainment, m.budget, m.composite,
		m.breaker, m.weight, m.denied, m.stale, m.panic, m.dryRun, m.lastTick, m.version,
		m.ticks, m.events, m.emits, m.pushes, hist} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("engine: registering its metrics: %w", err)
		}
	}
	// Counters start at 0 for every known label value, so rate() sees the first increase.
	for _, o := range []string{catalog.OutcomeOK, catalog.OutcomeError} {
		m.ticks.WithLabelValues(o)
		m.emits.WithLabelValues(o)
		m.pushes.WithLabelValues(o)
	}
	for _, k := range []string{catalog.EventKindBreaker, catalog.EventKindPanic, catalog.EventKindStale} {
		m.events.WithLabelValues(k)
	}
	if s.Breaker.DryRun {
		m.dryRun.Set(1)
	}
	return m, nil
}

// breakerValue is a state's number in carpool_breaker_state.
func breakerValue(s BreakerState) float64 {
	switch s {
	case Open:
		return catalog.BreakerOpen
	case Recovering:
		return catalog.BreakerRecovering
	}
	return catalog.BreakerClosed
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// setOrDelete sets a gauge child to a known value and removes it when the
// value is unknown, so that an absent input is absent in the metrics too.
func setOrDelete(v *prometheus.GaugeVec, n Number, labels ...string) {
	if n.Known() {
		v.WithLabelValues(labels...).Set(float64(n))
		return
	}
	v.DeleteLabelValues(labels...)
}

// observe exposes a decision.
func (m *metrics) observe(d Decision, s *spec.Spec) {
	if m == nil {
		return
	}
	for _, rd := range d.Regions {
		r := rd.Region
		m.health.WithLabelValues(r).Set(float64(rd.Health))
		for _, c := range rd.Components {
			m.component.WithLabelValues(r, c.Name).Set(c.Score)
		}
		for _, st := range rd.SLOs {
			setOrDelete(m.attainment, st.Attainment, st.Service, st.SLO, r)
			setOrDelete(m.budget, st.BudgetRemaining, st.Service, st.SLO, r)
		}
		setOrDelete(m.composite, rd.Composite, r)
		m.breaker.WithLabelValues(r).Set(breakerValue(rd.Breaker))
		m.weight.WithLabelValues(r).Set(rd.Weight)
		m.denied.WithLabelValues(r).Set(boolValue(rd.TripDenied))
		m.stale.WithLabelValues(r).Set(boolValue(rd.Stale))
	}
	g := catalog.GlobalRegion
	for _, st := range d.Global.SLOs {
		setOrDelete(m.attainment, st.Attainment, st.Service, st.SLO, g)
		setOrDelete(m.budget, st.BudgetRemaining, st.Service, st.SLO, g)
	}
	setOrDelete(m.composite, d.Global.Composite, g)
	m.panic.Set(boolValue(d.Panic))
	m.dryRun.Set(boolValue(d.DryRun))
	m.version.Set(float64(d.Table.Version))
}

func (m *metrics) countEvents(evs []Event) {
	if m == nil {
		return
	}
	for _, ev := range evs {
		m.events.WithLabelValues(ev.Kind).Inc()
	}
}

func outcome(ok bool) string {
	if ok {
		return catalog.OutcomeOK
	}
	return catalog.OutcomeError
}

func (m *metrics) emit(ok bool) {
	if m != nil {
		m.emits.WithLabelValues(outcome(ok)).Inc()
	}
}

func (m *metrics) push(ok bool) {
	if m != nil {
		m.pushes.WithLabelValues(outcome(ok)).Inc()
	}
}

func (m *metrics) tick(ok bool, now time.Time, took time.Duration) {
	if m == nil {
		return
	}
	m.ticks.WithLabelValues(outcome(ok)).Inc()
	m.lastTick.Set(float64(now.UnixNano()) / 1e9)
	m.tickDuration.Observe(took.Seconds())
}
