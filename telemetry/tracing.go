package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// instrumentationName names the tracer this package's helpers use.
const instrumentationName = "github.com/carpoolsla/carpoolsla/telemetry"

// AttrRegion is the resource (and log) attribute that names a process's region.
const AttrRegion = attribute.Key("region")

// TracingConfig configures a process's OpenTelemetry tracing. Service and
// Region are required; every other field has a default.
type TracingConfig struct {
	// Service is the resource's service.name ("order", "gateway").
	Service string
	// Region is the resource's region (and cloud.region) attribute.
	Region string
	// InstanceID is service.instance.id; default: 16 random hex digits, so that
	// several services and regions in one process stay apart.
	InstanceID string

	// SampleRatio is the share of new traces sampled, in [0, 1]; a span with
	// a parent follows its parent's decision (ParentBased). 0 turns tracing off:
	// NewTracerProvider returns a no-op provider, which costs nothing on the hot
	// path and still passes an incoming trace context through.
	SampleRatio float64

	// OTLPEndpoint, when set, receives spans over OTLP/HTTP (protobuf, gzip).
	// "host:port" means plain HTTP to http://host:port/v1/traces; a URL
	// ("https://collector:4318", "http://h:4318/custom/path") sets the scheme and,
	// when it has one, the path.
	OTLPEndpoint string
	// Exporter, when set, receives the spans instead of the OTLP exporter
	// (tests pass a RingExporter; the ClickHouse exporter plugs in here). The
	// provider owns it: the shutdown function shuts it down. Without Exporter
	// and OTLPEndpoint spans are discarded (DiscardExporter).
	Exporter sdktrace.SpanExporter

	// BatchTimeout is the longest a finished span waits in the batch span
	// processor before it is exported; default 5s (the SDK's).
	BatchTimeout time.Duration
	// ExportTimeout bounds one export call; default 10s.
	ExportTimeout time.Duration
	// MaxQueueSize is how many finished spans the batch processor holds; when
	// full, new spans are dropped rather than blocking the caller. Default 2048.
	MaxQueueSize int
	// MaxExportBatchSize is the most spans per export; default 512, at most
	// MaxQueueSize.
	MaxExportBatchSize int
}

// TracingConfigFromSpec returns the tracing configuration of one service in
// one region from the spec's tracing section.
func TracingConfigFromSpec(t spec.Tracing, service, region string) TracingConfig {
	return TracingConfig{Service: service, Region: region, SampleRatio: t.SampleRatio, OTLPEndpoint: t.OTLPEndpoint}
}

// defaults fills in the zero fields.
func (c *TracingConfig) defaults() {
	if c.InstanceID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
		c.InstanceID = hex.EncodeToString(b[:])
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 5 * time.Second
	}
	if c.ExportTimeout == 0 {
		c.ExportTimeout = 10 * time.Second
	}
	if c.MaxQueueSize == 0 {
		c.MaxQueueSize = 2048
	}
	if c.MaxExportBatchSize == 0 {
		c.MaxExportBatchSize = min(512, c.MaxQueueSize)
	}
}

// Validate checks the configuration's fields, and against each other.
func (c TracingConfig) Validate() error {
	var errs []error
	if c.Service == "" {
		errs = append(errs, errors.New("tracing: service is empty; name the service (service.name)"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("tracing: region is empty; name the region the process runs in"))
	}
	if math.IsNaN(c.SampleRatio) || c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("tracing: sampleRatio %v is outside [0, 1]; use 0 to turn tracing off, 1 to sample every trace", c.SampleRatio))
	}
	if c.OTLPEndpoint != "" {
		if _, err := parseOTLPEndpoint(c.OTLPEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("tracing: otlpEndpoint: %w", err))
		}
	}
	if c.BatchTimeout < 0 || c.ExportTimeout < 0 {
		errs = append(errs, errors.New("tracing: batch and export timeouts must not be negative"))
	}
	if c.MaxQueueSize < 0 || c.MaxExportBatchSize < 0 {
		errs = append(errs, errors.New("tracing: queue and batch sizes must not be negative"))
	}
	if c.MaxQueueSize > 0 && c.MaxExportBatchSize > c.MaxQueueSize {
		errs = append(errs, fmt.Errorf("tracing: maxExportBatchSize %d is larger than maxQueueSize %d", c.MaxExportBatchSize, c.MaxQueueSize))
	}
	return errors.Join(errs...)
}

// NewTracerProvider builds the process's tracer provider: the SDK with the
// service's resource, a ParentBased(TraceIDRatioBased(SampleRatio)) sampler and
// a batch span processor in front of the span exporter (Exporter, else OTLP/HTTP
// when OTLPEndpoint is set, else discard). With SampleRatio 0 it returns a
// no-op provider. The returned shutdown flushes the spans still queued and
// shuts the exporter down; call it once, with a deadline, when the process stops.
func NewTracerProvider(cfg TracingConfig) (trace.TracerProvider, func(context.Context) error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg.defaults()
	exp := cfg.Exporter
	if cfg.SampleRatio == 0 {
		shutdown := func(ctx context.Context) error {
			if exp == nil {
				return nil
			}
			return exp.Shutdown(ctx)
		}
		return noop.NewTracerProvider(), shutdown, nil
	}
	if exp == nil && cfg.OTLPEndpoint != "" {
		var err error
		exp, err = NewOTLPHTTPExporter(context.Background(), cfg.OTLPEndpoint, cfg.ExportTimeout)
		if err != nil {
			return nil, nil, fmt.Errorf("building the tracer provider of %s in %s: %w", cfg.Service, cfg.Region, err)
		}
	}
	if exp == nil {
		exp = DiscardExporter{}
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.Service),
		semconv.ServiceInstanceID(cfg.InstanceID),
		AttrRegion.String(cfg.Region),
		semconv.CloudRegion(cfg.Region),
	))
	if err != nil {
		return nil, nil, fmt.Errorf("building the trace resource of %s in %s: %w", cfg.Service, cfg.Region, err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithBatcher(exp,
			sdktrace.WithBatchTimeout(cfg.BatchTimeout),
			sdktrace.WithExportTimeout(cfg.ExportTimeout),
			sdktrace.WithMaxQueueSize(cfg.MaxQueueSize),
			sdktrace.WithMaxExportBatchSize(cfg.MaxExportBatchSize),
		),
	)
	shutdown := func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("shutting down the tracer provider of %s in %s: %w", cfg.Service, cfg.Region, err)
		}
		return nil
	}
	return tp, shutdown, nil
}

// DiscardExporter is an sdktrace.SpanExporter that drops every span: the
// default when no endpoint is configured, and the benchmarks' exporter.
type DiscardExporter struct{}

// ExportSpans implements sdktrace.SpanExporter.
func (DiscardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }

// Shutdown implements sdktrace.SpanExporter.
func (DiscardExporter) Shutdown(context.Context) error { return nil }
