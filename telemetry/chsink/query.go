package chsink

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Selecter runs a query into a slice of structs; clickhouse-go's driver.Conn
// has it.
type Selecter interface {
	Select(ctx context.Context, dest any, query string, args ...any) error
}

// TraceEntry says that one service in one region logged (source "log") or
// traced (source "span") a trace between First and Last (whole seconds).
type TraceEntry struct {
	Service string    `ch:"service"`
	Region  string    `ch:"region"`
	Source  string    `ch:"source"`
	First   time.Time `ch:"first"`
	Last    time.Time `ch:"last"`
}

// Trace is what the tables hold of one trace: where it went, its spans (by
// start) and its log lines (by time), one row per event id.
type Trace struct {
	Entries []TraceEntry
	Spans   []SpanRecord
	Logs    []LogRecord
}

var traceIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// FindTrace looks a trace id up in trace_index and reads its spans and log
// lines, each query narrowed to the services, regions and seconds the index
// names (so partitions and sorting keys do the work rather than a scan).
func FindTrace(ctx context.Context, conn Selecter, database, traceID string) (Trace, error) {
	var tr Trace
	if !traceIDRe.MatchString(traceID) {
		return tr, fmt.Errorf("chsink: trace id %q is not 32 lowercase hex digits", traceID)
	}
	if database == "" {
		database = DefaultDatabase
	}
	if !identRe.MatchString(database) {
		return tr, fmt.Errorf("chsink: database %q is not a plain identifier", database)
	}
	q := fmt.Sprintf(`SELECT service, region, source, min(ts) AS first, max(ts) AS last
FROM %s.%s WHERE trace_id = ? GROUP BY service, region, source ORDER BY first, service, region, source`, database, TableTraceIndex)
	if err := conn.Select(ctx, &tr.Entries, q, traceID); err != nil {
		return tr, fmt.Errorf("chsink: looking trace %s up in %s: %w", traceID, TableTraceIndex, err)
	}
	if len(tr.Entries) == 0 {
		return tr, nil
	}
	first, last := tr.Entries[0].First, tr.Entries[0].Last
	for _, e := range tr.Entries {
		first, last = minTime(first, e.First), maxTime(last, e.Last)
	}
	var spans []spanRow
	q = fmt.Sprintf(`SELECT event_id, trace_id, span_id, parent_span_id, name, service, region, start, start_nano, duration_ns, status_code, attr_keys, attr_values
FROM %s.%s FINAL WHERE trace_id = ? AND start >= toDateTime(?) AND start <= toDateTime(?) ORDER BY start, start_nano, span_id`, database, TableSpans)
	if err := conn.Select(ctx, &spans, q, traceID, first.Unix(), last.Unix()); err != nil {
		return tr, fmt.Errorf("chsink: reading the spans of trace %s: %w", traceID, err)
	}
	for _, s := range spans {
		tr.Spans = append(tr.Spans, SpanRecord{
			EventID: s.EventID, TraceID: s.TraceID, SpanID: s.SpanID, ParentSpanID: s.ParentSpanID, Name: s.Name,
			Service: s.Service, Region: s.Region, Start: s.Start.Add(time.Duration(s.StartNano)),
			Duration: time.Duration(s.DurationNS), StatusCode: s.StatusCode, AttrKeys: s.AttrKeys, AttrValues: s.AttrValues,
		})
	}
	for _, e := range tr.Entries {
		if e.Source != "log" {
			continue
		}
		var logs []logRow
		q = fmt.Sprintf(`SELECT event_id, ts, ts_nano, service, region, severity, trace_id, span_id, message, attr_keys, attr_values
FROM %s.%s FINAL WHERE service = ? AND region = ? AND ts >= toDateTime(?) AND ts <= toDateTime(?) AND trace_id = ?
ORDER BY ts, ts_nano, event_id`, database, TableLogs)
		if err := conn.Select(ctx, &logs, q, e.Service, e.Region, e.First.Unix(), e.Last.Unix(), traceID); err != nil {
			return tr, fmt.Errorf("chsink: reading the log lines of trace %s: %w", traceID, err)
		}
		for _, l := range logs {
			tr.Logs = append(tr.Logs, LogRecord{
				EventID: l.EventID, Time: l.TS.Add(time.Duration(l.TSNano)), Service: l.Service, Region: l.Region,
				Severity: l.Severity, TraceID: l.TraceID, SpanID: l.SpanID, Message: l.Message,
				AttrKeys: l.AttrKeys, AttrValues: l.AttrValues,
			})
		}
	}
	return tr, nil
}

type spanRow struct {
	EventID      uuid.UUID `ch:"event_id"`
	TraceID      string    `ch:"trace_id"`
	SpanID       string    `ch:"span_id"`
	ParentSpanID string    `ch:"parent_span_id"`
	Name         string    `ch:"name"`
	Service      string    `ch:"service"`
	Region       string    `ch:"region"`
	Start        time.Time `ch:"start"`
	StartNano    uint32    `ch:"start_nano"`
	DurationNS   uint64    `ch:"duration_ns"`
	StatusCode   string    `ch:"status_code"`
	AttrKeys     []string  `ch:"attr_keys"`
	AttrValues   []string  `ch:"attr_values"`
}

type logRow struct {
	EventID    uuid.UUID `ch:"event_id"`
	TS         time.Time `ch:"ts"`
	TSNano     uint32    `ch:"ts_nano"`
	Service    string    `ch:"service"`
	Region     string    `ch:"region"`
	Severity   string    `ch:"severity"`
	TraceID    string    `ch:"trace_id"`
	SpanID     string    `ch:"span_id"`
	Message    string    `ch:"message"`
	AttrKeys   []string  `ch:"attr_keys"`
	AttrValues []string  `ch:"attr_values"`
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
