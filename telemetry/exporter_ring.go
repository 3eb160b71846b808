package telemetry

import (
	"context"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultRingCapacity is a RingExporter's capacity when none is given.
const DefaultRingCapacity = 4096

// RingExporter is an sdktrace.SpanExporter that keeps the last Capacity
// finished spans in memory, overwriting the oldest: tests read it with Spans,
// and a writer that ships spans elsewhere (the ClickHouse exporter) takes them
// in batches with Drain. It is safe for concurrent use; its zero value is not
// usable, use NewRingExporter.
type RingExporter struct {
	mu          sync.Mutex
	buf         []sdktrace.ReadOnlySpan
	start, n    int    // the oldest span is buf[start]; n spans are held
	overwritten uint64 // spans lost to newer ones
}

// NewRingExporter returns a ring that holds capacity spans
// (DefaultRingCapacity when capacity <= 0).
func NewRingExporter(capacity int) *RingExporter {
	if capacity <= 0 {
		capacity = DefaultRingCapacity
	}
	return &RingExporter{buf: make([]sdktrace.ReadOnlySpan, capacity)}
}

// ExportSpans implements sdktrace.SpanExporter. It never fails.
func (r *RingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range spans {
		if r.n < len(r.buf) {
			r.buf[(r.start+r.n)%len(r.buf)] = s
			r.n++
			continue
		}
		r.buf[r.start] = s
		r.start = (r.start + 1) % len(r.buf)
		r.overwritten++
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter. The spans stay readable.
func (r *RingExporter) Shutdown(context.Context) error { return nil }

// Spans returns a copy of the held spans, oldest first.
func (r *RingExporter) Spans() []sdktrace.ReadOnlySpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.copyLocked()
}

// Drain returns the held spans, oldest first, and empties the ring.
func (r *RingExporter) Drain() []sdktrace.ReadOnlySpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.copyLocked()
	clear(r.buf)
	r.start, r.n = 0, 0
	return out
}

// Len returns how many spans the ring holds.
func (r *RingExporter) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Overwritten returns how many spans were lost because the ring was full.
func (r *RingExporter) Overwritten() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.overwritten
}

func (r *RingExporter) copyLocked() []sdktrace.ReadOnlySpan {
	out := make([]sdktrace.ReadOnlySpan, r.n)
	for i := range out {
		out[i] = r.buf[(r.start+i)%len(r.buf)]
	}
	return out
}
