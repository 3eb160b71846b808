package chsink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/telemetry"
)

// HandlerOptions configures NewHandler.
type HandlerOptions struct {
	// Service and Region go on every record (required).
	Service, Region string
	// Level is the lowest level written (default slog.LevelInfo).
	Level slog.Leveler
}

// Handler is an slog.Handler that writes every record to a logs Writer:
// the attributes (the logger's and the call's) flattened into attr_keys and
// attr_values ("group.key", values as text: strings as they are, numbers and
// booleans as Go formats them, durations as "1.5s", times in RFC 3339 with
// nanoseconds, errors as their message, anything else as JSON), and the
// trace and span ids of the span in the logging call's context. Use the
// *Context logging methods so that the ids are found.
type Handler struct {
	w               *Writer[LogRecord]
	service, region string
	level           slog.Leveler
	prefix          string   // the open groups, "a.b."
	keys, vals      []string // the logger's attributes, flattened
}

// NewHandler returns a Handler writing to w.
func NewHandler(w *Writer[LogRecord], opts HandlerOptions) (*Handler, error) {
	var errs []error
	if w == nil {
		errs = append(errs, errors.New("chsink: handler: the logs writer is nil; build one with NewWriter[LogRecord] or NewSink"))
	}
	if opts.Service == "" || opts.Region == "" {
		errs = append(errs, errors.New("chsink: handler: Service and Region are required; name the service and the region it runs in"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	lvl := opts.Level
	if lvl == nil {
		lvl = slog.LevelInfo
	}
	return &Handler{w: w, service: opts.Service, region: opts.Region, level: lvl}, nil
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.keys, h2.vals = slices.Clip(h.keys), slices.Clip(h.vals)
	for _, a := range as {
		h2.keys, h2.vals = appendFlat(h2.keys, h2.vals, h.prefix, a)
	}
	return &h2
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

// Handle implements slog.Handler. It returns ErrDropped (wrapped) when the
// pipeline could not keep the record; slog.Logger ignores it, the loss is
// counted.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	rec := LogRecord{
		Time: r.Time, Service: h.service, Region: h.region,
		Severity: r.Level.String(), Message: r.Message,
	}
	n := len(h.keys) + r.NumAttrs()
	if n > 0 {
		rec.AttrKeys = append(make([]string, 0, n), h.keys...)
		rec.AttrValues = append(make([]string, 0, n), h.vals...)
		r.Attrs(func(a slog.Attr) bool {
			rec.AttrKeys, rec.AttrValues = appendFlat(rec.AttrKeys, rec.AttrValues, h.prefix, a)
			return true
		})
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		rec.TraceID, rec.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	return h.w.Write(rec)
}

// appendFlat appends attribute a, groups flattened with dotted keys, following
// slog's rules: an empty attribute and an empty group are dropped, a group
// with an empty key is inlined.
func appendFlat(keys, vals []string, prefix string, a slog.Attr) ([]string, []string) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return keys, vals
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, g := range a.Value.Group() {
			keys, vals = appendFlat(keys, vals, p, g)
		}
		return keys, vals
	}
	return append(keys, prefix+a.Key), append(vals, valueText(a.Value))
}

// valueText renders a resolved, non-group value.
func valueText(v slog.Value) string {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return strconv.FormatInt(v.Int64(), 10)
	case slog.KindUint64:
		return strconv.FormatUint(v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.FormatFloat(v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.FormatBool(v.Bool())
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	}
	x := v.Any()
	if err, ok := x.(error); ok {
		return err.Error()
	}
	if b, err := json.Marshal(x); err == nil {
		return string(b)
	}
	return fmt.Sprintf("%+v", x)
}

// LogSink is a telemetry.LogSink writing to a logs Writer, for services that
// build their logger with telemetry.NewLogger (LogConfig.Sink). The record's
// JSON attributes are flattened like Handler's ("group.key"; strings
// unquoted, other values as their JSON text).
type LogSink struct{ w *Writer[LogRecord] }

var _ telemetry.LogSink = (*LogSink)(nil)

// NewLogSink returns a LogSink writing to w.
func NewLogSink(w *Writer[LogRecord]) *LogSink { return &LogSink{w: w} }

// Write implements telemetry.LogSink.
func (s *LogSink) Write(rec telemetry.Record) error {
	r := LogRecord{
		Time: rec.Time, Service: rec.Service, Region: rec.Region,
		Severity: rec.Level.String(), Message: rec.Message,
		TraceID: rec.TraceID, SpanID: rec.SpanID,
	}
	if len(rec.Attrs) > 2 { // more than "{}"
		var err error
		r.AttrKeys, r.AttrValues, err = flattenJSON(r.AttrKeys, r.AttrValues, "", rec.Attrs)
		if err != nil {
			// Keep the line: the attributes go in whole under one key.
			r.AttrKeys, r.AttrValues = []string{"attrs"}, []string{string(rec.Attrs)}
		}
	}
	return s.w.Write(r)
}

// flattenJSON appends the members of a JSON object, nested objects flattened
// with dotted keys.
func flattenJSON(keys, vals []string, prefix string, obj []byte) ([]string, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return keys, vals, fmt.Errorf("attributes are not a JSON object: %v", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys, vals, err
		}
		k, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return keys, vals, err
		}
		switch raw[0] {
		case '{':
			if keys, vals, err = flattenJSON(keys, vals, prefix+k+".", raw); err != nil {
				return keys, vals, err
			}
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return keys, vals, err
			}
			keys, vals = append(keys, prefix+k), append(vals, s)
		default:
			keys, vals = append(keys, prefix+k), append(vals, string(raw))
		}
	}
	return keys, vals, nil
}
