package chsink

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/telemetry"
)

// collect runs a logs writer into a fake store and returns it with a
// function that waits for n rows and returns them.
func collect(t *testing.T) (*Writer[LogRecord], func(n int) []LogRecord) {
	t.Helper()
	cfg, _ := testConfig(t, "")
	store := &fakeStore[LogRecord]{}
	w, err := NewWriterFor[LogRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	return w, func(n int) []LogRecord {
		t.Helper()
		waitUntil(t, "the log rows", func() bool { r, _ := store.snapshot(); return len(r) >= n })
		rows, _ := store.snapshot()
		if len(rows) != n {
			t.Fatalf("%d rows, want %d", len(rows), n)
		}
		return rows
	}
}

func attrs(r LogRecord) map[string]string {
	m := map[string]string{}
	for i, k := range r.AttrKeys {
		m[k] = r.AttrValues[i]
	}
	return m
}

type point struct{ X, Y int }

func TestTheHandlerFlattensAttributesAndFindsTheSpan(t *testing.T) {
	w, rows := collect(t)
	h, err := NewHandler(w, HandlerOptions{Service: "order", Region: "eu", Level: slog.LevelDebug})
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	at := time.Date(2026, 11, 25, 10, 0, 0, 42, time.UTC)

	log := slog.New(h).With("ride_id", "r1").WithGroup("req").With("path", "/v1/rides")
	log.DebugContext(ctx, "ride created", "took", 1500*time.Millisecond, "ok", true, "n", 3, "ratio", 0.5,
		slog.Group("user", "id", 7, slog.Group("", "tier", "gold")), slog.Group("empty"), "at", at,
		"err", errors.New("boom"), "pt", point{1, 2})
	slog.New(h).Info("no span, no attributes")
	slog.New(h).Debug("") // empty message still a line

	got := rows(3)
	r := got[0]
	if r.Service != "order" || r.Region != "eu" || r.Severity != "DEBUG" || r.Message != "ride created" {
		t.Errorf("fixed columns: %+v", r)
	}
	if r.TraceID != "0af7651916cd43dd8448eb211c80319c" || r.SpanID != "b7ad6b7169203331" {
		t.Errorf("ids %q %q, want the span's", r.TraceID, r.SpanID)
	}
	want := map[string]string{
		"ride_id": "r1", "req.path": "/v1/rides", "req.took": "1.5s", "req.ok": "true", "req.n": "3", "req.ratio": "0.5",
		"req.user.id": "7", "req.user.tier": "gold", "req.at": "2026-11-25T10:00:00.000000042Z", "req.err": "boom",
		"req.pt": `{"X":1,"Y":2}`,
	}
	if a := attrs(r); !mapsEqual(a, want) {
		t.Errorf("attributes\n got %v\nwant %v", a, want)
	}
	if !slices.Equal(r.AttrKeys[:2], []string{"ride_id", "req.path"}) {
		t.Errorf("the logger's attributes come first, in order: %v", r.AttrKeys)
	}
	if got[1].TraceID != "" || len(got[1].AttrKeys) != 0 || got[1].Severity != "INFO" {
		t.Errorf("a line without span or attributes: %+v", got[1])
	}
	if h.Enabled(ctx, slog.LevelDebug-1) {
		t.Error("the handler takes records below its level")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestTheLogSinkPlugsIntoTelemetrysLogger(t *testing.T) {
	w, rows := collect(t)
	log, err := telemetry.NewLogger(telemetry.LogConfig{Service: "pricing", Region: "us", Sink: NewLogSink(w)})
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.With("ride_id", "r1").WarnContext(ctx, "quote slow", slog.Group("quote", "ms", 812, "cached", false, "tag", `a "b"`), "ids", []int{1, 2})
	r := rows(1)[0]
	if r.Service != "pricing" || r.Region != "us" || r.Severity != "WARN" || r.Message != "quote slow" || r.TraceID != tid.String() || r.SpanID != sid.String() {
		t.Errorf("fixed columns: %+v", r)
	}
	want := map[string]string{"ride_id": "r1", "quote.ms": "812", "quote.cached": "false", "quote.tag": `a "b"`, "ids": "[1,2]"}
	if a := attrs(r); !mapsEqual(a, want) {
		t.Errorf("attributes\n got %v\nwant %v", a, want)
	}
}

func TestTheSpanExporterKeepsServiceRegionAndParent(t *testing.T) {
	cfg, _ := testConfig(t, "")
	store := &fakeStore[SpanRecord]{}
	w, err := NewWriterFor[SpanRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	res := resource.NewSchemaless(attribute.String("service.name", "gateway"), telemetry.AttrRegion.String("eu"))
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	pid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	began := time.Date(2026, 11, 25, 10, 0, 0, 500, time.UTC)
	stub := tracetest.SpanStub{
		Name:        "POST /v1/rides",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}),
		Parent:      trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: pid, Remote: true}),
		StartTime:   began, EndTime: began.Add(1500 * time.Microsecond),
		Attributes: []attribute.KeyValue{attribute.Int("http.response.status_code", 503), attribute.StringSlice("tags", []string{"a", "b"})},
		Status:     sdktrace.Status{Code: codes.Error, Description: "upstream down"},
		Resource:   res,
	}
	exp := NewSpanExporter(w)
	spans := tracetest.SpanStubs{stub, stub}.Snapshots() // the same span twice: one id
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the spans", func() bool { r, _ := store.snapshot(); return len(r) == 2 })
	rows, _ := store.snapshot()
	r := rows[0]
	want := SpanRecord{
		EventID: IDFrom(tid.String(), sid.String()), TraceID: tid.String(), SpanID: sid.String(), ParentSpanID: pid.String(),
		Name: "POST /v1/rides", Service: "gateway", Region: "eu", Start: began, Duration: 1500 * time.Microsecond, StatusCode: "Error",
		AttrKeys:   []string{"http.response.status_code", "tags", "status.description"},
		AttrValues: []string{"503", `["a","b"]`, "upstream down"},
	}
	if !r.Start.Equal(want.Start) {
		t.Errorf("start %v, want %v", r.Start, want.Start)
	}
	r.Start = want.Start
	if r.EventID != want.EventID || r.TraceID != want.TraceID || r.ParentSpanID != want.ParentSpanID || r.Service != want.Service ||
		r.Region != want.Region || r.Duration != want.Duration || r.StatusCode != want.StatusCode || r.Name != want.Name ||
		!slices.Equal(r.AttrKeys, want.AttrKeys) || !slices.Equal(r.AttrValues, want.AttrValues) {
		t.Errorf("span row\n got %+v\nwant %+v", r, want)
	}
	if rows[1].EventID != r.EventID {
		t.Error("the same span exported twice got two event ids")
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}
