package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// benchProvider builds the provider of a benchmark, exporting to
// DiscardExporter through the batch span processor.
func benchProvider(b *testing.B, ratio float64) trace.TracerProvider {
	b.Helper()
	tp, shutdown, err := NewTracerProvider(TracingConfig{Service: "bench", Region: "eu", SampleRatio: ratio, Exporter: DiscardExporter{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = shutdown(ctx)
	})
	return tp
}

var benchRatios = []struct {
	name  string
	ratio float64
}{
	{"ratio=1_batch_discard", 1},
	{"ratio=0.01_parent_based", 0.01},
	{"ratio=0_noop", 0},
}

// BenchmarkSpanStartEnd measures a root span's start and end.
func BenchmarkSpanStartEnd(b *testing.B) {
	for _, r := range benchRatios {
		b.Run(r.name, func(b *testing.B) {
			tr := benchProvider(b, r.ratio).Tracer("bench")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, span := tr.Start(ctx, "op")
				span.End()
			}
		})
	}
}

// BenchmarkServerMiddleware measures one request through ServerMiddleware
// against the bare handler, with an httptest recorder.
func BenchmarkServerMiddleware(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	req := httptest.NewRequest(http.MethodPost, "/v1/rides", nil)
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	b.Run("bare_handler", func(b *testing.B) { run(b, ok) })
	for _, r := range benchRatios {
		b.Run(r.name, func(b *testing.B) { run(b, ServerMiddleware(benchProvider(b, r.ratio), "/v1/rides", ok)) })
	}
}

// BenchmarkInjectExtractMap measures carrying a sampled span's context
// through a message.
func BenchmarkInjectExtractMap(b *testing.B) {
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remoteParent(b, true))
	b.ReportAllocs()
	for b.Loop() {
		m := InjectMap(ctx)
		_ = ExtractMap(context.Background(), m)
	}
}
