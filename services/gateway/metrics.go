package gateway

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// metrics are the gateway's collectors, all built from the catalog.
type metrics struct {
	duration                         *prometheus.HistogramVec
	probeHealthy, probeDuration      *prometheus.GaugeVec
	upstream, retries, retriesDenied *prometheus.CounterVec
	ejections, skipped, panicRoutes  *prometheus.CounterVec
	homeUnavailable, updates         *prometheus.CounterVec
	version, routeWeight             *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration:        telemetry.NewHistogramVec(catalog.RequestDuration),
		probeHealthy:    telemetry.NewGaugeVec(catalog.ProbeHealthy),
		probeDuration:   telemetry.NewGaugeVec(catalog.ProbeDuration),
		upstream:        telemetry.NewCounterVec(catalog.GatewayUpstreamRequests),
		retries:         telemetry.NewCounterVec(catalog.GatewayRetries),
		retriesDenied:   telemetry.NewCounterVec(catalog.GatewayRetriesDenied),
		ejections:       telemetry.NewCounterVec(catalog.GatewayEjections),
		skipped:         telemetry.NewCounterVec(catalog.GatewayEjectionsSkipped),
		panicRoutes:     telemetry.NewCounterVec(catalog.GatewayPanicRoutes),
		homeUnavailable: telemetry.NewCounterVec(catalog.GatewayHomeUnavailable),
		updates:         telemetry.NewCounterVec(catalog.GatewayRoutingUpdates),
		version:         telemetry.NewGaugeVec(catalog.GatewayRoutingVersion),
		routeWeight:     telemetry.NewGaugeVec(catalog.GatewayRouteWeight),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.duration, m.probeHealthy, m.probeDuration, m.upstream, m.retries,
		m.retriesDenied, m.ejections, m.skipped, m.panicRoutes, m.homeUnavailable, m.updates, m.version, m.routeWeight} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

// obsKey identifies a cached child of the request duration histogram.
type obsKey struct {
	op   string
	code int
}

// observe records one request's duration under its operation and status,
// with the trace id as exemplar (label trace_id, as telemetry.ObserveWithTrace
// writes it) when the trace is sampled, so that the trace exists.
func (g *Gateway) observe(op string, code int, seconds float64, sc trace.SpanContext) {
	k := obsKey{op, code}
	g.obsMu.RLock()
	o, ok := g.obs[k]
	g.obsMu.RUnlock()
	if !ok {
		outcome := catalog.OutcomeOK
		if code >= 500 {
			outcome = catalog.OutcomeError
		}
		o = g.m.duration.WithLabelValues(g.cfg.Region, Service, op, strconv.Itoa(code), outcome)
		g.obsMu.Lock()
		g.obs[k] = o
		g.obsMu.Unlock()
	}
	if sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(seconds, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(seconds)
}
