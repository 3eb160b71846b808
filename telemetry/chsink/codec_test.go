package chsink

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

// sampleRows returns one filled record of every table (and one with empty
// slices and strings, which must survive as such).
func sampleRows() (logs []LogRecord, spans []SpanRecord, events []SLAEvent, minutes []SLIMinute, drills []DrillResult, runs []LoadRun) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	logs = []LogRecord{
		{EventID: uuid.New(), Time: at, Service: "order", Region: "eu", Severity: "INFO", TraceID: "0af7651916cd43dd8448eb211c80319c",
			SpanID: "b7ad6b7169203331", Message: "ride created ✓\n", AttrKeys: []string{"ride_id", "req.path"}, AttrValues: []string{"r1", "/v1/rides"}},
		{EventID: uuid.New(), Time: at.Add(time.Second), Message: ""},
	}
	spans = []SpanRecord{{EventID: uuid.New(), TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", ParentSpanID: "00f067aa0ba902b7",
		Name: "POST /v1/rides", Service: "gateway", Region: "us", Start: at, Duration: 1500 * time.Microsecond, StatusCode: "Error",
		AttrKeys: []string{"http.response.status_code"}, AttrValues: []string{"503"}}}
	events = []SLAEvent{{EventID: uuid.New(), Time: at, Kind: "breaker", Region: "eu", Service: "order", SLO: "latency", FromState: "closed",
		ToState: "open", Reason: "p99 above 300ms for 2m", ValueKeys: []string{"p99", "nan"}, ValueValues: []float64{0.42, math.Inf(1)}}}
	minutes = []SLIMinute{{EventID: uuid.New(), Minute: at.Truncate(time.Minute), Service: "order", SLO: "availability", Region: "eu", Good: 59_990, Total: 60_000}}
	drills = []DrillResult{{EventID: uuid.New(), Time: at, Scenario: "region-down", Region: "eu", Passed: true, RTOSeconds: 31.5, RPOSeconds: 1.25,
		DetectSeconds: 6, DecideSeconds: 5, ShiftSeconds: 20.5, SuccessRatio: 0.9991, Report: `{"steps":3}`}}
	runs = []LoadRun{{EventID: uuid.New(), Time: at, Scenario: "rush-hour", Target: "http://127.0.0.1:8080", TargetRate: 2000, AchievedRate: 1998.5,
		DurationSeconds: 60, Requests: 119_910, Errors: 12, Dropped: 3, P50Ms: 4.2, P90Ms: 9.1, P99Ms: 31, P999Ms: 120, Passed: false, Summary: "p99 ok"}}
	return
}

func roundTrip[T Row](t *testing.T, rows []T) {
	t.Helper()
	tbl := tableFor[T]()
	payload := encodeFrame(nil, tbl, rows)
	got, err := decodeFrame(nil, tbl, payload)
	if err != nil {
		t.Fatalf("%s: decoding what was encoded: %v", tbl.name, err)
	}
	if n, err := frameRecords(payload); err != nil || n != int64(len(rows)) {
		t.Errorf("%s: the frame says %d records (%v), want %d", tbl.name, n, err, len(rows))
	}
	for i := range rows {
		if !reflect.DeepEqual(normal(got[i]), normal(rows[i])) {
			t.Errorf("%s row %d:\n got %+v\nwant %+v", tbl.name, i, got[i], rows[i])
		}
	}
	// Every cut of the payload is an error, never a panic or a silent short read.
	for cut := range len(payload) {
		if _, err := decodeFrame(nil, tbl, payload[:cut]); err == nil {
			t.Fatalf("%s: a payload cut at %d of %d bytes decoded without error", tbl.name, cut, len(payload))
		}
	}
}

