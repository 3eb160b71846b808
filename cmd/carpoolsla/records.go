package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/loadgen/drill"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// chRecords records one-shot results (a load run, a drill) in ClickHouse's
// load_runs and drill_results, for the commands' --clickhouse flag. Records
// go through chsink's writers with a write-ahead log in the user's cache
// folder: when ClickHouse is unreachable the record waits there and is
// replayed by the next command that records to the same place.
type chRecords struct {
	conn   clickhouse.Conn
	sink   *chsink.Sink
	cancel context.CancelFunc
	done   chan error
}

// openRecords connects to addr (host:port, native protocol), migrates the
// schema and starts the writers. retention is the spec's logs.retention.
func openRecords(ctx context.Context, addr string, retention time.Duration) (*chRecords, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("--clickhouse %s: %w", addr, err)
	}
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chsink.Migrate(mctx, conn, chsink.SchemaOptions{Retention: retention}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("--clickhouse %s: %w (is ClickHouse running there? deploy/local/stack.sh starts one)", addr, err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	sink, err := chsink.NewSink(conn, chsink.Config{WAL: chsink.WALConfig{Dir: filepath.Join(cache, "carpoolsla", "records-wal")}})
	if err != nil {
		conn.Close()
		return nil, err
	}
	rctx, stop := context.WithCancel(context.Background())
	r := &chRecords{conn: conn, sink: sink, cancel: stop, done: make(chan error, 1)}
	go func() { r.done <- sink.Run(rctx) }()
	return r, nil
}

// RecordRun writes a load run (loadgen.RunRecorder).
func (r *chRecords) RecordRun(ctx context.Context, run loadgen.Run) error {
	row := chsink.LoadRun{EventID: chsink.IDFrom("load_run", run.EventID), Time: run.TS, Scenario: run.Scenario, Target: run.Target,
		TargetRate: run.TargetRate, AchievedRate: run.AchievedRate, DurationSeconds: run.DurationSeconds,
		Requests: uint64(max(run.Requests, 0)), Errors: uint64(max(run.Errors, 0)), Dropped: uint64(max(run.Dropped, 0)),
		P50Ms: run.P50Ms, P90Ms: run.P90Ms, P99Ms: run.P99Ms, P999Ms: run.P999Ms, Passed: run.Passed, Summary: run.Summary}
	if err := r.sink.LoadRuns.Write(row); err != nil {
		return err
	}
	return r.flush(ctx, r.sink.LoadRuns.Flush, r.sink.LoadRuns.Stats)
}

// RecordDrill writes a drill's result (drill.Recorder).
func (r *chRecords) RecordDrill(ctx context.Context, res drill.Result) error {
	row := chsink.DrillResult{EventID: chsink.IDFrom("drill", res.EventID), Time: res.TS, Scenario: res.Scenario, Region: res.Region,
		Passed: res.Passed, RTOSeconds: res.RTOSeconds, RPOSeconds: res.RPOSeconds, DetectSeconds: res.DetectSeconds,
		DecideSeconds: res.DecideSeconds, ShiftSeconds: res.ShiftSeconds, SuccessRatio: res.SuccessRatio, Report: res.Markdown()}
	if err := r.sink.Drills.Write(row); err != nil {
		return err
	}
	return r.flush(ctx, r.sink.Drills.Flush, r.sink.Drills.Stats)
}

// flush waits for the record to be inserted, and says so when it is only
// in the write-ahead log.
func (r *chRecords) flush(ctx context.Context, flush func(context.Context) error, stats func() chsink.Stats) error {
	if err := flush(ctx); err != nil {
		return err
	}
	if st := stats(); st.Inserted < st.Written {
		return fmt.Errorf("ClickHouse did not take the record; it waits in the write-ahead log (%d records) for the next run", st.WALRecords)
	}
	return nil
}

// Close stops the writers and the connection.
func (r *chRecords) Close() error {
	r.cancel()
	err := <-r.done
	r.conn.Close()
	return err
}
