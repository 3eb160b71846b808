package drill

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/carpoolsla/carpoolsla/exporters/rto"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func tp(d time.Duration) *time.Time { t := t0.Add(d); return &t }

// sampleResult is a failed region_down drill with every section filled in.
func sampleResult() Result {
	lag, exp := 0.4, 0.1
	return Result{
		EventID: "0b5c8f7e-1111-4222-8333-444455556666", TS: t0, Scenario: "region_down", Region: "sh-a",
		Measurable: true, RTOSeconds: 3.25, RPOSeconds: 0.5, DetectSeconds: 0.75, DecideSeconds: 0, ShiftSeconds: 2.5,
		CatchupSeconds: NotMeasured, SuccessRatio: 0.9995,
		Faulted: []string{"sh-a"}, Survivors: []string{"sh-b", "bj-a"}, Fault: Fault{Kind: KindDown},
		Objectives: Objectives{RPOSeconds: 2, RPOFrom: "dr.pairs[sh-a→sh-b]", RTOSeconds: 60, RTOFrom: "dr.pairs[sh-a→sh-b]", Success: 0.9999, SuccessFrom: "services[order].slos[availability]"},
		Timeline: Timeline{Start: t0.Add(-5 * time.Second), Baseline: tp(-10 * time.Millisecond), T0: tp(0), T0Source: "injected", T0Acked: tp(time.Millisecond),
			Detect: tp(750 * time.Millisecond), DetectedBy: "gateway sh-b: sh-a ejected", Decide: tp(750 * time.Millisecond), DecidedBy: "gateway sh-b took sh-a out (ejected)",
			Shift: tp(3250 * time.Millisecond), FirstServedElsewhere: tp(40 * time.Millisecond), ServedElsewhereBy: "ride 7 of r (home sh-a) served by sh-b",
			Recovered: tp(3250 * time.Millisecond), RecoveredBy: "the shift", Cleared: tp(30 * time.Second), Healthy: tp(32 * time.Second), End: t0.Add(35 * time.Second)},
		Load: LoadStats{RateTarget: 20, AchievedRate: 19.9, Scheduled: 800, Sent: 800, Acked: 799, Failed: 1, SentAfterFault: 700, FailedAfterFault: 1,
			FirstAttemptFailed: 230, Fallbacks: 230, SuccessRatio: 0.99875, FirstAttemptSuccessRatio: 0.7125, LatencyP50Seconds: 0.003, LatencyP99Seconds: 0.02, LatencyMaxSeconds: 0.3,
			FailureExamples: []string{"drill-x-12 at 2026-11-25T10:00:01Z (home sh-a): via sh-a: EOF; via sh-b: status 502"}},
		RPO: RPOReport{LagAtFault: map[string]PairLag{"sh-a→sh-b": {SyncLagSeconds: &lag, ExposureSeconds: &exp, RPOObjectiveSeconds: 2}},
			MaxLagSeconds: 3.1, MaxLagPair: "sh-a→bj-a", Checked: 500, CheckedIn: []string{"sh-b", "bj-a"}, CheckedAt: t0.Add(5 * time.Second),
			Missing: map[string]int{"sh-b": 2}, MissingExamples: []string{"ride 9 (origin sh-a, acknowledged 2026-11-25T09:59:59.5Z) missing in sh-b"},
			LossWindowSeconds: 0.5, ConvergenceChecked: true},
		IDs: IDReport{Checked: 799, Nodes: 3},
		Checks: []Check{
			{Name: "RTO", Objective: "≤ 60s", Measured: "3.250s", Passed: true, Detail: "T0 to the shift"},
			{Name: "order-creation success", Objective: "≥ 99.9900%", Measured: "99.8750%", Passed: false},
		},
		Notes: []string{"no SLA engine was polled"},
	}
}

// TestMarkdownReport checks the report against testdata/report.md
// (go test -run TestMarkdownReport -update rewrites it).
func TestMarkdownReport(t *testing.T) {
	got := sampleResult().Markdown()
	golden := filepath.Join("testdata", "report.md")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the report differs from %s (rerun with -update if the change is meant):\n%s", golden, got)
	}
}

func TestResultPhasesAndFailed(t *testing.T) {
	r := sampleResult()
	ph := r.Phases()
	want := map[string]time.Duration{rto.PhaseDetect: 750 * time.Millisecond, rto.PhaseDecide: 0, rto.PhaseShift: 2500 * time.Millisecond, rto.PhaseTotal: 3250 * time.Millisecond}
	if len(ph) != len(want) {
		t.Fatalf("phases %v", ph)
	}
	for k, v := range want {
		if ph[k] != v {
			t.Errorf("%s = %v, want %v", k, ph[k], v)
		}
	}
	r.CatchupSeconds, r.DecideSeconds, r.ShiftSeconds = 4, NotMeasured, NotMeasured
	if ph := r.Phases(); ph[PhaseCatchup] != 4*time.Second || len(ph) != 3 {
		t.Errorf("a stall's phases %v: want detect, total and catchup", ph)
	}
	if f := sampleResult().Failed(); len(f) != 1 || f[0] != "order-creation success" {
		t.Errorf("failed %v", f)
	}
}

func TestWriteReports(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	j, m, err := WriteReports(dir, sampleResult())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(j) != "drill-region_down-20261125T100000Z.json" || filepath.Base(m) != "drill-region_down-20261125T100000Z.md" {
		t.Errorf("paths %s %s", j, m)
	}
	b, _ := os.ReadFile(j)
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.RTOSeconds != 3.25 || back.Timeline.Shift == nil || back.RPO.Missing["sh-b"] != 2 {
		t.Errorf("read back %+v %v", back, err)
	}
	for _, key := range []string{`"event_id"`, `"rto_seconds"`, `"rpo_seconds"`, `"detect_seconds"`, `"decide_seconds"`, `"shift_seconds"`, `"success_ratio"`, `"passed"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("the JSON lacks %s (a drill_results column)", key)
		}
	}
}

// TestMetrics: the drill's own gauges, and that they pass promtool.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := sampleResult()
	m.Observe(r)
	r.Scenario, r.Measurable, r.Passed = "latency_spike", false, false
	m.Observe(r)
	want := `
# HELP carpool_drill_lost_writes Acknowledged ride creations the surviving regions still lacked after the settle time in the last drill of a scenario (the largest count over the surviving regions).
# TYPE carpool_drill_lost_writes gauge
carpool_drill_lost_writes{scenario="region_down"} 2
# HELP carpool_drill_order_success_ratio Share of ride creations acknowledged during the last drill of a scenario, from the load's first ride to its last.
# TYPE carpool_drill_order_success_ratio gauge
carpool_drill_order_success_ratio{scenario="region_down"} 0.9995
# HELP carpool_drill_passed 1 when the last drill of a scenario met every objective (RTO, RPO, order-creation success, ride ids), else 0.
# TYPE carpool_drill_passed gauge
carpool_drill_passed{scenario="latency_spike"} 0
carpool_drill_passed{scenario="region_down"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice on one registry did not fail")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(realserver.Binary(t, "promtool"), "check", "metrics")
	cmd.Stdin = &out
	if b, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(b)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, b)
	}
}
