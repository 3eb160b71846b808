package pricing

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
)

// recorder returns a tracer provider that keeps every span it ends.
func recorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

func serverSpans(rec *tracetest.SpanRecorder) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindServer {
			out = append(out, s)
		}
	}
	return out
}

func TestTraceparentInMetadataParentsTheServerSpan(t *testing.T) {
	tp, rec := recorder(t)
	_, _, client := bufServer(t, Config{TracerProvider: tp})
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", "00-"+callerTraceID+"-"+callerSpanID+"-01")
	if _, err := client.Quote(ctx, ride("r1")); err != nil {
		t.Fatal(err)
	}
	spans := serverSpans(rec)
	if len(spans) != 1 {
		t.Fatalf("%d server spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "carpool.pricing.v1.Pricing/Quote" || !s.Parent().IsRemote() ||
		s.Parent().TraceID().String() != callerTraceID || s.Parent().SpanID().String() != callerSpanID ||
		s.SpanContext().TraceID().String() != callerTraceID {
		t.Fatalf("server span %q parent %v (remote %v), trace %v", s.Name(), s.Parent().SpanID(), s.Parent().IsRemote(), s.SpanContext().TraceID())
	}
}

func TestTraceContextFlowsThroughANoopServer(t *testing.T) {
	// With no tracer provider the server still continues the caller's
	// context: the latency histogram's exemplar carries its trace id.
	_, reg, client := bufServer(t, Config{})
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", "00-"+callerTraceID+"-"+callerSpanID+"-01")
	if _, err := client.Quote(ctx, ride("r1")); err != nil {
		t.Fatal(err)
	}
	if got := exemplarTraceIDs(t, reg); len(got) != 1 || got[0] != callerTraceID {
		t.Fatalf("exemplar trace ids %v, want [%s]", got, callerTraceID)
	}
}

func exemplarTraceIDs(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	var ids []string
	for _, m := range findFamily(t, reg, catalog.RequestDuration.Name).GetMetric() {
		for _, b := range m.GetHistogram().GetBucket() {
			if ex := b.GetExemplar(); ex != nil {
				for _, l := range ex.GetLabel() {
					if l.GetName() == "trace_id" {
						ids = append(ids, l.GetValue())
					}
				}
			}
		}
	}
	return ids
}

func TestPoolPropagatesTheCallersTrace(t *testing.T) {
	serverTP, serverRec := recorder(t)
	clientTP, clientRec := recorder(t)
	s, _ := startServer(t, Config{TracerProvider: serverTP})
	pool := newTestPool(t, PoolConfig{Targets: []string{s.Addr()}, TracerProvider: clientTP})

	ctx, parent := clientTP.Tracer("test").Start(callCtx(t), "create ride")
	if _, err := pool.Quote(ctx, ride("r1")); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var client sdktrace.ReadOnlySpan
	for _, sp := range clientRec.Ended() {
		if sp.SpanKind() == trace.SpanKindClient {
			client = sp
		}
	}
	if client == nil || client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("client span %v is not a child of the caller's span", client)
	}
	spans := serverSpans(serverRec)
	if len(spans) != 1 {
		t.Fatalf("%d server spans, want 1", len(spans))
	}
	srv := spans[0]
	if srv.SpanContext().TraceID() != parent.SpanContext().TraceID() || srv.Parent().SpanID() != client.SpanContext().SpanID() {
		t.Fatalf("server span trace %v parent %v; want trace %v parent %v", srv.SpanContext().TraceID(), srv.Parent().SpanID(),
			parent.SpanContext().TraceID(), client.SpanContext().SpanID())
	}
}

func TestPoolSendsNoTraceparentWithoutATrace(t *testing.T) {
	tp, rec := recorder(t)
	s, _ := startServer(t, Config{TracerProvider: tp})
	pool := newTestPool(t, PoolConfig{Targets: []string{s.Addr()}})
	if _, err := pool.Quote(callCtx(t), ride("r1")); err != nil {
		t.Fatal(err)
	}
	spans := serverSpans(rec)
	if len(spans) != 1 || spans[0].Parent().IsValid() {
		t.Fatalf("server span has a parent without a caller trace: %v", spans)
	}
}
