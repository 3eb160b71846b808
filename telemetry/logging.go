package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys every record carries (the fixed ones) or carries inside a
// span (the ids).
const (
	LogKeyService = "service"
	LogKeyRegion  = "region"
	LogKeyTraceID = "trace_id"
	LogKeySpanID  = "span_id"
)

// LogConfig configures a process's logger. Service and Region are required.
type LogConfig struct {
	// Service and Region are put on every record.
	Service string
	Region  string
	// Level is the lowest level written: debug, info, warn or error, any case,
	// optionally with an offset ("info+2"); default info.
	Level string
	// Sink receives the records; default standard output (NewStdoutSink).
	Sink LogSink
}

// level parses Level.
func (c LogConfig) level() (slog.Level, error) {
	var l slog.Level
	if c.Level == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		return 0, fmt.Errorf("log level %q is not debug, info, warn or error: %w", c.Level, err)
	}
	return l, nil
}

// Validate checks the configuration.
func (c LogConfig) Validate() error {
	var errs []error
	if c.Service == "" {
		errs = append(errs, errors.New("logging: service is empty; name the service"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("logging: region is empty; name the region the process runs in"))
	}
	if _, err := c.level(); err != nil {
		errs = append(errs, fmt.Errorf("logging: %w", err))
	}
	return errors.Join(errs...)
}

// NewLogger returns a logger that hands every record at or above cfg.Level to
// cfg.Sink, with the service, the region and, when the logging call's context
// carries a valid span context, its trace_id and span_id. Use the *Context
// methods (InfoContext, ErrorContext) so that the ids are found.
func NewLogger(cfg LogConfig) (*slog.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lvl, _ := cfg.level() // Validate checked it.
	sink := cfg.Sink
	if sink == nil {
		sink = NewStdoutSink()
	}
	return slog.New(&sinkHandler{sink: sink, level: lvl, service: cfg.Service, region: cfg.Region}), nil
}

// sinkHandler is the slog.Handler of NewLogger: it turns records into Records
// for a LogSink.
type sinkHandler struct {
	sink            LogSink
	level           slog.Level
	service, region string
	// pre holds the attributes of WithAttrs calls, encoded as object members,
	// with the first nOpen groups already opened in it.
	pre    []byte
	groups []string // every group of WithGroup calls, outermost first
	nOpen  int
}

// scratch recycles the buffers records are encoded in.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Enabled implements slog.Handler.
func (h *sinkHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

// openGroups appends the groups not yet opened in b.
func (h *sinkHandler) openGroups(b []byte) []byte {
	for _, g := range h.groups[h.nOpen:] {
		b = appendComma(b)
		b = appendJSONString(b, g)
		b = append(b, ':', '{')
	}
	return b
}

// WithAttrs implements slog.Handler.
func (h *sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	b := h.openGroups(slices.Clip(h.pre))
	b, wrote := appendAttrs(b, as)
	if !wrote {
		return h
	}
	h2.pre, h2.nOpen = b, len(h.groups)
	return &h2
}

// WithGroup implements slog.Handler.
func (h *sinkHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(slices.Clip(h.groups), name)
	return &h2
}

// Handle implements slog.Handler.
func (h *sinkHandler) Handle(ctx context.Context, r slog.Record) error {
	bp := scratch.Get().(*[]byte)
	b := append((*bp)[:0], '{')
	b = append(b, h.pre...)
	nOpen := h.nOpen
	if r.NumAttrs() > 0 {
		mark := len(b)
		b = h.openGroups(b)
		wrote := false
		r.Attrs(func(a slog.Attr) bool {
			var w bool
			b, w = appendAttr(b, a)
			wrote = wrote || w
			return true
		})
		if wrote {
			nOpen = len(h.groups)
		} else {
			b = b[:mark]
		}
	}
	for range nOpen {
		b = append(b, '}')
	}
	b = append(b, '}')
	rec := Record{
		Time: r.Time, Level: r.Level, Message: r.Message,
		Service: h.service, Region: h.region,
		Attrs: slices.Clone(b),
	}
	*bp = b
	if cap(b) <= 64<<10 {
		scratch.Put(bp)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		rec.TraceID, rec.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	return h.sink.Write(rec)
}

// NewContextHandler wraps any slog.Handler so that its records carry service
// and region and, when the logging call's context carries a valid span
// context, trace_id and span_id. The ids are added to the record, so after
// WithGroup they land inside the group; NewLogger's handler keeps them at the
// top level.
func NewContextHandler(h slog.Handler, service, region string) slog.Handler {
	return contextHandler{h.WithAttrs([]slog.Attr{slog.String(LogKeyService, service), slog.String(LogKeyRegion, region)})}
}

// contextHandler is the slog.Handler NewContextHandler returns.
type contextHandler struct{ inner slog.Handler }

// Enabled implements slog.Handler.
func (h contextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String(LogKeyTraceID, sc.TraceID().String()), slog.String(LogKeySpanID, sc.SpanID().String()))
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.inner.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.inner.WithGroup(name)}
}
