package order

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// BenchmarkCreateRide measures ride creation through the HTTP handler
// (httptest, in-process fakes for pricing, ids, the driver index; the
// in-memory store; dispatch workers running, so each create waits for its
// match as in production). Modes:
//   - full: metrics with exemplars, an SDK TracerProvider sampling every
//     trace (ratio 1) with a batch processor and a no-op exporter;
//   - sampled1pct: as full, but sampling 1 % of traces (no incoming
//     traceparent, so the ratio sampler decides);
//   - metrics: metrics only (no-op tracer);
//   - off: DisableInstrumentation.
//
// The overhead ratio is full/off - 1 (docs/services/order.md).
func BenchmarkCreateRide(b *testing.B) {
	modes := []struct {
		name    string
		off     bool
		ratio   float64 // 0: no tracing
		noTrace bool    // send no traceparent
	}{
		{"full", false, 1, false},
		{"sampled1pct", false, 0.01, true},
		{"metrics", false, 0, false},
		{"off", true, 0, false},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			var tp trace.TracerProvider
			if m.ratio > 0 {
				sdk := sdktrace.NewTracerProvider(
					sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(m.ratio))),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()),
				)
				b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
				tp = sdk
			}
			svc, err := New(Config{
				Region: "sh-a", Registerer: prometheus.NewRegistry(), TracerProvider: tp,
				Logger:                 slog.New(slog.NewJSONHandler(io.Discard, nil)),
				DisableInstrumentation: m.off,
			}, Deps{IDs: &fakeIDs{}, Quoter: &fakeQuoter{}, Drivers: &fakeDrivers{}, Payer: &fakePayer{}})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			b.Cleanup(func() { cancel(); <-done })
			waitFor(b, "Run to start", svc.running.Load)
			h := svc.Handler()

			b.ReportAllocs()
			cpu0 := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest("POST", "/v1/rides", strings.NewReader(rideBody))
					r.Header.Set("Content-Type", "application/json")
					if !m.noTrace {
						r.Header.Set("traceparent", traceparent)
					}
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					if w.Code != 201 {
						b.Fatalf("create: %d %s", w.Code, w.Body)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rides/s")
			// CPU time of the whole process (handler, dispatch workers, GC,
			// the span processor) per ride: steadier than wall time on a
			// shared machine.
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU returns the user and system CPU time the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
