package pricing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/pricing/pricingpb"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Outcome is the outcome label of a call that ended with code: error for a
// server-side failure (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, UNKNOWN,
// RESOURCE_EXHAUSTED, UNIMPLEMENTED, DATA_LOSS), ok otherwise, a client's
// mistake (INVALID_ARGUMENT, NOT_FOUND, ...) or cancellation included.
func Outcome(code codes.Code) string {
	switch code {
	case codes.Unknown, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Unimplemented,
		codes.Internal, codes.Unavailable, codes.DataLoss:
		return catalog.OutcomeError
	}
	return catalog.OutcomeOK
}

// operations maps the full gRPC method names to the operation label.
var operations = map[string]string{
	pricingpb.Pricing_Quote_FullMethodName: "quote",
}

// operationOf returns the operation label of a full method name: the known
// ones from operations, else the lower-cased method.
func operationOf(fullMethod string) string {
	if op, ok := operations[fullMethod]; ok {
		return op
	}
	return strings.ToLower(fullMethod[strings.LastIndexByte(fullMethod, '/')+1:])
}

// serverMetrics are the pricing server's collectors, with the request
// duration children cached per (operation, code).
type serverMetrics struct {
	region   string
	duration *prometheus.HistogramVec
	surge    prometheus.Observer
	conns    prometheus.Gauge
	children sync.Map // childKey -> prometheus.Observer
}

type childKey struct {
	op   string
	code codes.Code
}

func newServerMetrics(region string, reg prometheus.Registerer) (*serverMetrics, error) {
	duration, err := register(reg, telemetry.NewHistogramVec(catalog.RequestDuration))
	if err != nil {
		return nil, err
	}
	surge, err := register(reg, telemetry.NewHistogramVec(catalog.PricingSurge))
	if err != nil {
		return nil, err
	}
	conns, err := register(reg, telemetry.NewGaugeVec(catalog.PricingServerConnections))
	if err != nil {
		return nil, err
	}
	m := &serverMetrics{
		region: region, duration: duration,
		surge: surge.WithLabelValues(region),
		conns: conns.WithLabelValues(region),
	}
	// Warm the children of the common outcomes so the first calls do not
	// pay for the label lookup.
	for _, c := range []codes.Code{codes.OK, codes.InvalidArgument, codes.Unavailable, codes.DeadlineExceeded} {
		m.observer("quote", c)
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same description so that services of one region can share a
// registry. A nil reg registers nothing.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("registering metrics: %w", err)
	}
	return c, nil
}

func (m *serverMetrics) observer(op string, code codes.Code) prometheus.Observer {
	k := childKey{op, code}
	if o, ok := m.children.Load(k); ok {
		return o.(prometheus.Observer)
	}
	o := m.duration.WithLabelValues(m.region, ServiceName, op, code.String(), Outcome(code))
	m.children.Store(k, o)
	return o
}

// observe records one call; a sampled trace leaves its id as an exemplar.
func (m *serverMetrics) observe(ctx context.Context, op string, code codes.Code, d time.Duration) {
	o := m.observer(op, code)
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(d.Seconds())
}

// traceInterceptor continues the caller's W3C trace context from the
// incoming metadata and wraps the call in a server span.
func (s *Server) traceInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		ctx = s.prop.Extract(ctx, metadataCarrier(md))
	}
	attrs := s.quoteSpanAttrs
	if info.FullMethod != pricingpb.Pricing_Quote_FullMethodName {
		attrs = append(rpcAttributes(info.FullMethod), attribute.String("carpool.region", s.cfg.Region))
	}
	ctx, span := s.tracer.Start(ctx, strings.TrimPrefix(info.FullMethod, "/"),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	defer span.End()
	resp, err := next(ctx, req)
	endSpan(span, err)
	return resp, err
}

// metricsInterceptor records carpool_request_duration_seconds for every
// call, faulted ones included.
func (s *Server) metricsInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := next(ctx, req)
	code := status.Code(err)
	s.metrics.observe(ctx, operationOf(info.FullMethod), code, time.Since(start))
	if code == codes.Internal || code == codes.Unknown {
		s.log.ErrorContext(ctx, "pricing call failed", "method", info.FullMethod, "err", err)
	}
	return resp, err
}

// faultsInterceptor applies the region's injected faults before the
// handler runs: added latency, then UNAVAILABLE for an injected error or a
// region that is down.
func (s *Server) faultsInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if err := s.cfg.Faults.Apply(ctx, ServiceName); err != nil {
		return nil, faultStatus(err)
	}
	return next(ctx, req)
}

// faultStatus turns an error of faults.Injector.Apply into a gRPC status.
func faultStatus(err error) error {
	switch {
	case errors.Is(err, faults.ErrRegionDown):
		return status.Error(codes.Unavailable, "pricing: region down (injected fault)")
	case errors.Is(err, faults.ErrInjected):
		return status.Error(codes.Unavailable, "pricing: injected error")
	}
	return status.FromContextError(err).Err()
}

// rpcAttributes are the OpenTelemetry RPC semantic-convention attributes of
// a full method name.
func rpcAttributes(fullMethod string) []attribute.KeyValue {
	svc, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return []attribute.KeyValue{
		attribute.String("rpc.system", "grpc"),
		attribute.String("rpc.service", svc),
		attribute.String("rpc.method", method),
	}
}

// endSpan records a call's gRPC status on its span; server-side failures
// mark the span as an error.
func endSpan(span trace.Span, err error) {
	code := status.Code(err)
	span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
	if Outcome(code) == catalog.OutcomeError {
		span.SetStatus(otelcodes.Error, status.Convert(err).Message())
	}
}

// metadataCarrier adapts gRPC metadata to propagation.TextMapCarrier, so
// that propagation.TraceContext{} reads and writes traceparent and
// tracestate in it.
type metadataCarrier metadata.MD

// Get implements propagation.TextMapCarrier.
func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set implements propagation.TextMapCarrier.
func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

// Keys implements propagation.TextMapCarrier.
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
