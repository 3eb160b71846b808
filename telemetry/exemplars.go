package telemetry

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// ExemplarTraceID is the exemplar label that carries a trace id.
const ExemplarTraceID = "trace_id"

// ObserveWithTrace observes v on obs with the exemplar {trace_id="<id>"} when
// the span in ctx is sampled (so the trace exists in the backend) and obs
// takes exemplars, and observes it plainly otherwise. Exemplars reach a scrape
// only in the OpenMetrics format: serve the registry with
// promhttp.HandlerOpts{EnableOpenMetrics: true}.
func ObserveWithTrace(ctx context.Context, obs prometheus.Observer, v float64) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if eo, ok := obs.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{ExemplarTraceID: sc.TraceID().String()})
			return
		}
	}
	obs.Observe(v)
}

// AddWithTrace adds v to c with a trace_id exemplar when the span in ctx is
// sampled and c takes exemplars, and adds it plainly otherwise (see
// ObserveWithTrace).
func AddWithTrace(ctx context.Context, c prometheus.Counter, v float64) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if ea, ok := c.(prometheus.ExemplarAdder); ok {
			ea.AddWithExemplar(v, prometheus.Labels{ExemplarTraceID: sc.TraceID().String()})
			return
		}
	}
	c.Add(v)
}
