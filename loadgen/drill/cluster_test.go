package drill_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/carpoolsla/carpoolsla/exporters/rto"
	"github.com/carpoolsla/carpoolsla/loadgen/drill"
	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/gateway"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/services/region/regiontest"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

const token = "drill-test-token"

// startCluster runs every region of the shipped spec in this process, each
// a set of real servers on loopback, with the admin APIs on.
func startCluster(t *testing.T) (*spec.Spec, *region.Cluster) {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return s, regiontest.Start(t, region.ClusterConfig{Spec: s, AdminToken: token})
}

func targetOf(c *region.Cluster) drill.Target {
	tg := drill.Target{Token: token, Regions: map[string]drill.RegionTarget{}}
	for _, n := range c.Names() {
		u := c.Regions[n].URLs()
		tg.Regions[n] = drill.RegionTarget{Gateway: u[region.Gateway], API: u[region.Entry]}
	}
	return tg
}

// wire is the test's own record of the drill's ride creations, taken from
// the HTTP transport the runner uses: when each answer arrived, its status,
// the rider, the key and the region that served it.
type wire struct {
	base http.RoundTripper
	mu   sync.Mutex
	rows []wireRow
}

type wireRow struct {
	start, end      time.Time
	status          int
	rider, key, by  string
	method, urlPath string
}

func (w *wire) RoundTrip(req *http.Request) (*http.Response, error) {
	row := wireRow{start: time.Now(), rider: req.Header.Get(gateway.HeaderRiderID), key: req.Header.Get(gateway.HeaderIdempotencyKey),
		method: req.Method, urlPath: req.URL.Path}
	resp, err := w.base.RoundTrip(req)
	row.end = time.Now()
	if err == nil {
		row.status, row.by = resp.StatusCode, resp.Header.Get(gateway.HeaderRegion)
	}
	w.mu.Lock()
	w.rows = append(w.rows, row)
	w.mu.Unlock()
	return resp, err
}

func (w *wire) creates() []wireRow {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []wireRow
	for _, r := range w.rows {
		if r.method == http.MethodPost && r.urlPath == "/v1/rides" {
			out = append(out, r)
		}
	}
	return out
}

type memRecorder struct {
	mu  sync.Mutex
	got []drill.Result
}

func (m *memRecorder) RecordDrill(_ context.Context, r drill.Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, r)
	return nil
}

