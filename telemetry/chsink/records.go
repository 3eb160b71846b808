package chsink

import (
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
)

// The records below are the rows of the tables Migrate creates, one exported
// struct per table with one field per column (in column order). A zero
// EventID is filled with a random UUID and a zero time with the writer's
// clock when the record is written; set EventID yourself (IDFrom) when the
// same fact may be written twice, so that the table keeps one row for it.

// LogRecord is one row of logs: a structured log line.
type LogRecord struct {
	EventID  uuid.UUID
	Time     time.Time // ts (seconds, server time zone for partitioning) and ts_nano
	Service  string
	Region   string
	Severity string // slog's level text: DEBUG, INFO, WARN, ERROR, INFO+2
	TraceID  string // lowercase hex, "" outside a span
	SpanID   string
	Message  string
	// AttrKeys and AttrValues are the attributes, flattened ("group.key") and
	// as text; the two slices have the same length.
	AttrKeys   []string
	AttrValues []string
}

// SpanRecord is one row of spans: a finished OpenTelemetry span.
type SpanRecord struct {
	EventID      uuid.UUID // SpanExporter derives it from the trace and span ids
	TraceID      string
	SpanID       string
	ParentSpanID string // "" for a root span
	Name         string
	Service      string
	Region       string
	Start        time.Time // start (seconds) and start_nano
	Duration     time.Duration
	StatusCode   string // Unset, Error or Ok
	AttrKeys     []string
	AttrValues   []string
}

// SLAEvent is one row of sla_events: a decision or state change of the SLA
// engine (a breaker opening, a weight change, a stale signal).
type SLAEvent struct {
	EventID     uuid.UUID
	Time        time.Time
	Kind        string
	Region      string
	Service     string
	SLO         string
	FromState   string
	ToState     string
	Reason      string
	ValueKeys   []string
	ValueValues []float64 // same length as ValueKeys
}

// SLIMinute is one row of sli_minutes: good and total events of one SLO in
// one region over the minute starting at Minute. Give it an EventID derived
// from (minute, service, SLO, region) so that recomputing a minute replaces
// the row instead of adding one.
type SLIMinute struct {
	EventID uuid.UUID
	Minute  time.Time
	Service string
	SLO     string
	Region  string
	Good    uint64
	Total   uint64
}

// DrillResult is one row of drill_results: the outcome of one failover drill.
type DrillResult struct {
	EventID       uuid.UUID
	Time          time.Time
	Scenario      string
	Region        string
	Passed        bool
	RTOSeconds    float64
	RPOSeconds    float64
	DetectSeconds float64
	DecideSeconds float64
	ShiftSeconds  float64
	SuccessRatio  float64
	Report        string
}

// LoadRun is one row of load_runs: the outcome of one load test run.
type LoadRun struct {
	EventID         uuid.UUID
	Time            time.Time
	Scenario        string
	Target          string
	TargetRate      float64
	AchievedRate    float64
	DurationSeconds float64
	Requests        uint64
	Errors          uint64
	Dropped         uint64
	P50Ms           float64
	P90Ms           float64
	P99Ms           float64
	P999Ms          float64
	Passed          bool
	Summary         string
}

// idSpace is the namespace of the name-based ids IDFrom makes.
var idSpace = uuid.MustParse("6f1c1c52-6a55-4b8e-9d0e-8f4b5b0c2a11")

// IDFrom returns a UUID derived from parts (SHA-1, name-based), the same for
// the same parts in every process: the event id of a fact that may be written
// more than once (a minute rollup recomputed, an engine event re-sent), so
// that the table's deduplication keeps one row. Parts are separated by a zero
// byte, so ("ab","c") and ("a","bc") differ.
func IDFrom(parts ...string) uuid.UUID {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return uuid.NewSHA1(idSpace, b)
}

