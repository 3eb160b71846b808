package engine

import (
	"context"
	"log/slog"
	"maps"
	"slices"
)

// logSink is the default EventSink: one log line per event.
type logSink struct{ log *slog.Logger }

// NewLogSink returns the default EventSink: it writes one info line per
// event, with the event's fields and values as attributes. It never fails.
func NewLogSink(log *slog.Logger) EventSink {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return logSink{log: log}
}

// Emit implements EventSink.
func (s logSink) Emit(ctx context.Context, events []Event) error {
	for _, ev := range events {
		attrs := []slog.Attr{
			slog.String("event_id", ev.ID),
			slog.Time("at", ev.At),
			slog.String("kind", ev.Kind),
			slog.String("region", ev.Region),
			slog.String("from", ev.From),
			slog.String("to", ev.To),
			slog.String("reason", ev.Reason),
		}
		if len(ev.Values) > 0 {
			vals := make([]any, 0, len(ev.Values))
			for _, k := range slices.Sorted(maps.Keys(ev.Values)) {
				vals = append(vals, slog.Float64(k, ev.Values[k]))
			}
			attrs = append(attrs, slog.Group("values", vals...))
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "sla event", attrs...)
	}
	return nil
}