// normal makes times comparable (the WAL keeps the instant, not the zone)
// and nil and empty slices equal.
func normal[T any](r T) T {
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch x := f.Interface().(type) {
		case time.Time:
			f.Set(reflect.ValueOf(x.UTC()))
		case []string:
			if len(x) == 0 {
				f.Set(reflect.Zero(f.Type()))
			}
		case []float64:
			if len(x) == 0 {
				f.Set(reflect.Zero(f.Type()))
			}
		}
	}
	return r
}

func TestEveryRecordTypeSurvivesTheWALFormat(t *testing.T) {
	logs, spans, events, minutes, drills, runs := sampleRows()
	roundTrip(t, logs)
	roundTrip(t, spans)
	roundTrip(t, events)
	roundTrip(t, minutes)
	roundTrip(t, drills)
	roundTrip(t, runs)
}

func TestEveryTableHasAsManyColumnsAsItsSchema(t *testing.T) {
	f := func(name string, columns []string) {
		t.Helper()
		for _, def := range schemaTables {
			if def.name != name {
				continue
			}
			if len(def.columns) != len(columns) {
				t.Fatalf("%s: the writer inserts %d columns, the schema has %d", name, len(columns), len(def.columns))
			}
			for i, c := range def.columns {
				if c.name != columns[i] {
					t.Errorf("%s column %d: the writer inserts %s, the schema has %s", name, i, columns[i], c.name)
				}
			}
			return
		}
		t.Errorf("%s is not in the schema", name)
	}
	f(logsTable.name, logsTable.columns)
	f(spansTable.name, spansTable.columns)
	f(slaEventsTable.name, slaEventsTable.columns)
	f(sliMinutesTable.name, sliMinutesTable.columns)
	f(drillResultsTable.name, drillResultsTable.columns)
	f(loadRunsTable.name, loadRunsTable.columns)
}

func TestPrepareFillsIDsAndTimes(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 25, 10, 0, 30, 5, time.UTC) }
	var l LogRecord
	logsTable.prepare(&l, now)
	if l.EventID == (uuid.UUID{}) || !l.Time.Equal(now()) {
		t.Errorf("a log record without id and time got %v at %v", l.EventID, l.Time)
	}
	m := SLIMinute{Minute: now(), Service: "order", SLO: "availability", Region: "eu"}
	m2 := m
	sliMinutesTable.prepare(&m, now)
	sliMinutesTable.prepare(&m2, now)
	if m.EventID != m2.EventID || m.EventID == (uuid.UUID{}) {
		t.Errorf("the same minute got ids %v and %v, want one derived id", m.EventID, m2.EventID)
	}
	if !m.Minute.Equal(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("the minute was not truncated: %v", m.Minute)
	}
	s := SpanRecord{TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331"}
	spansTable.prepare(&s, now)
	if s.EventID != IDFrom(s.TraceID, s.SpanID) {
		t.Errorf("a span's id is %v, want the one derived from its trace and span ids", s.EventID)
	}
	if IDFrom("ab", "c") == IDFrom("a", "bc") {
		t.Error(`IDFrom("ab","c") equals IDFrom("a","bc")`)
	}
}

func TestABatchIsCutBeforeItSpansTooManyDays(t *testing.T) {
	day := func(d *int64) int64 { return *d }
	f := func(days []int64, limit, want int) {
		t.Helper()
		if got := withinDays(days, day, limit); got != want {
			t.Errorf("withinDays(%v, %d) = %d, want %d", days, limit, got, want)
		}
	}
	f([]int64{5}, 1, 1)
	f([]int64{5, 5, 5}, 1, 3)
	f([]int64{5, 5, 6}, 1, 2)
	f([]int64{5, 6, 5, 6, 7}, 2, 4)
	f([]int64{1, 2, 3}, 99, 3)
	if got := unixDay(time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC)); got != -1 {
		t.Errorf("the day before the epoch is %d, want -1", got)
	}
	if got := unixDay(time.Date(1970, 1, 2, 0, 0, 0, 0, time.FixedZone("X", 3600))); got != 0 {
		t.Errorf("1970-01-02T00:00+01:00 is UTC day %d, want 0", got)
	}
}
