package telemetry

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Propagator is the platform's one text-map propagator: W3C trace context
// (the traceparent and tracestate headers or message keys).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// NewTransport returns an http.RoundTripper that runs each request in a client
// span (kind client, named after the method, child of the span in the
// request's context) and injects the span's W3C trace context into a copy of
// the request's headers. A transport error or a status >= 400 marks the span
// as an error. The span ends when base returns, before the body is read.
// base nil means http.DefaultTransport; tp nil means no spans (the trace
// context of the request's context is still injected).
func NewTransport(base http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &transport{base: base}
	if tp != nil {
		t.tracer = tp.Tracer(instrumentationName)
	}
	return t
}

// transport is the http.RoundTripper NewTransport returns.
type transport struct {
	base   http.RoundTripper
	tracer trace.Tracer // nil: inject only
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	var span trace.Span
	if t.tracer != nil {
		ctx, span = t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindClient))
		if span.IsRecording() {
			span.SetAttributes(clientAttrs(r)...)
		}
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		if span != nil {
			span.End()
		}
		return t.base.RoundTrip(r)
	}
	// A RoundTripper must not modify the caller's request: inject into a copy.
	r2 := r.Clone(ctx)
	Propagator.Inject(ctx, propagation.HeaderCarrier(r2.Header))
	resp, err := t.base.RoundTrip(r2)
	if span != nil {
		if span.IsRecording() {
			endClientSpan(span, resp, err)
		}
		span.End()
	}
	return resp, err
}

// endClientSpan records a client span's result.
func endClientSpan(span trace.Span, resp *http.Response, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
		return
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
	}
}

// clientAttrs are a client span's start attributes. url.full leaves out the
// query and user info, which may hold secrets.
func clientAttrs(r *http.Request) []attribute.KeyValue {
	u := *r.URL
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.URLFull(u.String()),
		semconv.ServerAddress(r.URL.Hostname()),
	}
	if p, err := strconv.Atoi(r.URL.Port()); err == nil {
		attrs = append(attrs, semconv.ServerPort(p))
	}
	return attrs
}

// ServerMiddleware returns next run in a server span: it extracts the W3C
// trace context of the request's headers, starts a span of kind server
// ("METHOD route") with http.request.method, url.path, http.route and
// http.response.status_code, and marks a status >= 500 or a panic as an error.
// route is the route template ("POST /v1/rides"); "" means the pattern the
// http.ServeMux inside next matched, read after next returns (no route when
// next is not a ServeMux reached with this request). With a no-op provider a
// request without a traceparent costs one header lookup, and one with a
// traceparent passes its trace context through to next. The response writer
// handed to next keeps Flush, Hijack (WebSocket upgrades) and Unwrap.
func ServerMiddleware(tp trace.TracerProvider, route string, next http.Handler) http.Handler {
	if tp == nil {
		panic("telemetry.ServerMiddleware: nil TracerProvider; pass noop.NewTracerProvider() to turn tracing off")
	}
	fields := slices.Clone(Propagator.Fields())
	for i, f := range fields {
		fields[i] = http.CanonicalHeaderKey(f)
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !hasAny(r.Header, fields) {
				next.ServeHTTP(w, r) // nothing to carry: no allocation
				return
			}
			next.ServeHTTP(w, r.WithContext(Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))))
		})
	}
	tracer := tp.Tracer(instrumentationName)
	names := map[string]string{} // span names of the common methods, built once
	if route != "" {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
			names[m] = m + " " + route
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if hasAny(r.Header, fields) {
			ctx = Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
		name := r.Method
		if route != "" {
			if n, ok := names[r.Method]; ok {
				name = n
			} else {
				name = r.Method + " " + route
			}
		}
		// The sampler reads no attributes: set them only on recording spans.
		ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
		if !span.IsRecording() {
			span.End()
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path))
		if route != "" {
			span.SetAttributes(semconv.HTTPRoute(route))
		}
		sw := NewStatusRecorder(w)
		r2 := r.WithContext(ctx)
		defer func() {
			if p := recover(); p != nil {
				err := errors.New("handler panicked")
				if pe, ok := p.(error); ok {
					err = pe
				}
				span.RecordError(err)
				span.SetStatus(codes.Error, "panic")
				span.End()
				panic(p)
			}
			endServerSpan(span, r2, route, sw.Status())
		}()
		next.ServeHTTP(sw, r2)
	})
}

// hasAny reports whether h holds one of the canonical keys.
func hasAny(h http.Header, keys []string) bool {
	for _, k := range keys {
		if len(h[k]) > 0 {
			return true
		}
	}
	return false
}

// endServerSpan sets the span's result attributes and ends it.
func endServerSpan(span trace.Span, r *http.Request, route string, code int) {
	if route == "" && r.Pattern != "" {
		span.SetName(patternName(r.Method, r.Pattern))
		span.SetAttributes(semconv.HTTPRoute(r.Pattern))
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(code))
	if code >= 500 {
		span.SetStatus(codes.Error, http.StatusText(code))
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(code)))
	}
	span.End()
}

// patternName is the span name of a ServeMux pattern: "POST /v1/rides" as is,
// a method-less "/v1/rides" prefixed with the request's method.
func patternName(method, pattern string) string {
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case ' ':
			return pattern
		case '/':
			return method + " " + pattern
		}
	}
	return method + " " + pattern
}

// InjectMap returns the W3C trace context of ctx as message keys
// ("traceparent", "tracestate"), to put in a WebSocket JSON message or a
// replication event; nil when ctx carries no valid span context, so an
// `omitempty` field costs nothing when tracing is off.
func InjectMap(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	m := make(map[string]string, 2)
	Propagator.Inject(ctx, propagation.MapCarrier(m))
	return m
}

// ExtractMap returns ctx carrying the remote span context of a message's keys
// (written by InjectMap); ctx unchanged when m carries none or a malformed one.
func ExtractMap(ctx context.Context, m map[string]string) context.Context {
	if len(m) == 0 {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier(m))
}

// StartProducerSpan starts a span of kind producer for a message about to be
// sent and returns the trace context to put in the message (InjectMap of the
// new span). End the span once the message is handed over.
func StartProducerSpan(ctx context.Context, tp trace.TracerProvider, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span, map[string]string) {
	ctx, span := tp.Tracer(instrumentationName).Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	return ctx, span, InjectMap(ctx)
}

// StartConsumerSpan starts a span of kind consumer for a received message whose
// trace context is m, as a child of the message's producer span (a new root
// when m carries none).
func StartConsumerSpan(ctx context.Context, tp trace.TracerProvider, name string, m map[string]string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tp.Tracer(instrumentationName).Start(ExtractMap(ctx, m), name,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}
