package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Record is one log record as a LogSink receives it: the fields a log store
// keeps as columns, and the rest of the attributes already encoded.
type Record struct {
	Time    time.Time // zero when the caller set none
	Level   slog.Level
	Message string
	Service string
	Region  string
	// TraceID and SpanID are the lowercase hex ids of the span in the logging
	// call's context; empty when it carries no valid span context.
	TraceID string
	SpanID  string
	// Attrs is every other attribute (the logger's and the call's, groups
	// nested) as one JSON object; "{}" when there are none. It is never reused
	// by the logger, so a sink may keep it.
	Attrs []byte
}

// AppendJSON appends rec as one JSON object followed by a newline:
// {"time","level","msg","service","region","trace_id","span_id", then the
// attributes}. time and the ids are left out when empty.
func (rec Record) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	if !rec.Time.IsZero() {
		b = append(b, `"time":"`...)
		b = rec.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = appendJSONString(b, rec.Level.String())
	b = append(b, `,"msg":`...)
	b = appendJSONString(b, rec.Message)
	b = append(b, `,"service":`...)
	b = appendJSONString(b, rec.Service)
	b = append(b, `,"region":`...)
	b = appendJSONString(b, rec.Region)
	if rec.TraceID != "" {
		b = append(b, `,"trace_id":"`...)
		b = append(b, rec.TraceID...)
		b = append(b, `","span_id":"`...)
		b = append(b, rec.SpanID...)
		b = append(b, '"')
	}
	if len(rec.Attrs) > 2 { // more than "{}"
		b = append(b, ',')
		b = append(b, rec.Attrs[1:len(rec.Attrs)-1]...)
	}
	return append(b, '}', '\n')
}

// LogSink receives every record a logger built by NewLogger writes. It must
// be safe for concurrent use. Write may keep rec (a batching sink queues
// records and flushes them in bulk); an error is returned to the slog handler,
// which slog.Logger ignores, so a sink that can lose records should count them.
type LogSink interface {
	Write(rec Record) error
}

// WriterSink is a LogSink that writes each record as one JSON line to an
// io.Writer, with one Write call per record, serialised.
type WriterSink struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewWriterSink returns a sink writing JSON lines to w.
func NewWriterSink(w io.Writer) *WriterSink { return &WriterSink{w: w} }

// NewStdoutSink returns a sink writing JSON lines to standard output.
func NewStdoutSink() *WriterSink { return NewWriterSink(os.Stdout) }

// Write implements LogSink.
func (s *WriterSink) Write(rec Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = rec.AppendJSON(s.buf[:0])
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("writing a log record: %w", err)
	}
	if cap(s.buf) > 64<<10 { // do not pin one huge record's buffer
		s.buf = nil
	}
	return nil
}

// FileSink is a LogSink that appends JSON lines to a file, one write per
// record (no buffering, so a crash loses nothing already logged).
type FileSink struct {
	*WriterSink
	f *os.File
}

// OpenFileSink opens (creating it when missing, mode 0644) the file at path
// for appending.
func OpenFileSink(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the log file: %w", err)
	}
	return &FileSink{WriterSink: NewWriterSink(f), f: f}, nil
}

// Close closes the file; later writes fail.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("closing the log file %s: %w", s.f.Name(), err)
	}
	return nil
}
