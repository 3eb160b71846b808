package chsink

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// These tests run against a real ClickHouse 18.16 (Debian's package), started
// by internal/realserver; without it they fail with the install command.

func openConn(t testing.TB, ch *realserver.ClickHouse) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{ch.Addr},
		DialTimeout: time.Second,
		ReadTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func migrate(t testing.TB, conn driver.Conn, db string) MigrateResult {
	t.Helper()
	res, err := Migrate(context.Background(), conn, SchemaOptions{Database: db, Retention: spec.D(spec.Default().Logs.Retention)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// query runs one SELECT over HTTP and returns its TabSeparated lines.
func query(t testing.TB, ch *realserver.ClickHouse, sql string) []string {
	t.Helper()
	out := strings.TrimRight(ch.Query(t, sql), "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// contract is the schema the SLA report API is written against: the names
// and types of docs/logs.md, typed here independently of schema.go.
var contract = map[string]string{
	"logs":              "event_id UUID, ts DateTime, ts_nano UInt32, service String, region String, severity String, trace_id String, span_id String, message String, attr_keys Array(String), attr_values Array(String)",
	"spans":             "event_id UUID, trace_id String, span_id String, parent_span_id String, name String, service String, region String, start DateTime, start_nano UInt32, duration_ns UInt64, status_code String, attr_keys Array(String), attr_values Array(String)",
	"trace_index":       "trace_id String, ts DateTime, service String, region String, source String",
	"sla_events":        "event_id UUID, ts DateTime, kind String, region String, service String, slo String, from_state String, to_state String, reason String, value_keys Array(String), value_values Array(Float64)",
	"sli_minutes":       "event_id UUID, minute DateTime, service String, slo String, region String, good UInt64, total UInt64",
	"drill_results":     "event_id UUID, ts DateTime, scenario String, region String, passed UInt8, rto_seconds Float64, rpo_seconds Float64, detect_seconds Float64, decide_seconds Float64, shift_seconds Float64, success_ratio Float64, report String",
	"load_runs":         "event_id UUID, ts DateTime, scenario String, target String, target_rate Float64, achieved_rate Float64, duration_seconds Float64, requests UInt64, errors UInt64, dropped UInt64, p50_ms Float64, p90_ms Float64, p99_ms Float64, p999_ms Float64, passed UInt8, summary String",
	"schema_migrations": "version UInt32, name String, applied DateTime",
}

func TestMigrateCreatesTheContractSchemaOn18_16AndIsIdempotent(t *testing.T) {
	t.Parallel()
	ch := realserver.StartClickHouse(t)
	conn := openConn(t, ch)
	first := migrate(t, conn, "carpoolsla")
	if first.Server.Major != 18 || first.TTL {
		t.Errorf("server %s, TTL %v: this machine's ClickHouse is 18.16, which has no TTL", first.Server, first.TTL)
	}
	if !slices.Equal(first.Applied, []uint32{1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("the first run applied %v, want 1 to 7", first.Applied)
	}
	if again := migrate(t, conn, "carpoolsla"); len(again.Applied) != 0 {
		t.Errorf("the second run applied %v, want nothing", again.Applied)
	}
	if got := query(t, ch, "SELECT count(), uniqExact(version) FROM carpoolsla.schema_migrations"); !slices.Equal(got, []string{"7\t7"}) {
		t.Errorf("schema_migrations holds %v, want 7 versions once each", got)
	}
	for table, want := range contract {
		got := query(t, ch, fmt.Sprintf("SELECT concat(name, ' ', type) FROM system.columns WHERE database = 'carpoolsla' AND table = '%s'", table))
		if strings.Join(got, ", ") != want {
			t.Errorf("%s has columns\n %s\nwant\n %s", table, strings.Join(got, ", "), want)
		}
		if table == TableMigrations {
			continue
		}
		key := query(t, ch, fmt.Sprintf("SELECT partition_key FROM system.tables WHERE database = 'carpoolsla' AND name = '%s'", table))
		if len(key) != 1 || !strings.HasPrefix(key[0], "toYYYYMMDD(") {
			t.Errorf("%s is partitioned by %v, want by day (toYYYYMMDD)", table, key)
		}
	}
	// A table someone made by hand with other columns is reported, not written into blindly.
	ch.Query(t, "CREATE DATABASE other")
	ch.Query(t, "CREATE TABLE other.logs (ts DateTime, line String) ENGINE = MergeTree() ORDER BY ts")
	_, err := Migrate(context.Background(), conn, SchemaOptions{Database: "other", Retention: 48 * time.Hour})
	if err == nil || !strings.Contains(err.Error(), "other.logs") {
		t.Errorf("migrating over a foreign logs table gave %v, want an error naming it", err)
	}
}

func TestAMillionLogRecordsSurviveTwoClickHouseRestarts(t *testing.T) {
	t.Parallel()
	const total = 1_000_000
	ch := realserver.StartClickHouse(t)
	conn := openConn(t, ch)
	migrate(t, conn, "carpoolsla")
	cfg, _ := testConfig(t, t.TempDir())
	cfg.QueueSize, cfg.BatchSize, cfg.FlushInterval = 50_000, 10_000, 200*time.Millisecond
	cfg.Retry = RetryConfig{Attempts: 2, Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	cfg.InsertTimeout = 20 * time.Second
	cfg.WAL = WALConfig{Dir: cfg.WAL.Dir, MaxBytes: 2 << 30, SegmentBytes: 32 << 20} // default fsync policy (interval)
	w, err := NewWriter[LogRecord](conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, w)
	began := time.Now()
	keys := []string{"ride_id", "seq"}
	write := func(from, to int) {
		for i := from; i < to; i++ {
			rec := LogRecord{Service: "order", Region: "eu", Severity: "INFO", Message: "ride state changed",
				AttrKeys: keys, AttrValues: []string{"r" + strconv.Itoa(i/4), strconv.Itoa(i)}}
			if err := w.Write(rec); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
	}
	write(0, 250_000)
	ch.Stop(t) // outage 1, in the middle of inserts
	write(250_000, 450_000)
	outage1 := w.Stats()
	ch.Start(t)
	write(450_000, 700_000)
	ch.Stop(t) // outage 2, probably in the middle of a replay
	write(700_000, 850_000)
	ch.Start(t)
	write(850_000, total)
	written := time.Since(began)
	waitUntil := func(what string, limit time.Duration, cond func(Stats) bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for s := w.Stats(); !cond(s); s = w.Stats() {
			if time.Now().After(deadline) {
				t.Fatalf("waited %s for %s: %+v", limit, what, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("every record inserted", 90*time.Second, func(s Stats) bool {
		return s.Queued == 0 && s.WALRecords == 0 && s.Inserted >= total
	})
	caughtUp := time.Since(began)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s := w.Stats()
	t.Logf("1M records: written in %s, all in ClickHouse after %s; %d spilled to the WAL (%d during outage 1), %d replayed, %d inserted (re-inserts of unacknowledged batches count again)",
		written.Round(time.Millisecond), caughtUp.Round(time.Millisecond), s.Spilled, outage1.Spilled, s.Replayed, s.Inserted)
	if s.Lost != 0 || s.Written != total {
		t.Fatalf("written %d, lost %d", s.Written, s.Lost)
	}
	if s.Spilled < 200_000 || s.Replayed < 200_000 {
		t.Errorf("only %d records went through the WAL (%d replayed): the outages did not happen mid-stream", s.Spilled, s.Replayed)
	}
	got := query(t, ch, "SELECT uniqExact(event_id), uniqExact(attr_values[2]) FROM carpoolsla.logs")
	if !slices.Equal(got, []string{"1000000\t1000000"}) {
		t.Fatalf("distinct event ids and sequence numbers: %v, want 1000000 of each", got)
	}
	ch.Query(t, "OPTIMIZE TABLE carpoolsla.logs FINAL")
	if got := query(t, ch, "SELECT count() FROM carpoolsla.logs"); !slices.Equal(got, []string{"1000000"}) {
		t.Fatalf("after OPTIMIZE FINAL the table holds %v rows, want 1000000", got)
	}
}

func TestRetentionKeepsExactlyTheLast180Days(t *testing.T) {
	t.Parallel()
	ch := realserver.StartClickHouse(t)
	conn := openConn(t, ch)
	migrate(t, conn, "carpoolsla")
	cfg, _ := testConfig(t, t.TempDir())
	cfg.QueueSize, cfg.BatchSize = 1000, 1000
	sink, err := NewSink(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopSink := startSink(t, sink)
	now := time.Now().UTC()
	noon := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC)
	// Logs on every one of 200 days; trace ids (so trace_index rows) and SLA
	// events on a few days either side of the boundary. Every day is a
	// partition, and every partition a part per insert, which 18.16 writes at
	// some 15 ms each: the other tables get few days to keep the test short.
	const days, perDay = 200, 2
	traced := func(d int) bool { return d%20 == 0 || d == 179 || d == 180 }
	evented := []int{0, 179, 180, 199}
	for d := range days {
		at := noon.Add(-time.Duration(d) * 24 * time.Hour)
		for i := range perDay {
			rec := LogRecord{Time: at.Add(time.Duration(i) * time.Minute), Service: "order", Region: "eu", Message: "backdated"}
			if traced(d) {
				rec.TraceID = fmt.Sprintf("%032x", d*perDay+i+1)
			}
			if err := sink.Logs.Write(rec); err != nil {
				t.Fatal(err)
			}
		}
		if slices.Contains(evented, d) {
			if err := sink.Events.Write(SLAEvent{Time: at, Kind: "breaker", Region: "eu", ToState: "open"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	began := time.Now()
	if err := sink.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d backdated rows over %d days inserted in %s", days*perDay+len(evented), days, time.Since(began).Round(time.Millisecond))
	if err := stopSink(); err != nil {
		t.Fatal(err)
	}
	if got := query(t, ch, "SELECT count() FROM carpoolsla.logs"); !slices.Equal(got, []string{strconv.Itoa(days * perDay)}) {
		t.Fatalf("logs before retention: %v rows; %+v", got, sink.Stats())
	}
	retention := spec.D(spec.Default().Logs.Retention)
	job, err := NewRetentionJob(conn, RetentionConfig{Retention: retention, Now: func() time.Time { return now }, Metrics: cfg.Metrics})
	if err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	res, err := job.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the retention run dropped %d partitions in %s", len(res.Dropped), time.Since(began).Round(time.Millisecond))
	keep := RetentionDays(retention)
	oldest := OldestKeptDay(now, time.UTC, keep) // these machines' ClickHouse runs in UTC
	if res.OldestKept != oldest || keep != 180 {
		t.Errorf("oldest kept day %d (retention %d days), want %d", res.OldestKept, keep, oldest)
	}
	keptTraced := 0
	for d := range keep {
		if traced(d) {
			keptTraced++
		}
	}
	for table, wantDays := range map[string]int{"logs": keep, "trace_index": keptTraced, "sla_events": 2} {
		got := query(t, ch, fmt.Sprintf("SELECT uniqExact(toYYYYMMDD(ts)), min(toYYYYMMDD(ts)) FROM carpoolsla.%s", table))
		if want := fmt.Sprintf("%d\t%d", wantDays, oldest); !slices.Equal(got, []string{want}) {
			t.Errorf("%s keeps (days, oldest day) %v, want %s", table, got, want)
		}
	}
	if got := query(t, ch, "SELECT count() FROM carpoolsla.logs"); !slices.Equal(got, []string{strconv.Itoa(keep * perDay)}) {
		t.Errorf("logs after retention: %v rows, want %d", got, keep*perDay)
	}
	if n := testutil.ToFloat64(cfg.Metrics.retentionDropped.WithLabelValues("carpoolsla", "logs")); n != days-180 {
		t.Errorf("dropped partitions of logs counted %v, want %d", n, days-180)
	}
	if n := testutil.ToFloat64(cfg.Metrics.retentionLastSuccess.WithLabelValues("carpoolsla")); n != float64(now.Unix()) {
		t.Errorf("last success %v, want %d", n, now.Unix())
	}
	again, err := job.RunOnce(context.Background())
	if err != nil || len(again.Dropped) != 0 {
		t.Errorf("a second run dropped %v (%v), want nothing", again.Dropped, err)
	}
}

// startSink runs every writer of s until stop (or the test's end).
func startSink(t *testing.T, s *Sink) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestATraceIDOnALogLineListsTheRidesSpansAcrossRegions(t *testing.T) {
	t.Parallel()
	ch := realserver.StartClickHouse(t)
	conn := openConn(t, ch)
	migrate(t, conn, "carpoolsla")
	cfg, _ := testConfig(t, t.TempDir())
	sink, err := NewSink(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopSink := startSink(t, sink)
	ctx := context.Background()

	type hop struct{ service, region string }
	hops := []hop{{"gateway", "eu"}, {"order", "us"}, {"payment", "ap"}}
	var providers []trace.TracerProvider
	var shutdowns []func(context.Context) error
	for _, h := range hops {
		tp, shutdown, err := telemetry.NewTracerProvider(telemetry.TracingConfig{Service: h.service, Region: h.region,
			SampleRatio: 1, Exporter: NewSpanExporter(sink.Spans), BatchTimeout: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		providers, shutdowns = append(providers, tp), append(shutdowns, shutdown)
	}
	logOrder, err := NewHandler(sink.Logs, HandlerOptions{Service: "order", Region: "us"})
	if err != nil {
		t.Fatal(err)
	}
	// One ride: gateway (eu) → order (us), which logs → payment (ap). And
	// another ride, to be left out.
	ride := func(name string) (traceID string) {
		c1, s1 := providers[0].Tracer("t").Start(ctx, "POST /v1/rides")
		c2, s2 := providers[1].Tracer("t").Start(c1, "create ride")
		slog.New(logOrder).InfoContext(c2, "ride created", "ride", name)
		_, s3 := providers[2].Tracer("t").Start(c2, "authorize payment")
		s3.End()
		s2.End()
		s1.End()
		return s1.SpanContext().TraceID().String()
	}
	tid := ride("r1")
	other := ride("r2")
	for _, shutdown := range shutdowns {
		if err := shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := stopSink(); err != nil {
		t.Fatal(err)
	}

	// What an SRE has: the trace id on the log line.
	line := query(t, ch, "SELECT trace_id FROM carpoolsla.logs WHERE attr_values[indexOf(attr_keys, 'ride')] = 'r1'")
	if !slices.Equal(line, []string{tid}) {
		t.Fatalf("the log line carries trace ids %v, want %s", line, tid)
	}
	tr, err := FindTrace(ctx, conn, "carpoolsla", line[0])
	if err != nil {
		t.Fatal(err)
	}
	var where []string
	for _, e := range tr.Entries {
		where = append(where, e.Source+":"+e.Service+"@"+e.Region)
	}
	slices.Sort(where)
	if want := []string{"log:order@us", "span:gateway@eu", "span:order@us", "span:payment@ap"}; !slices.Equal(where, want) {
		t.Errorf("trace_index lists %v, want %v", where, want)
	}
	if len(tr.Spans) != 3 {
		t.Fatalf("%d spans for the ride, want 3: %+v", len(tr.Spans), tr.Spans)
	}
	byName := map[string]SpanRecord{}
	for _, s := range tr.Spans {
		if s.TraceID != tid {
			t.Errorf("span %s of another trace: %s", s.Name, s.TraceID)
		}
		byName[s.Name] = s
	}
	root, order, pay := byName["POST /v1/rides"], byName["create ride"], byName["authorize payment"]
	if root.Region != "eu" || order.Region != "us" || pay.Region != "ap" || root.ParentSpanID != "" ||
		order.ParentSpanID != root.SpanID || pay.ParentSpanID != order.SpanID {
		t.Errorf("the spans do not chain across regions: %+v", tr.Spans)
	}
	if len(tr.Logs) != 1 || tr.Logs[0].SpanID != order.SpanID || tr.Logs[0].Message != "ride created" {
		t.Errorf("the ride's log lines: %+v, want the one order wrote in its span", tr.Logs)
	}
	if tr2, err := FindTrace(ctx, conn, "carpoolsla", other); err != nil || len(tr2.Spans) != 3 || len(tr2.Logs) != 1 {
		t.Errorf("the other ride: %d spans, %d logs (%v)", len(tr2.Spans), len(tr2.Logs), err)
	}
	if _, err := FindTrace(ctx, conn, "carpoolsla", "nope"); err == nil {
		t.Error("a malformed trace id was looked up")
	}
}

func TestAnUnreachableClickHouseAtStartFillsTheWALAndItsBoundIsCounted(t *testing.T) {
	t.Parallel()
	ch := realserver.StartClickHouse(t)
	setup := openConn(t, ch)
	migrate(t, setup, "roomy")
	migrate(t, setup, "tight")
	ch.Stop(t) // down before any writer starts

	newLogs := func(db string, walBytes int64) *Writer[LogRecord] {
		cfg, _ := testConfig(t, t.TempDir())
		cfg.Database, cfg.QueueSize, cfg.BatchSize = db, 5_000, 2_000
		cfg.Retry = RetryConfig{Attempts: 1, Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
		cfg.WAL.MaxBytes, cfg.WAL.SegmentBytes = walBytes, min(walBytes, 1<<20)
		w, err := NewWriter[LogRecord](openConn(t, ch), cfg)
		if err != nil {
			t.Fatal(err)
		}
		start(t, w)
		return w
	}
	const n = 50_000
	roomy, tight := newLogs("roomy", 64<<20), newLogs("tight", 256<<10)
	dropped := 0
	for i := range n {
		rec := LogRecord{Service: "order", Region: "eu", Message: "while the store is down", AttrKeys: []string{"seq"}, AttrValues: []string{strconv.Itoa(i)}}
		if err := roomy.Write(rec); err != nil {
			t.Fatalf("the roomy writer dropped record %d: %v", i, err)
		}
		rec.EventID = [16]byte{}
		if tight.Write(rec) != nil {
			dropped++
		}
	}
	settle := func(w *Writer[LogRecord], what string, cond func(Stats) bool) Stats {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for s := w.Stats(); ; s = w.Stats() {
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("waited 60s for %s: %+v", what, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	r := settle(roomy, "every record of the roomy writer in its WAL", func(s Stats) bool { return s.WALRecords == n })
	tt := settle(tight, "the tight writer's queue drained", func(s Stats) bool { return s.Queued == 0 && uint64(s.WALRecords)+s.Lost == n })
	if r.Lost != 0 || !r.Degraded || r.Inserted != 0 {
		t.Errorf("roomy writer with the store down: %+v", r)
	}
	if tt.Lost == 0 || tt.WALBytes > 256<<10 {
		t.Fatalf("tight writer: %+v; 50,000 records cannot fit in 256 KiB", tt)
	}
	if lost := testutil.ToFloat64(tight.cfg.Metrics.lost.WithLabelValues("logs", "wal_full")); lost != float64(tt.Lost) {
		t.Errorf("carpool_chsink_lost_records_total{reason=wal_full} = %v, the writer lost %d", lost, tt.Lost)
	}
	t.Logf("with ClickHouse down: roomy WAL %d records in %d bytes; tight WAL %d records, %d lost (%d Write calls returned ErrDropped)",
		r.WALRecords, r.WALBytes, tt.WALRecords, tt.Lost, dropped)

	ch.Start(t)
	settle(roomy, "the roomy writer caught up", func(s Stats) bool { return s.WALRecords == 0 && s.Inserted >= n && !s.Degraded })
	final := settle(tight, "the tight writer caught up", func(s Stats) bool { return s.WALRecords == 0 && s.Queued == 0 && !s.Degraded })
	if got := query(t, ch, "SELECT uniqExact(event_id) FROM roomy.logs"); !slices.Equal(got, []string{strconv.Itoa(n)}) {
		t.Errorf("roomy.logs holds %v distinct records, want %d", got, n)
	}
	want := strconv.FormatUint(n-final.Lost, 10)
	if got := query(t, ch, "SELECT uniqExact(event_id) FROM tight.logs"); !slices.Equal(got, []string{want}) {
		t.Errorf("tight.logs holds %v distinct records, want written minus lost = %s", got, want)
	}
}

func TestABatchInsertedTwiceIsOneSetOfRows(t *testing.T) {
	t.Parallel()
	ch := realserver.StartClickHouse(t)
	conn := openConn(t, ch)
	migrate(t, conn, "carpoolsla")
	cfg, _ := testConfig(t, t.TempDir())
	cfg.QueueSize, cfg.BatchSize = 4096, 1000
	sink, err := NewSink(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopSink := startSink(t, sink)
	logs, _, events, _, _, _ := sampleRows()
	minute := time.Now().UTC().Truncate(time.Minute)
	// What a replay after an unacknowledged insert does: the same records, ids and all, again.
	for range 2 {
		for i := range 1000 {
			r := logs[0]
			r.EventID = IDFrom("log", strconv.Itoa(i))
			r.Time = minute.Add(time.Duration(i) * time.Millisecond)
			if err := sink.Logs.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		ev := events[0]
		ev.Time = minute
		if err := sink.Events.Write(ev); err != nil {
			t.Fatal(err)
		}
		// A minute recomputed: no id given, the same derived one.
		if err := sink.SLIMinutes.Write(SLIMinute{Minute: minute, Service: "order", SLO: "availability", Region: "eu", Good: 99, Total: 100}); err != nil {
			t.Fatal(err)
		}
		if err := sink.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stopSink(); err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]string{"logs": "1000", "sla_events": "1", "sli_minutes": "1"} {
		if got := query(t, ch, "SELECT uniqExact(event_id) FROM carpoolsla."+table); !slices.Equal(got, []string{want}) {
			t.Errorf("%s: %v distinct event ids, want %s", table, got, want)
		}
		if got := query(t, ch, "SELECT count() FROM carpoolsla."+table+" FINAL"); !slices.Equal(got, []string{want}) {
			t.Errorf("%s FINAL: %v rows, want %s", table, got, want)
		}
		ch.Query(t, "OPTIMIZE TABLE carpoolsla."+table+" FINAL")
		if got := query(t, ch, "SELECT count() FROM carpoolsla."+table); !slices.Equal(got, []string{want}) {
			t.Errorf("%s after OPTIMIZE FINAL: %v rows, want %s", table, got, want)
		}
	}
}
