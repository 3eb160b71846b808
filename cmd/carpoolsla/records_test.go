package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/loadgen/drill"
)

// TestRunsAndDrillsAreRecordedInClickHouse writes a load run and a drill
// result through --clickhouse's recorder into a real ClickHouse 18.16, twice
// each (a retry): the tables hold one row of each.
func TestRunsAndDrillsAreRecordedInClickHouse(t *testing.T) {
	ch := realserver.StartClickHouse(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the write-ahead log's folder
	ctx := context.Background()
	rec, err := openRecords(ctx, ch.Addr, 180*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	run := loadgen.Run{EventID: "run-1", TS: at, Scenario: "ride", Target: "http://127.0.0.1:1", TargetRate: 50, AchievedRate: 49.5,
		DurationSeconds: 60, Requests: 2970, Errors: 3, P99Ms: 412.5, Passed: true, Summary: "{}"}
	res := drill.Result{EventID: "drill-1", TS: at, Scenario: "region_down", Region: "sh-a", Passed: true, Measurable: true,
		RTOSeconds: 1.4, DetectSeconds: 0.7, ShiftSeconds: 0.7, SuccessRatio: 1}
	for range 2 {
		if err := rec.RecordRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		if err := rec.RecordDrill(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.TrimSpace(ch.Query(t, "SELECT uniqExact(event_id), any(requests), any(p99_ms) FROM carpoolsla.load_runs"))
	if got != "1\t2970\t412.5" {
		t.Errorf("load_runs: %q, want one run of 2970 requests with p99 412.5 ms", got)
	}
	got = strings.TrimSpace(ch.Query(t, "SELECT uniqExact(event_id), any(scenario), any(rto_seconds), any(passed) FROM carpoolsla.drill_results"))
	if got != "1\tregion_down\t1.4\t1" {
		t.Errorf("drill_results: %q, want one passed region_down drill with RTO 1.4 s", got)
	}
}
