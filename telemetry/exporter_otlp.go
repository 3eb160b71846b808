package telemetry

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpTarget is a parsed OTLP/HTTP endpoint.
type otlpTarget struct {
	host     string // host:port
	path     string // URL path, default /v1/traces
	insecure bool   // plain HTTP
}

// parseOTLPEndpoint reads "host:port" (plain HTTP, /v1/traces) or an http(s)
// URL whose path, when present, replaces /v1/traces.
func parseOTLPEndpoint(s string) (otlpTarget, error) {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return otlpTarget{}, fmt.Errorf("%q is neither host:port nor an http(s) URL: %w", s, err)
		}
		return otlpTarget{host: s, path: "/v1/traces", insecure: true}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return otlpTarget{}, fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return otlpTarget{}, fmt.Errorf("%q: scheme %q is not http or https", s, u.Scheme)
	}
	if u.Host == "" {
		return otlpTarget{}, fmt.Errorf("%q has no host", s)
	}
	t := otlpTarget{host: u.Host, path: u.Path, insecure: u.Scheme == "http"}
	if t.path == "" || t.path == "/" {
		t.path = "/v1/traces"
	}
	return t, nil
}

// NewOTLPHTTPExporter returns an sdktrace.SpanExporter that posts spans as
// gzip-compressed OTLP protobuf to endpoint (see TracingConfig.OTLPEndpoint).
// timeout bounds one export, retries included (0 means 10s). It opens no
// connection until the first export.
func NewOTLPHTTPExporter(ctx context.Context, endpoint string, timeout time.Duration) (sdktrace.SpanExporter, error) {
	t, err := parseOTLPEndpoint(endpoint)
	if err != nil {
		return nil, fmt.Errorf("configuring the OTLP/HTTP span exporter: %w", err)
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(t.host),
		otlptracehttp.WithURLPath(t.path),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
		otlptracehttp.WithTimeout(timeout),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
			Enabled:         true,
			InitialInterval: 500 * time.Millisecond,
			MaxInterval:     2 * time.Second,
			MaxElapsedTime:  timeout,
		}),
	}
	if t.insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("starting the OTLP/HTTP span exporter for %s: %w", endpoint, err)
	}
	return exp, nil
}