// watch polls fn every tick until it holds or stop closes, and returns
// when it first held (zero if never).
func watch(stop <-chan struct{}, tick time.Duration, fn func() bool) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			if fn() {
				out <- time.Now()
				return
			}
			select {
			case <-stop:
				out <- time.Time{}
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// shortConfig is a drill with short windows. A region lost at once needs
// the gateways' retry budget (10 % of the last 10 s of requests) to cover
// the requests they send it before they eject it, about 5 per gateway: so
// the drills that take a region down run 5 s of baseline at 30 rides/s
// first (at 15 rides/s after 2 s, a rider's ride was seen to fail on every
// gateway, each out of budget).
func shortConfig(s *spec.Spec, c *region.Cluster, scenario, faulted string, w *wire) drill.Config {
	rate, baseline := 15.0, 1500*time.Millisecond
	if scenario == spec.ScenarioRegionDown || scenario == spec.ScenarioSameCityLoss {
		rate, baseline = 30, 5*time.Second
	}
	return drill.Config{
		Spec: s, Target: targetOf(c), Scenario: scenario, Region: faulted,
		Rate: rate, Baseline: baseline, Hold: 2500 * time.Millisecond, Settle: time.Second, RecoverTimeout: 30 * time.Second,
		Tail: 300 * time.Millisecond, Poll: 50 * time.Millisecond, MetricsPoll: 250 * time.Millisecond,
		HTTP: &http.Client{Transport: w},
	}
}

func dump(t *testing.T, res drill.Result) {
	t.Helper()
	if t.Failed() || testing.Verbose() {
		t.Logf("report:\n%s", res.Markdown())
	}
}

// TestRegionDownDrill runs the region_down drill on three in-process
// regions, with no SLA engine: the gateways' probes and ejection alone
// move the traffic. The drill must meet the spec's objectives, and its
// numbers must match what the test saw by itself: the fault's time (the
// region's injector polled every millisecond), the shift (the surviving
// gateways' status read in process every 10 ms), the first ride of a
// sh-a rider served elsewhere and the acknowledged rides (both from the
// wire).
func TestRegionDownDrill(t *testing.T) {
	s, c := startCluster(t)
	w := &wire{base: http.DefaultTransport.(*http.Transport).Clone()}
	cfg := shortConfig(s, c, spec.ScenarioRegionDown, "sh-a", w)
	drills := &rto.Drills{}
	rec := &memRecorder{}
	cfg.Metrics, cfg.Recorder = drills, rec
	r, err := drill.New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()
	down := c.Regions["sh-a"].Faults
	faultSeen := watch(stop, time.Millisecond, down.Down)
	var t0 time.Time
	shiftSeen := make(chan time.Time, 1)
	go func() {
		t0 = <-faultSeen
		if t0.IsZero() {
			shiftSeen <- time.Time{}
			return
		}
		shiftSeen <- <-watch(stop, 10*time.Millisecond, func() bool {
			for _, g := range []string{"sh-b", "bj-a"} {
				rs := c.Regions[g].Gateway.Status().Regions["sh-a"]
				if rs.ProbeHealthy && !rs.Ejected && rs.Breaker != gateway.BreakerOpen {
					return false
				}
			}
			return true
		})
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.Run(ctx)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	defer dump(t, res)
	shiftAt := <-shiftSeen
	if !res.Passed {
		t.Fatalf("the drill missed %v", res.Failed())
	}
	if t0.IsZero() || shiftAt.IsZero() {
		t.Fatalf("the test did not see the fault (%v) or the shift (%v)", t0, shiftAt)
	}

	// The first ride of a sh-a rider, sent after the fault, acknowledged by
	// another region; and every acknowledged key, from the wire.
	var firstElsewhere time.Time
	acked := map[string]bool{}
	names := c.Names()
	for _, row := range w.creates() {
		if row.status != 200 && row.status != 201 {
			continue
		}
		acked[row.key] = true
		if gateway.UnitOf(row.rider, drill.DefaultUnits, names).Home == "sh-a" && row.by != "sh-a" && !row.start.Before(t0) {
			if firstElsewhere.IsZero() || row.end.Before(firstElsewhere) {
				firstElsewhere = row.end
			}
		}
	}
	if firstElsewhere.IsZero() {
		t.Fatal("the wire shows no ride of a sh-a rider served elsewhere after the fault")
	}
	want := shiftAt
	if firstElsewhere.After(want) {
		want = firstElsewhere
	}
	wantRTO := want.Sub(t0).Seconds()
	// The report's T0 is when the fault call was sent; the fault took effect
	// before the call returned (T0Acked). The test saw it take effect.
	if t0.Before(*res.Timeline.T0) || t0.After(res.Timeline.T0Acked.Add(20*time.Millisecond)) {
		t.Errorf("the injector showed the fault at %s, outside the report's T0 %s to its acknowledgement %s",
			t0.Format("15:04:05.000"), res.Timeline.T0.Format("15:04:05.000"), res.Timeline.T0Acked.Format("15:04:05.000"))
	}
	// Within a tick: one poll of the drill, plus that T0 window, plus the
	// test's own 10 ms poll and some slack.
	tick := cfg.Poll + res.Timeline.T0Acked.Sub(*res.Timeline.T0) + 50*time.Millisecond
	if d := math.Abs(res.RTOSeconds - wantRTO); d > tick.Seconds() {
		t.Errorf("RTO %.3fs, the test saw %.3fs (fault %s, shift %s, first elsewhere %s): off by %.3fs, more than a tick (%s)",
			res.RTOSeconds, wantRTO, t0.Format("15:04:05.000"), shiftAt.Format("15:04:05.000"), firstElsewhere.Format("15:04:05.000"), d, tick)
	}
	if res.Load.Acked != len(acked) {
		t.Errorf("the report counts %d acknowledged rides, the wire %d", res.Load.Acked, len(acked))
	}
	if res.Load.Acked < 150 || res.RPO.Checked == 0 {
		t.Errorf("too little load to judge: %d acknowledged, %d looked up", res.Load.Acked, res.RPO.Checked)
	}
	if !(res.DetectSeconds >= 0 && res.DecideSeconds >= 0 && res.ShiftSeconds >= 0 &&
		res.DetectSeconds+res.DecideSeconds+res.ShiftSeconds <= res.RTOSeconds+1e-9) {
		t.Errorf("phases detect %.3f decide %.3f shift %.3f do not add up within the total %.3f", res.DetectSeconds, res.DecideSeconds, res.ShiftSeconds, res.RTOSeconds)
	}
	if res.Load.FirstAttemptFailed == 0 {
		t.Error("no sh-a rider's first attempt failed: the fault did not reach the riders")
	}

	// The result reached the RTO exporter and the recorder.
	reg := prometheus.NewRegistry()
	for _, col := range rto.NewExporter(nil, drills, nil).Collectors {
		reg.MustRegister(col)
	}
	got, err := testutil.GatherAndCount(reg, "carpool_drill_rto_seconds")
	if err != nil || got != 4 {
		t.Errorf("carpool_drill_rto_seconds has %d series (%v), want the four phases", got, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "carpool_drill_rto_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "phase" && l.GetValue() == rto.PhaseTotal && math.Abs(m.GetGauge().GetValue()-res.RTOSeconds) > 1e-9 {
					t.Errorf("exported total %v, report %v", m.GetGauge().GetValue(), res.RTOSeconds)
				}
			}
		}
	}
	if len(rec.got) != 1 || rec.got[0].EventID != res.EventID {
		t.Errorf("the recorder got %d results", len(rec.got))
	}

	// The reports.
	jsonPath, mdPath, err := drill.WriteReports(t.TempDir(), res)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(jsonPath)
	var back drill.Result
	if err := json.Unmarshal(b, &back); err != nil || back.RTOSeconds != res.RTOSeconds || back.Load.Acked != res.Load.Acked {
		t.Errorf("the JSON report does not read back: %v", err)
	}
	md, _ := os.ReadFile(mdPath)
	if !strings.Contains(string(md), "# Drill region_down of sh-a: PASSED") {
		t.Errorf("the Markdown report starts %q", firstLine(string(md)))
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// TestDataDrills runs the two drills that do not fail over, one after the
// other on one cluster.
//
// A replication stall into sh-b: the regions keep serving, the drill must
// notice the lag, and once the stall is cleared replication must catch up
// within the RTO and lose nothing.
//
// Then sh-a's clock 2 s ahead: the other regions refuse its replication
// (HLC timestamps too far ahead) until it is cleared, and clearing it sends
// sh-a's clock back 2 s, which its id generator refuses to follow: ride
// ids must stay unique and increasing per node, and every ride must still
// be created (elsewhere, by the gateway's retry or the app's fallback).
func TestDataDrills(t *testing.T) {
	s, c := startCluster(t)
	run := func(scenario, faulted string) drill.Result {
		t.Helper()
		w := &wire{base: http.DefaultTransport.(*http.Transport).Clone()}
		r, err := drill.New(shortConfig(s, c, scenario, faulted, w))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res, err := r.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Passed {
			dump(t, res)
			t.Fatalf("the %s drill missed %v", scenario, res.Failed())
		}
		return res
	}

	res := run(spec.ScenarioReplicationStall, "sh-b")
	if res.DetectSeconds < 0 || !strings.Contains(res.Timeline.DetectedBy, "sh-b") {
		t.Errorf("stall detected after %.3fs by %q", res.DetectSeconds, res.Timeline.DetectedBy)
	}
	if res.RPO.MaxLagSeconds < 2 || !strings.HasSuffix(res.RPO.MaxLagPair, "→sh-b") {
		t.Errorf("the largest lag while stalled was %.3fs on %q; replication into sh-b did not stall", res.RPO.MaxLagSeconds, res.RPO.MaxLagPair)
	}
	if !slices.Equal(res.RPO.CheckedIn, c.Names()) || len(res.RPO.Missing) != 0 || res.RPO.HeldBack["sh-b"] == 0 {
		t.Errorf("rides looked up in %v, missing %v, held back %v (sh-b should have lacked some at the clearing)", res.RPO.CheckedIn, res.RPO.Missing, res.RPO.HeldBack)
	}
	if c.Regions["sh-b"].Faults.ReplicationStalled() {
		t.Error("the stall was not cleared")
	}
	dump(t, res)

	res = run(spec.ScenarioClockSkew, "sh-a")
	if res.IDs.Checked != res.Load.Acked || res.IDs.Nodes != 3 {
		t.Errorf("ids checked %d of %d acknowledged, from %d nodes", res.IDs.Checked, res.Load.Acked, res.IDs.Nodes)
	}
	if !strings.HasPrefix(res.RPO.MaxLagPair, "sh-a→") || res.RPO.HeldBack["sh-b"]+res.RPO.HeldBack["bj-a"] == 0 {
		t.Errorf("the largest lag was on %q and %v rides were held back; sh-a's replication was not refused", res.RPO.MaxLagPair, res.RPO.HeldBack)
	}
	if c.Regions["sh-a"].Faults.State().ClockSkew != 0 {
		t.Error("the skew was not cleared")
	}
	dump(t, res)
}

// TestExternalFaultDrill: the fault comes from outside the drill (as a
// Chaos Mesh experiment would; here the test sets sh-b down in process once
// the load has run past the baseline, and clears it 6 s later). The drill
// injects nothing, finds T0 itself from the first failure it sees, and
// measures the failover. 6 s, because sh-a's gateway takes sh-b out after
// five failed rides there, and which rides go there is up to their keys'
// hashes: at sh-a's 10 rides/s about 3 a second, so 3 s left a few
// percent of runs without five.
func TestExternalFaultDrill(t *testing.T) {
	s, c := startCluster(t)
	w := &wire{base: http.DefaultTransport.(*http.Transport).Clone()}
	cfg := shortConfig(s, c, spec.ScenarioRegionDown, "sh-b", w)
	cfg.External, cfg.ExternalWait = true, 30*time.Second
	r, err := drill.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	injected := make(chan time.Time, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Past the baseline: the load has run for Baseline + 1 s.
		first := time.Time{}
		at := <-watch(stop, 10*time.Millisecond, func() bool {
			rows := w.creates()
			if len(rows) > 0 && first.IsZero() {
				first = rows[0].start
			}
			return !first.IsZero() && time.Since(first) > cfg.Baseline+time.Second
		})
		if at.IsZero() {
			injected <- at
			return
		}
		_ = c.Regions["sh-b"].Faults.Update(func(s *faults.State) { s.Down = true })
		t0 := time.Now()
		injected <- t0
		select {
		case <-stop:
		case <-time.After(6 * time.Second):
		}
		c.Regions["sh-b"].Faults.Clear()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dump(t, res)
	t0 := <-injected
	if !res.Passed || res.Timeline.T0 == nil || res.Timeline.Cleared != nil {
		t.Fatalf("passed %v, T0 %v, cleared %v (the drill must not clear an external fault); missed %v", res.Passed, res.Timeline.T0, res.Timeline.Cleared, res.Failed())
	}
	if d := res.Timeline.T0.Sub(t0); d < 0 || d > 300*time.Millisecond {
		t.Errorf("T0 %s (%s) is %s after the fault: want it within 300 ms after", res.Timeline.T0.Format("15:04:05.000"), res.Timeline.T0Source, d)
	}
	if !strings.Contains(res.Timeline.T0Source, "sh-b") && !strings.Contains(res.Timeline.T0Source, "failed ride attempt") {
		t.Errorf("T0 source %q", res.Timeline.T0Source)
	}
}
