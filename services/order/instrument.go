package order

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Service names on carpool_request_duration_seconds.
const (
	serviceOrder    = "order"
	serviceDispatch = "dispatch"
	// opMatchDriver is the dispatch operation (one match attempt).
	opMatchDriver = "match_driver"
)

const instrumentationName = "github.com/carpoolsla/carpoolsla/services/order"

// observer is a cached histogram child; ex is set when it takes exemplars.
type observer struct {
	o  prometheus.Observer
	ex prometheus.ExemplarObserver
}

func newObserver(o prometheus.Observer) *observer {
	ex, _ := o.(prometheus.ExemplarObserver)
	return &observer{o: o, ex: ex}
}

// minCode..maxCode is the range of HTTP status codes the cache covers.
const (
	minCode = 100
	maxCode = 599
)

// instruments holds the service's metrics (children cached), its tracer and
// its logger. When on is false nothing is measured or traced.
type instruments struct {
	on bool
	// tracing is on with a TracerProvider configured; without one no span
	// is started and no trace context extracted.
	tracing bool
	region  string
	log     *slog.Logger
	tracer  trace.Tracer
	prop    propagation.TraceContext

	reqDur *prometheus.HistogramVec
	// httpObs caches children by operation and status code, filled on
	// first use.
	httpObs [numOps][maxCode - minCode + 1]atomic.Pointer[observer]
	// matchObs: matched (200), no driver (404), failed (503).
	matchOK, matchNone, matchErr *observer

	created       prometheus.Counter
	transitions   map[lifecycle.Edge]prometheus.Counter
	rejected      prometheus.Counter
	abandoned     prometheus.Counter
	refunded      prometheus.Counter
	refundFailed  prometheus.Counter
	queued        prometheus.Gauge
	activeActors  prometheus.Gauge
	transitionsVC *prometheus.CounterVec
}

func newInstruments(cfg Config) (*instruments, error) {
	in := &instruments{on: !cfg.DisableInstrumentation, region: cfg.Region}
	in.tracing = in.on && cfg.TracerProvider != nil
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	in.log = logger.With(catalog.LabelRegion, cfg.Region, catalog.LabelService, serviceOrder)
	tp := cfg.TracerProvider
	if !in.tracing {
		tp = noop.NewTracerProvider()
	}
	in.tracer = tp.Tracer(instrumentationName)

	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	in.reqDur = telemetry.NewHistogramVec(catalog.RequestDuration)
	created := telemetry.NewCounterVec(catalog.OrdersCreated)
	in.transitionsVC = telemetry.NewCounterVec(catalog.OrderTransitions)
	rejected := telemetry.NewCounterVec(catalog.DispatchRejected)
	abandoned := telemetry.NewCounterVec(catalog.DispatchAbandoned)
	comp := telemetry.NewCounterVec(catalog.OrderPaymentCompensations)
	queued := telemetry.NewGaugeVec(catalog.DispatchQueued)
	actors := telemetry.NewGaugeVec(catalog.OrderActiveActors)
	for _, c := range []prometheus.Collector{in.reqDur, created, in.transitionsVC, rejected, abandoned, comp, queued, actors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the order service's metrics: %w", err)
		}
	}
	r := cfg.Region
	in.created = created.WithLabelValues(r)
	in.transitions = map[lifecycle.Edge]prometheus.Counter{}
	for _, e := range lifecycle.Edges() {
		in.transitions[e] = in.transitionsVC.WithLabelValues(r, string(e.From), string(e.To))
	}
	in.rejected = rejected.WithLabelValues(r)
	in.abandoned = abandoned.WithLabelValues(r)
	in.refunded = comp.WithLabelValues(r, catalog.CompensationRefunded)
	in.refundFailed = comp.WithLabelValues(r, catalog.CompensationRefundFailed)
	in.queued = queued.WithLabelValues(r)
	in.activeActors = actors.WithLabelValues(r)
	in.matchOK = newObserver(in.reqDur.WithLabelValues(r, serviceDispatch, opMatchDriver, "200", catalog.OutcomeOK))
	in.matchNone = newObserver(in.reqDur.WithLabelValues(r, serviceDispatch, opMatchDriver, "404", catalog.OutcomeOK))
	in.matchErr = newObserver(in.reqDur.WithLabelValues(r, serviceDispatch, opMatchDriver, "503", catalog.OutcomeError))
	return in, nil
}

// httpObserver returns the cached child for an operation and status code.
func (in *instruments) httpObserver(o op, code int) *observer {
	if code < minCode || code > maxCode {
		code = 500
	}
	slot := &in.httpObs[o][code-minCode]
	if obs := slot.Load(); obs != nil {
		return obs
	}
	outcome := catalog.OutcomeOK
	if code >= 500 {
		outcome = catalog.OutcomeError
	}
	obs := newObserver(in.reqDur.WithLabelValues(in.region, serviceOrder, opNames[o], strconv.Itoa(code), outcome))
	slot.Store(obs)
	return obs
}

// observe records seconds on obs, with the trace id as an exemplar when
// span is recording. Call it before ending the span.
func (in *instruments) observe(obs *observer, seconds float64, span trace.Span) {
	if obs.ex != nil && span.IsRecording() {
		if sc := span.SpanContext(); sc.HasTraceID() {
			obs.ex.ObserveWithExemplar(seconds, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	obs.o.Observe(seconds)
}

// transition counts one applied transition.
func (in *instruments) transition(from, to lifecycle.State) {
	if !in.on {
		return
	}
	if c, ok := in.transitions[lifecycle.Edge{From: from, To: to}]; ok {
		c.Inc()
		return
	}
	// Not an edge of the machine: Plan never yields one, so this is a
	// programming error; count it rather than hide it.
	in.transitionsVC.WithLabelValues(in.region, string(from), string(to)).Inc()
}

func (in *instruments) inc(c prometheus.Counter) {
	if in.on {
		c.Inc()
	}
}

func (in *instruments) add(g prometheus.Gauge, v float64) {
	if in.on {
		g.Add(v)
	}
}

var nopSpan trace.Span = noop.Span{}

// Span start options built once (an option built per call allocates).
var (
	clientSpan   = trace.WithSpanKind(trace.SpanKindClient)
	internalSpan = trace.WithSpanKind(trace.SpanKindInternal)
	serverSpan   = trace.WithSpanKind(trace.SpanKindServer)
)

// span starts a span for a dependency call or a background step. Without
// tracing, or under a parent that is not sampled, it returns ctx unchanged
// and a span that does nothing: the platform's sampler is parent-based, so
// such a child would not be recorded anyway, and skipping it keeps an
// unsampled request nearly free.
func (in *instruments) span(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !in.tracing {
		return ctx, nopSpan
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.IsSampled() {
		return ctx, nopSpan
	}
	return in.tracer.Start(ctx, name, opts...)
}

// endSpan records err on span (if any) and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// logf logs with the trace_id and span_id of ctx's span, if any.
func (in *instruments) logf(ctx context.Context, level slog.Level, msg string, args ...any) {
	if !in.log.Enabled(ctx, level) {
		return
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		args = append(args, "trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
	}
	in.log.Log(ctx, level, msg, args...)
}
