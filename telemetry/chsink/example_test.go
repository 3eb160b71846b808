package chsink_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/telemetry"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// Example wires the pipeline into a process: the schema, the writers, the
// retention job, a logger and a tracer provider that write into ClickHouse.
// (Compiled, not run: it needs a ClickHouse server.)
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:9000"}, DialTimeout: 2 * time.Second})
	if err != nil {
		panic(err)
	}
	retention := 180 * 24 * time.Hour // spec.D(s.Logs.Retention)
	if _, err := chsink.Migrate(ctx, conn, chsink.SchemaOptions{Retention: retention}); err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	metrics, err := chsink.NewMetrics(reg)
	if err != nil {
		panic(err)
	}
	sink, err := chsink.NewSink(conn, chsink.Config{WAL: chsink.WALConfig{Dir: "/var/lib/carpoolsla/wal"}, Metrics: metrics})
	if err != nil {
		panic(err)
	}
	job, err := chsink.NewRetentionJob(conn, chsink.RetentionConfig{Retention: retention, Metrics: metrics})
	if err != nil {
		panic(err)
	}
	var g errgroup.Group
	g.Go(func() error { return sink.Run(ctx) })
	g.Go(func() error { return job.Run(ctx) })

	// Logs: either the direct handler...
	h, err := chsink.NewHandler(sink.Logs, chsink.HandlerOptions{Service: "order", Region: "eu"})
	if err != nil {
		panic(err)
	}
	log := slog.New(h)
	// ...or telemetry's logger with the ClickHouse sink.
	log2, err := telemetry.NewLogger(telemetry.LogConfig{Service: "order", Region: "eu", Sink: chsink.NewLogSink(sink.Logs)})
	if err != nil {
		panic(err)
	}
	// Spans.
	tp, shutdownTracing, err := telemetry.NewTracerProvider(telemetry.TracingConfig{
		Service: "order", Region: "eu", SampleRatio: 0.01, Exporter: chsink.NewSpanExporter(sink.Spans)})
	if err != nil {
		panic(err)
	}
	sctx, span := tp.Tracer("order").Start(ctx, "create ride")
	log.InfoContext(sctx, "ride created", "ride_id", "r1")
	log2.InfoContext(sctx, "ride created", "ride_id", "r1")
	span.End()
	// Events.
	_ = sink.Events.Write(chsink.SLAEvent{Kind: "breaker", Region: "eu", FromState: "closed", ToState: "open", Reason: "p99 > 300ms for 2m"})

	// Shut down: tracing first (it flushes spans into the writer), then the writers.
	_ = shutdownTracing(context.Background())
	stop()
	_ = g.Wait()
}
