package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/loadgen/drill"
	"github.com/carpoolsla/carpoolsla/sla/report"
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
	if err := r.sink.Drills.Write(drillRow(drillRecord(res))); err != nil {
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

// drillRecord is a drill's result as the report API takes it.
func drillRecord(res drill.Result) report.DrillRecord {
	return report.DrillRecord{EventID: res.EventID, TS: res.TS, Scenario: res.Scenario, Region: res.Region, Passed: res.Passed,
		RTOSeconds: res.RTOSeconds, RPOSeconds: res.RPOSeconds, DetectSeconds: res.DetectSeconds, DecideSeconds: res.DecideSeconds,
		ShiftSeconds: res.ShiftSeconds, SuccessRatio: res.SuccessRatio, Report: res.Markdown()}
}

// drillRow is a drill record as a drill_results row. The row's id derives
// from the drill's run id, so a drill recorded both directly (--clickhouse)
// and through a report API that writes to the same ClickHouse is one row.
func drillRow(d report.DrillRecord) chsink.DrillResult {
	return chsink.DrillResult{EventID: chsink.IDFrom("drill", d.EventID), Time: d.TS, Scenario: d.Scenario, Region: d.Region,
		Passed: d.Passed, RTOSeconds: d.RTOSeconds, RPOSeconds: d.RPOSeconds, DetectSeconds: d.DetectSeconds,
		DecideSeconds: d.DecideSeconds, ShiftSeconds: d.ShiftSeconds, SuccessRatio: d.SuccessRatio, Report: d.Report}
}

// reportPoster records drill results through a report API's
// POST /api/v1/drills (the demo's, for example), for `drill --report-url`.
type reportPoster struct {
	url, token string
	client     *http.Client
}

// RecordDrill posts the result (drill.Recorder).
func (p reportPoster) RecordDrill(ctx context.Context, res drill.Result) error {
	body, err := json.Marshal(drillRecord(res))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("posting the result to %s: %w", p.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("posting the result to %s: %s: %s", p.url, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// recorders records a drill's result with each of its recorders.
type recorders []drill.Recorder

func (rs recorders) RecordDrill(ctx context.Context, res drill.Result) error {
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.RecordDrill(ctx, res))
	}
	return errors.Join(errs...)
}
