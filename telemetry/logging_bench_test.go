package telemetry

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// BenchmarkLogger measures one InfoContext call with three attributes inside
// a span, through NewLogger to a sink writing to io.Discard, against
// slog.JSONHandler and NewContextHandler over it.
func BenchmarkLogger(b *testing.B) {
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remoteParent(b, true))
	ours, err := NewLogger(LogConfig{Service: "order", Region: "eu", Sink: NewWriterSink(io.Discard)})
	if err != nil {
		b.Fatal(err)
	}
	loggers := map[string]*slog.Logger{
		"NewLogger_in_span":        ours,
		"slog_JSONHandler_no_ids":  slog.New(slog.NewJSONHandler(io.Discard, nil)).With("service", "order", "region", "eu"),
		"ContextHandler_over_JSON": slog.New(NewContextHandler(slog.NewJSONHandler(io.Discard, nil), "order", "eu")),
	}
	for name, l := range loggers {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l.InfoContext(ctx, "ride created", "ride_id", "r-123", "rider", "u-9", "price_cents", 1250)
			}
		})
	}
	b.Run("NewLogger_below_level", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ours.DebugContext(ctx, "ride created", "ride_id", "r-123")
		}
	})
}

// BenchmarkObserveWithTrace measures a cached histogram child's observation
// with and without a sampled span.
func BenchmarkObserveWithTrace(b *testing.B) {
	h := NewHistogramVec(catalog.RequestDuration).WithLabelValues("eu", "order", "create", "201", "ok")
	cases := map[string]context.Context{
		"sampled_span_exemplar": trace.ContextWithRemoteSpanContext(context.Background(), remoteParent(b, true)),
		"no_span_plain":         context.Background(),
	}
	for name, ctx := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ObserveWithTrace(ctx, h, 0.042)
			}
		})
	}
	b.Run("plain_Observe", func(b *testing.B) {
		var o prometheus.Observer = h
		b.ReportAllocs()
		for b.Loop() {
			o.Observe(0.042)
		}
	})
}
