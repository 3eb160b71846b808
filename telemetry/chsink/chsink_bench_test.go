package chsink

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// benchRows returns n log records of a realistic shape (about 200 bytes of
// text, two attributes, a trace id on one in four).
func benchRows(n int) []LogRecord {
	rows := make([]LogRecord, n)
	now := time.Now()
	keys := []string{"ride_id", "driver_id"}
	for i := range rows {
		r := LogRecord{
			EventID: uuid.New(), Time: now.Add(time.Duration(i) * time.Microsecond),
			Service: "order", Region: []string{"eu", "us", "ap"}[i%3], Severity: "INFO",
			Message:  "ride state changed from requested to matched after the dispatcher found a driver nearby",
			AttrKeys: keys, AttrValues: []string{"r" + strconv.Itoa(i), "d" + strconv.Itoa(i%977)},
		}
		if i%4 == 0 {
			r.TraceID, r.SpanID = fmt.Sprintf("%032x", i), fmt.Sprintf("%016x", i)
		}
		rows[i] = r
	}
	return rows
}

// rawAppend inserts rows with clickhouse-go's row-wise Append, in batches.
func rawAppend(b *testing.B, conn driver.Conn, db string, rows []LogRecord, batch int) {
	ctx := context.Background()
	q := fmt.Sprintf("INSERT INTO %s.logs (event_id, ts, ts_nano, service, region, severity, trace_id, span_id, message, attr_keys, attr_values)", db)
	for start := 0; start < len(rows); start += batch {
		bt, err := conn.PrepareBatch(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows[start:min(start+batch, len(rows))] {
			if err := bt.Append(r.EventID, r.Time, uint32(r.Time.Nanosecond()), r.Service, r.Region, r.Severity, r.TraceID, r.SpanID, r.Message, r.AttrKeys, r.AttrValues); err != nil {
				b.Fatal(err)
			}
		}
		if err := bt.Send(); err != nil {
			b.Fatal(err)
		}
	}
}

// rawColumns inserts rows with the pipeline's own column-wise append, in
// batches, without the queue, the goroutines or the WAL: the ceiling.
func rawColumns(b *testing.B, conn driver.Conn, db string, rows []LogRecord, batch int) {
	ins := newCHInserter(conn, db, logsTable)
	for start := 0; start < len(rows); start += batch {
		if err := ins.Insert(context.Background(), rows[start:min(start+batch, len(rows))]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipelineVsRawAppend sends the same 100,000 log rows per iteration
// to a real ClickHouse three ways, each into its own database: clickhouse-go
// Append batches (what the issue compares against), the pipeline's column
// batches alone, and the whole pipeline (Write → queue → batches → insert,
// with a WAL configured). It reports rows/s of each and the ratios.
func BenchmarkPipelineVsRawAppend(b *testing.B) {
	const n, batch = 100_000, 10_000
	ch := realserver.StartClickHouse(b)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for _, db := range []string{"raw", "cols", "pipe"} {
		if _, err := Migrate(context.Background(), conn, SchemaOptions{Database: db, Retention: 180 * 24 * time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	rows := benchRows(n)
	cfg := Config{Database: "pipe", BatchSize: batch, WAL: WALConfig{Dir: b.TempDir()}}
	w, err := NewWriter[LogRecord](conn, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var raw, cols, pipe time.Duration
	b.ResetTimer()
	for i := range b.N {
		for j := range rows { // fresh ids: every iteration inserts new rows
			rows[j].EventID = uuid.New()
		}
		began := time.Now()
		rawAppend(b, conn, "raw", rows, batch)
		raw += time.Since(began)

		began = time.Now()
		rawColumns(b, conn, "cols", rows, batch)
		cols += time.Since(began)

		began = time.Now()
		for _, r := range rows {
			if err := w.Write(r); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Flush(ctx); err != nil { // the run's last partial batch, without waiting FlushInterval
			b.Fatal(err)
		}
		target := uint64((i + 1) * n)
		deadline := time.Now().Add(2 * time.Minute)
		for w.Stats().Inserted < target {
			if time.Now().After(deadline) {
				b.Fatalf("the pipeline did not insert %d rows in 2 minutes: %+v", n, w.Stats())
			}
			time.Sleep(time.Millisecond)
		}
		pipe += time.Since(began)
	}
	b.StopTimer()
	total := float64(b.N * n)
	rawRate, colRate, pipeRate := total/raw.Seconds(), total/cols.Seconds(), total/pipe.Seconds()
	b.ReportMetric(rawRate, "raw_append_rows/s")
	b.ReportMetric(colRate, "raw_columns_rows/s")
	b.ReportMetric(pipeRate, "pipeline_rows/s")
	b.ReportMetric(pipeRate/rawRate, "pipeline/raw_append")
	b.ReportMetric(pipeRate/colRate, "pipeline/raw_columns")
	if s := w.Stats(); s.Spilled != 0 || s.Lost != 0 {
		b.Logf("the pipeline spilled %d and lost %d records with ClickHouse up", s.Spilled, s.Lost)
	}
}

// BenchmarkMemoryDuringOutage writes 500,000 log records per iteration
// through a writer whose ClickHouse is unreachable (nothing listens on its
// port): every batch goes to the WAL. It samples the heap every 2 ms and
// reports the peak HeapInuse, which the queue and batch bounds keep flat
// however long the outage lasts.
func BenchmarkMemoryDuringOutage(b *testing.B) {
	const n = 500_000
	addr := fmt.Sprintf("127.0.0.1:%d", realserver.FreePort(b)) // nobody listens
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	rows := benchRows(10_000)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-t.C:
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			case <-stopSampling:
				return
			}
		}
	})
	var spilled uint64
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		cfg := Config{WAL: WALConfig{Dir: b.TempDir(), Sync: SyncInterval}, Retry: RetryConfig{Max: time.Second},
			Logger: slog.New(slog.DiscardHandler)}
		w, err := NewWriter[LogRecord](conn, cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		began := time.Now()
		for i := range n {
			r := rows[i%len(rows)]
			r.EventID = uuid.UUID{}
			if err := w.Write(r); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.Now().Add(2 * time.Minute)
		for s := w.Stats(); s.WALRecords < n; s = w.Stats() {
			if time.Now().After(deadline) {
				b.Fatalf("the outage did not fill the WAL in 2 minutes: %+v", s)
			}
			time.Sleep(time.Millisecond)
		}
		elapsed += time.Since(began)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		s := w.Stats()
		spilled += s.Spilled
		if s.Lost != 0 {
			b.Fatalf("lost %d records with room in the WAL", s.Lost)
		}
	}
	b.StopTimer()
	close(stopSampling)
	sampler.Wait()
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak_heap_inuse_MiB")
	b.ReportMetric(float64(baseline)/(1<<20), "baseline_heap_inuse_MiB")
	b.ReportMetric(float64(spilled)/elapsed.Seconds(), "spilled_rows/s")
}

// BenchmarkWrite is the cost a request path pays per log record: Write into
// a running writer whose store takes everything (two goroutines writing, the
// batcher taking records out on the same two cores).
func BenchmarkWrite(b *testing.B) {
	w, err := NewWriterFor[LogRecord](discardStore{}, Config{WAL: WALConfig{Dir: b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	r := benchRows(1)[0]
	r.EventID = uuid.UUID{}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = w.Write(r) // a loss is counted in Stats
		}
	})
	b.StopTimer()
	s := w.Stats()
	b.ReportMetric(float64(s.Spilled)/float64(b.N), "spilled/op")
	b.ReportMetric(float64(s.Lost)/float64(b.N), "lost/op")
}

// BenchmarkHandler is one slog line with three attributes through Handler
// into a running writer.
func BenchmarkHandler(b *testing.B) {
	w, err := NewWriterFor[LogRecord](discardStore{}, Config{WAL: WALConfig{Dir: b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h, err := NewHandler(w, HandlerOptions{Service: "order", Region: "eu"})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(h).With("component", "dispatch")
	b.ReportAllocs()
	for b.Loop() {
		log.InfoContext(ctx, "ride matched", "ride_id", "r123", "driver_id", 977, "eta", 240*time.Second)
	}
}

type discardStore struct{}

func (discardStore) Insert(context.Context, []LogRecord) error { return nil }
