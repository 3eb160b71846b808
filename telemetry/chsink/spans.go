package chsink

import (
	"context"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/carpoolsla/carpoolsla/telemetry"
)

// SpanExporter is an OpenTelemetry sdktrace.SpanExporter writing finished
// spans to a spans Writer; plug it in as telemetry.TracingConfig.Exporter.
// Service and region come from the span's resource (service.name and
// region, as telemetry.NewTracerProvider sets them). The event id is derived
// from the trace and span ids, so a span exported twice is one row.
type SpanExporter struct {
	w *Writer[SpanRecord]
}

var _ sdktrace.SpanExporter = (*SpanExporter)(nil)

// NewSpanExporter returns an exporter writing to w. Shutting the exporter
// down does not stop w: run and stop the writer (or its Sink) yourself, after
// the tracer provider has shut down.
func NewSpanExporter(w *Writer[SpanRecord]) *SpanExporter { return &SpanExporter{w: w} }

// ExportSpans implements sdktrace.SpanExporter. It never blocks longer than
// the writer's enqueue timeout per span; spans the pipeline could not keep
// are counted there and reported in the error.
func (e *SpanExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	dropped := 0
	for _, s := range spans {
		if err := e.w.Write(SpanFromOTel(s)); err != nil {
			dropped++
		}
	}
	if dropped > 0 {
		return fmt.Errorf("%w: %d of %d spans", ErrDropped, dropped, len(spans))
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter; the writer's owner stops it.
func (e *SpanExporter) Shutdown(context.Context) error { return nil }

// SpanFromOTel converts a finished span to its row.
func SpanFromOTel(s sdktrace.ReadOnlySpan) SpanRecord {
	sc := s.SpanContext()
	r := SpanRecord{
		TraceID:    sc.TraceID().String(),
		SpanID:     sc.SpanID().String(),
		Name:       s.Name(),
		Start:      s.StartTime(),
		Duration:   max(s.EndTime().Sub(s.StartTime()), 0),
		StatusCode: s.Status().Code.String(),
	}
	r.EventID = IDFrom(r.TraceID, r.SpanID)
	if p := s.Parent(); p.IsValid() {
		r.ParentSpanID = p.SpanID().String()
	}
	if res := s.Resource(); res != nil {
		if v, ok := res.Set().Value(semconv.ServiceNameKey); ok {
			r.Service = v.String()
		}
		if v, ok := res.Set().Value(telemetry.AttrRegion); ok {
			r.Region = v.String()
		} else if v, ok := res.Set().Value(semconv.CloudRegionKey); ok {
			r.Region = v.String()
		}
	}
	attrs := s.Attributes()
	n := len(attrs) + len(s.Events())
	if d := s.Status().Description; d != "" {
		n++
	}
	if n > 0 {
		r.AttrKeys, r.AttrValues = make([]string, 0, n), make([]string, 0, n)
	}
	for _, kv := range attrs {
		r.AttrKeys, r.AttrValues = append(r.AttrKeys, string(kv.Key)), append(r.AttrValues, attrText(kv.Value))
	}
	if d := s.Status().Description; d != "" {
		r.AttrKeys, r.AttrValues = append(r.AttrKeys, "status.description"), append(r.AttrValues, d)
	}
	// Events (an exception, a retry) become "event.<i>.<name>" = their time
	// offset from the span's start, in nanoseconds.
	for i, ev := range s.Events() {
		r.AttrKeys = append(r.AttrKeys, "event."+strconv.Itoa(i)+"."+ev.Name)
		r.AttrValues = append(r.AttrValues, strconv.FormatInt(int64(ev.Time.Sub(s.StartTime())), 10))
	}
	return r
}

// attrText renders an attribute value: a string as it is, anything else in
// OpenTelemetry's text form (slices as JSON arrays).
func attrText(v attribute.Value) string {
	if v.Type() == attribute.STRING {
		return v.AsString()
	}
	return v.String()
}