// table describes how records of type T map to a ClickHouse table and to the
// write-ahead log.
type table[T any] struct {
	name    string
	columns []string
	// prepare fills the event id and the time when they are zero.
	prepare func(r *T, now func() time.Time)
	// encode appends r to b in the write-ahead log's format; decode reads one
	// record back. A change to either is a change of the WAL format: bump
	// walVersion.
	encode func(b []byte, r *T) []byte
	decode func(d *decoder, r *T)
	// appendColumns appends rows to an INSERT batch column by column.
	appendColumns func(b driver.Batch, rows []T) error
	// day is the UTC day (Unix days) of the column the table is partitioned by.
	day func(r *T) int64
}

// unixDay is the number of whole days from the Unix epoch to t (UTC).
func unixDay(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - 86399) / 86400
	}
	return s / 86400
}

// appendCols appends one slice per column to b.
func appendCols(b driver.Batch, cols ...any) error {
	for i, c := range cols {
		if err := b.Column(i).Append(c); err != nil {
			return err
		}
	}
	return nil
}

func fillID(id *uuid.UUID) {
	if *id == (uuid.UUID{}) {
		*id = uuid.New()
	}
}

func fillTime(t *time.Time, now func() time.Time) {
	if t.IsZero() {
		*t = now()
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// nanos is the sub-second part of t, the *_nano columns.
func nanos(t time.Time) uint32 { return uint32(t.Nanosecond()) }

var logsTable = &table[LogRecord]{
	name:    TableLogs,
	columns: []string{"event_id", "ts", "ts_nano", "service", "region", "severity", "trace_id", "span_id", "message", "attr_keys", "attr_values"},
	day:     func(r *LogRecord) int64 { return unixDay(r.Time) },
	prepare: func(r *LogRecord, now func() time.Time) { fillID(&r.EventID); fillTime(&r.Time, now) },
	encode: func(b []byte, r *LogRecord) []byte {
		b = appendUUID(b, r.EventID)
		b = appendTime(b, r.Time)
		b = appendStrings(b, r.Service, r.Region, r.Severity, r.TraceID, r.SpanID, r.Message)
		b = appendStringSlice(b, r.AttrKeys)
		return appendStringSlice(b, r.AttrValues)
	},
	decode: func(d *decoder, r *LogRecord) {
		r.EventID, r.Time = d.uuid(), d.time()
		r.Service, r.Region, r.Severity, r.TraceID, r.SpanID, r.Message = d.str(), d.str(), d.str(), d.str(), d.str(), d.str()
		r.AttrKeys, r.AttrValues = d.strs(), d.strs()
	},
	appendColumns: func(b driver.Batch, rows []LogRecord) error {
		n := len(rows)
		var (
			ids           = make([]uuid.UUID, n)
			ts            = make([]time.Time, n)
			ns            = make([]uint32, n)
			svc, reg, sev = make([]string, n), make([]string, n), make([]string, n)
			tid, sid, msg = make([]string, n), make([]string, n), make([]string, n)
			keys, vals    = make([][]string, n), make([][]string, n)
		)
		for i := range rows {
			r := &rows[i]
			ids[i], ts[i], ns[i] = r.EventID, r.Time, nanos(r.Time)
			svc[i], reg[i], sev[i], tid[i], sid[i], msg[i] = r.Service, r.Region, r.Severity, r.TraceID, r.SpanID, r.Message
			keys[i], vals[i] = nonNil(r.AttrKeys), nonNil(r.AttrValues)
		}
		return appendCols(b, ids, ts, ns, svc, reg, sev, tid, sid, msg, keys, vals)
	},
}

var spansTable = &table[SpanRecord]{
	name:    TableSpans,
	columns: []string{"event_id", "trace_id", "span_id", "parent_span_id", "name", "service", "region", "start", "start_nano", "duration_ns", "status_code", "attr_keys", "attr_values"},
	day:     func(r *SpanRecord) int64 { return unixDay(r.Start) },
	prepare: func(r *SpanRecord, now func() time.Time) {
		if r.EventID == (uuid.UUID{}) && r.TraceID != "" {
			r.EventID = IDFrom(r.TraceID, r.SpanID)
		}
		fillID(&r.EventID)
		fillTime(&r.Start, now)
	},
	encode: func(b []byte, r *SpanRecord) []byte {
		b = appendUUID(b, r.EventID)
		b = appendStrings(b, r.TraceID, r.SpanID, r.ParentSpanID, r.Name, r.Service, r.Region)
		b = appendTime(b, r.Start)
		b = appendUvarint(b, uint64(r.Duration))
		b = appendStrings(b, r.StatusCode)
		b = appendStringSlice(b, r.AttrKeys)
		return appendStringSlice(b, r.AttrValues)
	},
	decode: func(d *decoder, r *SpanRecord) {
		r.EventID = d.uuid()
		r.TraceID, r.SpanID, r.ParentSpanID, r.Name, r.Service, r.Region = d.str(), d.str(), d.str(), d.str(), d.str(), d.str()
		r.Start = d.time()
		r.Duration = time.Duration(d.uvarint())
		r.StatusCode = d.str()
		r.AttrKeys, r.AttrValues = d.strs(), d.strs()
	},
	appendColumns: func(b driver.Batch, rows []SpanRecord) error {
		n := len(rows)
		var (
			ids               = make([]uuid.UUID, n)
			tid, sid, pid, nm = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			svc, reg, st      = make([]string, n), make([]string, n), make([]string, n)
			start             = make([]time.Time, n)
			ns                = make([]uint32, n)
			dur               = make([]uint64, n)
			keys, vals        = make([][]string, n), make([][]string, n)
		)
		for i := range rows {
			r := &rows[i]
			ids[i], tid[i], sid[i], pid[i], nm[i] = r.EventID, r.TraceID, r.SpanID, r.ParentSpanID, r.Name
			svc[i], reg[i], start[i], ns[i] = r.Service, r.Region, r.Start, nanos(r.Start)
			dur[i], st[i] = uint64(max(r.Duration, 0)), r.StatusCode
			keys[i], vals[i] = nonNil(r.AttrKeys), nonNil(r.AttrValues)
		}
		return appendCols(b, ids, tid, sid, pid, nm, svc, reg, start, ns, dur, st, keys, vals)
	},
}

var slaEventsTable = &table[SLAEvent]{
	name:    TableSLAEvents,
	columns: []string{"event_id", "ts", "kind", "region", "service", "slo", "from_state", "to_state", "reason", "value_keys", "value_values"},
	day:     func(r *SLAEvent) int64 { return unixDay(r.Time) },
	prepare: func(r *SLAEvent, now func() time.Time) { fillID(&r.EventID); fillTime(&r.Time, now) },
	encode: func(b []byte, r *SLAEvent) []byte {
		b = appendUUID(b, r.EventID)
		b = appendTime(b, r.Time)
		b = appendStrings(b, r.Kind, r.Region, r.Service, r.SLO, r.FromState, r.ToState, r.Reason)
		b = appendStringSlice(b, r.ValueKeys)
		return appendFloatSlice(b, r.ValueValues)
	},
	decode: func(d *decoder, r *SLAEvent) {
		r.EventID, r.Time = d.uuid(), d.time()
		r.Kind, r.Region, r.Service, r.SLO, r.FromState, r.ToState, r.Reason = d.str(), d.str(), d.str(), d.str(), d.str(), d.str(), d.str()
		r.ValueKeys, r.ValueValues = d.strs(), d.floats()
	},
	appendColumns: func(b driver.Batch, rows []SLAEvent) error {
		n := len(rows)
		var (
			ids                 = make([]uuid.UUID, n)
			ts                  = make([]time.Time, n)
			kind, reg, svc, slo = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			from, to, why       = make([]string, n), make([]string, n), make([]string, n)
			keys                = make([][]string, n)
			vals                = make([][]float64, n)
		)
		for i := range rows {
			r := &rows[i]
			ids[i], ts[i], kind[i], reg[i], svc[i], slo[i] = r.EventID, r.Time, r.Kind, r.Region, r.Service, r.SLO
			from[i], to[i], why[i] = r.FromState, r.ToState, r.Reason
			keys[i], vals[i] = nonNil(r.ValueKeys), nonNil(r.ValueValues)
		}
		return appendCols(b, ids, ts, kind, reg, svc, slo, from, to, why, keys, vals)
	},
}

var sliMinutesTable = &table[SLIMinute]{
	name:    TableSLIMinutes,
	columns: []string{"event_id", "minute", "service", "slo", "region", "good", "total"},
	day:     func(r *SLIMinute) int64 { return unixDay(r.Minute) },
	prepare: func(r *SLIMinute, now func() time.Time) {
		fillTime(&r.Minute, now)
		r.Minute = r.Minute.Truncate(time.Minute)
		if r.EventID == (uuid.UUID{}) {
			r.EventID = IDFrom(r.Minute.UTC().Format(time.RFC3339), r.Service, r.SLO, r.Region)
		}
	},
	encode: func(b []byte, r *SLIMinute) []byte {
		b = appendUUID(b, r.EventID)
		b = appendTime(b, r.Minute)
		b = appendStrings(b, r.Service, r.SLO, r.Region)
		b = appendUvarint(b, r.Good)
		return appendUvarint(b, r.Total)
	},
	decode: func(d *decoder, r *SLIMinute) {
		r.EventID, r.Minute = d.uuid(), d.time()
		r.Service, r.SLO, r.Region = d.str(), d.str(), d.str()
		r.Good, r.Total = d.uvarint(), d.uvarint()
	},
	appendColumns: func(b driver.Batch, rows []SLIMinute) error {
		n := len(rows)
		var (
			ids           = make([]uuid.UUID, n)
			ts            = make([]time.Time, n)
			svc, slo, reg = make([]string, n), make([]string, n), make([]string, n)
			good, total   = make([]uint64, n), make([]uint64, n)
		)
		for i := range rows {
			r := &rows[i]
			ids[i], ts[i], svc[i], slo[i], reg[i], good[i], total[i] = r.EventID, r.Minute, r.Service, r.SLO, r.Region, r.Good, r.Total
		}
		return appendCols(b, ids, ts, svc, slo, reg, good, total)
	},
}

var drillResultsTable = &table[DrillResult]{
	name: TableDrillResults,
	columns: []string{"event_id", "ts", "scenario", "region", "passed", "rto_seconds", "rpo_seconds",
		"detect_seconds", "decide_seconds", "shift_seconds", "success_ratio", "report"},
	day:     func(r *DrillResult) int64 { return unixDay(r.Time) },
	prepare: func(r *DrillResult, now func() time.Time) { fillID(&r.EventID); fillTime(&r.Time, now) },
	encode: func(b []byte, r *DrillResult) []byte {
		b = appendUUID(b, r.EventID)
		b = appendTime(b, r.Time)
		b = appendStrings(b, r.Scenario, r.Region)
		b = append(b, b2u(r.Passed))
		b = appendFloats(b, r.RTOSeconds, r.RPOSeconds, r.DetectSeconds, r.DecideSeconds, r.ShiftSeconds, r.SuccessRatio)
		return appendStrings(b, r.Report)
	},
	decode: func(d *decoder, r *DrillResult) {
		r.EventID, r.Time = d.uuid(), d.time()
		r.Scenario, r.Region = d.str(), d.str()
		r.Passed = d.byte() != 0
		r.RTOSeconds, r.RPOSeconds, r.DetectSeconds = d.float(), d.float(), d.float()
		r.DecideSeconds, r.ShiftSeconds, r.SuccessRatio = d.float(), d.float(), d.float()
		r.Report = d.str()
	},
	appendColumns: func(b driver.Batch, rows []DrillResult) error {
		n := len(rows)
		var (
			ids                = make([]uuid.UUID, n)
			ts                 = make([]time.Time, n)
			scen, reg, rep     = make([]string, n), make([]string, n), make([]string, n)
			passed             = make([]uint8, n)
			rto, rpo, det, dec = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
			shift, ok          = make([]float64, n), make([]float64, n)
		)
		for i := range rows {
			r := &rows[i]
			ids[i], ts[i], scen[i], reg[i], passed[i] = r.EventID, r.Time, r.Scenario, r.Region, b2u(r.Passed)
			rto[i], rpo[i], det[i], dec[i], shift[i], ok[i] = r.RTOSeconds, r.RPOSeconds, r.DetectSeconds, r.DecideSeconds, r.ShiftSeconds, r.SuccessRatio
			rep[i] = r.Report
		}
		return appendCols(b, ids, ts, scen, reg, passed, rto, rpo, det, dec, shift, ok, rep)
	},
}

var loadRunsTable = &table[LoadRun]{
	name: TableLoadRuns,
	columns: []string{"event_id", "ts", "scenario", "target", "target_rate", "achieved_rate", "duration_seconds",
		"requests", "errors", "dropped", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "passed", "summary"},
	day:     func(r *LoadRun) int64 { return unixDay(r.Time) },
	prepare: func(r *LoadRun, now func() time.Time) { fillID(&r.EventID); fillTime(&r.Time, now) },
	encode: func(b []byte, r *LoadRun) []byte {
		b = appendUUID(b, r.EventID)
		b = appendTime(b, r.Time)
		b = appendStrings(b, r.Scenario, r.Target)
		b = appendFloats(b, r.TargetRate, r.AchievedRate, r.DurationSeconds)
		b = appendUvarint(b, r.Requests)
		b = appendUvarint(b, r.Errors)
		b = appendUvarint(b, r.Dropped)
		b = appendFloats(b, r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms)
		b = append(b, b2u(r.Passed))
		return appendStrings(b, r.Summary)
	},
	decode: func(d *decoder, r *LoadRun) {
		r.EventID, r.Time = d.uuid(), d.time()
		r.Scenario, r.Target = d.str(), d.str()
		r.TargetRate, r.AchievedRate, r.DurationSeconds = d.float(), d.float(), d.float()
		r.Requests, r.Errors, r.Dropped = d.uvarint(), d.uvarint(), d.uvarint()
		r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms = d.float(), d.float(), d.float(), d.float()
		r.Passed = d.byte() != 0
		r.Summary = d.str()
	},
	appendColumns: func(b driver.Batch, rows []LoadRun) error {
		n := len(rows)
		var (
			ids                 = make([]uuid.UUID, n)
			ts                  = make([]time.Time, n)
			scen, tgt, sum      = make([]string, n), make([]string, n), make([]string, n)
			rate, got, dur      = make([]float64, n), make([]float64, n), make([]float64, n)
			reqs, errs, drop    = make([]uint64, n), make([]uint64, n), make([]uint64, n)
			p50, p90, p99, p999 = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
			passed              = make([]uint8, n)
		)
		for i := range rows {
			r := &rows[i]
			ids[i], ts[i], scen[i], tgt[i] = r.EventID, r.Time, r.Scenario, r.Target
			rate[i], got[i], dur[i] = r.TargetRate, r.AchievedRate, r.DurationSeconds
			reqs[i], errs[i], drop[i] = r.Requests, r.Errors, r.Dropped
			p50[i], p90[i], p99[i], p999[i] = r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms
			passed[i], sum[i] = b2u(r.Passed), r.Summary
		}
		return appendCols(b, ids, ts, scen, tgt, rate, got, dur, reqs, errs, drop, p50, p90, p99, p999, passed, sum)
	},
}

// nonNil returns s, or an empty slice for nil (an Array column wants one).
func nonNil[E any](s []E) []E {
	if s == nil {
		return []E{}
	}
	return s
}
