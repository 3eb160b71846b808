package telemetry

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// newTestProvider returns an SDK provider exporting into a ring; the cleanup
// shuts it down.
func newTestProvider(t testing.TB, service, region string, ratio float64) (trace.TracerProvider, *RingExporter, func()) {
	t.Helper()
	ring := NewRingExporter(0)
	tp, shutdown, err := NewTracerProvider(TracingConfig{Service: service, Region: region, SampleRatio: ratio, Exporter: ring})
	if err != nil {
		t.Fatal(err)
	}
	flush := func() {
		if f, ok := tp.(interface{ ForceFlush(context.Context) error }); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := f.ForceFlush(ctx); err != nil {
				t.Fatalf("flushing spans: %v", err)
			}
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return tp, ring, flush
}

func TestTracingConfigValidate(t *testing.T) {
	ok := TracingConfig{Service: "order", Region: "eu", SampleRatio: 0.5}
	cases := map[string]struct {
		mut  func(*TracingConfig)
		want string // "" = valid
	}{
		"A config naming service and region with a ratio in [0,1] is valid.": {func(*TracingConfig) {}, ""},
		"A missing service is refused.":                                      {func(c *TracingConfig) { c.Service = "" }, "service is empty"},
		"A missing region is refused.":                                       {func(c *TracingConfig) { c.Region = "" }, "region is empty"},
		"A negative ratio is refused.":                                       {func(c *TracingConfig) { c.SampleRatio = -0.1 }, "outside [0, 1]"},
		"A ratio above one is refused.":                                      {func(c *TracingConfig) { c.SampleRatio = 1.5 }, "outside [0, 1]"},
		"A NaN ratio is refused.":                                            {func(c *TracingConfig) { c.SampleRatio = math.NaN() }, "outside [0, 1]"},
		"A host:port endpoint is valid.":                                     {func(c *TracingConfig) { c.OTLPEndpoint = "127.0.0.1:4318" }, ""},
		"An https URL endpoint is valid.":                                    {func(c *TracingConfig) { c.OTLPEndpoint = "https://collector:4318" }, ""},
		"An endpoint without a port is refused.":                             {func(c *TracingConfig) { c.OTLPEndpoint = "collector" }, "otlpEndpoint"},
		"A grpc URL endpoint is refused.":                                    {func(c *TracingConfig) { c.OTLPEndpoint = "grpc://c:4317" }, "not http or https"},
		"A batch larger than the queue is refused.":                          {func(c *TracingConfig) { c.MaxQueueSize, c.MaxExportBatchSize = 10, 20 }, "larger than maxQueueSize"},
		"A negative timeout is refused.":                                     {func(c *TracingConfig) { c.BatchTimeout = -time.Second }, "must not be negative"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := ok
			tc.mut(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
			if tc.want != "" {
				if _, _, err := NewTracerProvider(c); err == nil {
					t.Fatal("NewTracerProvider accepted an invalid config")
				}
			}
		})
	}
}

func TestParseOTLPEndpoint(t *testing.T) {
	cases := map[string]struct {
		in   string
		want otlpTarget
	}{
		"host:port means plain HTTP to /v1/traces.":      {"127.0.0.1:4318", otlpTarget{"127.0.0.1:4318", "/v1/traces", true}},
		"An http URL without a path gets /v1/traces.":    {"http://c:4318", otlpTarget{"c:4318", "/v1/traces", true}},
		"An https URL with a root path gets /v1/traces.": {"https://c:4318/", otlpTarget{"c:4318", "/v1/traces", false}},
		"A URL's own path is kept.":                      {"https://c/otlp/v1/traces", otlpTarget{"c", "/otlp/v1/traces", false}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := parseOTLPEndpoint(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("parseOTLPEndpoint(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestZeroRatioIsNoopAndPassesContextThrough(t *testing.T) {
	ring := NewRingExporter(4)
	tp, shutdown, err := NewTracerProvider(TracingConfig{Service: "order", Region: "eu", SampleRatio: 0, Exporter: ring})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(noop.TracerProvider); !ok {
		t.Fatalf("ratio 0 gave %T, want noop.TracerProvider", tp)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "root")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatal("a no-op root span records or has ids")
	}
	span.End()

	parent := remoteParent(t, true)
	ctx, child := tp.Tracer("t").Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "child")
	if got := trace.SpanContextFromContext(ctx); got.TraceID() != parent.TraceID() || got.SpanID() != parent.SpanID() {
		t.Fatalf("the no-op provider dropped the incoming trace context: got %v", got)
	}
	child.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ring.Len() != 0 {
		t.Fatalf("the no-op provider exported %d spans", ring.Len())
	}
}

// remoteParent returns a remote span context with fixed ids.
func remoteParent(t testing.TB, sampled bool) trace.SpanContext {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	var flags trace.TraceFlags
	if sampled {
		flags = trace.FlagsSampled
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true})
}

func TestSamplerIsParentBased(t *testing.T) {
	cases := map[string]struct {
		ratio       float64
		parent      *bool // nil: a root span
		wantSampled bool
	}{
		"A root span is sampled at ratio 1.":                             {1, nil, true},
		"A child of a sampled parent is sampled at a tiny ratio.":        {1e-9, ptr(true), true},
		"A child of an unsampled parent is not sampled even at ratio 1.": {1, ptr(false), false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tp, _, _ := newTestProvider(t, "order", "eu", tc.ratio)
			ctx := context.Background()
			if tc.parent != nil {
				ctx = trace.ContextWithRemoteSpanContext(ctx, remoteParent(t, *tc.parent))
			}
			_, span := tp.Tracer("t").Start(ctx, "s")
			defer span.End()
			if got := span.SpanContext().IsSampled(); got != tc.wantSampled {
				t.Fatalf("sampled = %v, want %v", got, tc.wantSampled)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestRatioSamplesItsShareOfRoots(t *testing.T) {
	tp, ring, flush := newTestProvider(t, "order", "eu", 0.1)
	const n = 5000
	tr := tp.Tracer("t")
	for range n {
		_, span := tr.Start(context.Background(), "root")
		span.End()
	}
	flush()
	// TraceIDRatioBased is deterministic on random trace ids: 10 % ± 3 sigma.
	got := ring.Len()
	if got < 400 || got > 600 {
		t.Fatalf("%d of %d roots sampled at ratio 0.1, want about 500", got, n)
	}
}

func TestSpansCarryTheResource(t *testing.T) {
	ring := NewRingExporter(0)
	tp, shutdown, err := NewTracerProvider(TracingConfig{Service: "dispatch", Region: "us", InstanceID: "i-1", SampleRatio: 1, Exporter: ring})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "match")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := ring.Spans()
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	got := map[attribute.Key]string{}
	for _, kv := range spans[0].Resource().Attributes() {
		got[kv.Key] = kv.Value.String()
	}
	for k, want := range map[attribute.Key]string{"service.name": "dispatch", "region": "us", "service.instance.id": "i-1", "cloud.region": "us"} {
		if got[k] != want {
			t.Errorf("resource %s = %q, want %q (all: %v)", k, got[k], want, got)
		}
	}
}

func TestDefaultInstanceIDsDiffer(t *testing.T) {
	a, b := TracingConfig{}, TracingConfig{}
	a.defaults()
	b.defaults()
	if a.InstanceID == "" || a.InstanceID == b.InstanceID {
		t.Fatalf("instance ids %q and %q", a.InstanceID, b.InstanceID)
	}
}

func TestTracingConfigFromSpec(t *testing.T) {
	got := TracingConfigFromSpec(spec.Tracing{SampleRatio: 0.25, OTLPEndpoint: "127.0.0.1:4318"}, "order", "eu")
	want := TracingConfig{Service: "order", Region: "eu", SampleRatio: 0.25, OTLPEndpoint: "127.0.0.1:4318"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestRingExporterKeepsTheNewest(t *testing.T) {
	cases := map[string]struct {
		capacity, export int
		wantNames        []string
		wantOverwritten  uint64
	}{
		"A ring below capacity keeps every span in order.":  {3, 2, []string{"s0", "s1"}, 0},
		"A full ring keeps the newest spans, oldest first.": {3, 5, []string{"s2", "s3", "s4"}, 2},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ring := NewRingExporter(tc.capacity)
			stubs := make([]sdktrace.ReadOnlySpan, tc.export)
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(DiscardExporter{}))
			for i := range stubs {
				_, s := tp.Tracer("t").Start(context.Background(), "s"+string(rune('0'+i)))
				s.End()
				stubs[i] = s.(sdktrace.ReadOnlySpan)
			}
			for _, s := range stubs { // one at a time and in one batch behave alike
				if err := ring.ExportSpans(context.Background(), []sdktrace.ReadOnlySpan{s}); err != nil {
					t.Fatal(err)
				}
			}
			if got := spanNames(ring.Spans()); !slices.Equal(got, tc.wantNames) {
				t.Fatalf("spans %v, want %v", got, tc.wantNames)
			}
			if ring.Overwritten() != tc.wantOverwritten {
				t.Fatalf("overwritten %d, want %d", ring.Overwritten(), tc.wantOverwritten)
			}
			if got := spanNames(ring.Drain()); !slices.Equal(got, tc.wantNames) {
				t.Fatalf("drained %v, want %v", got, tc.wantNames)
			}
			if ring.Len() != 0 {
				t.Fatalf("%d spans left after Drain", ring.Len())
			}
			_ = ring.ExportSpans(context.Background(), stubs[:1])
			if got := spanNames(ring.Spans()); !slices.Equal(got, []string{"s0"}) {
				t.Fatalf("after Drain and one export: %v", got)
			}
		})
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name()
	}
	return out
}
