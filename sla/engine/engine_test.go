package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeReader returns what scenario says for the time it is asked about, or
// err when set; every read is sent on reads when it is not nil.
type fakeReader struct {
	mu       sync.Mutex
	scenario func(at time.Time) Signals
	err      error
	reads    chan time.Time
}

func (r *fakeReader) Read(ctx context.Context, at time.Time) (Signals, error) {
	r.mu.Lock()
	err, scenario := r.err, r.scenario
	r.mu.Unlock()
	if r.reads != nil {
		select {
		case r.reads <- at:
		default:
		}
	}
	if err != nil {
		return Signals{}, err
	}
	return scenario(at), nil
}

func (r *fakeReader) set(scenario func(at time.Time) Signals, err error) {
	r.mu.Lock()
	r.scenario, r.err = scenario, err
	r.mu.Unlock()
}

// recordingActuator keeps every table applied; it fails while fail is set.
type recordingActuator struct {
	mu     sync.Mutex
	tables []RouteTable
	fail   bool
}

func (a *recordingActuator) Apply(ctx context.Context, t RouteTable) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tables = append(a.tables, t)
	if a.fail {
		return errors.New("gateway unreachable")
	}
	return nil
}

func (a *recordingActuator) applied() []RouteTable {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]RouteTable(nil), a.tables...)
}

func (a *recordingActuator) setFail(f bool) {
	a.mu.Lock()
	a.fail = f
	a.mu.Unlock()
}

// recordingSink keeps every event emitted.
type recordingSink struct {
	mu     sync.Mutex
	events []Event
}

func (s *recordingSink) Emit(ctx context.Context, evs []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, evs...)
	return nil
}

func (s *recordingSink) kinds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.events {
		out = append(out, ev.Kind+":"+ev.Region+":"+ev.To)
	}
	return out
}

func healthyScenario(slowRegion string, p99 float64) func(at time.Time) Signals {
	return func(at time.Time) Signals {
		var rs []*region
		for _, name := range three {
			r := good(name, at)
			if name == slowRegion {
				r.p99(p99, at)
			}
			rs = append(rs, r)
		}
		return signals(at, rs...)
	}
}

type harness struct {
	e     *Engine
	clock *fakeClock
	read  *fakeReader
	act   *recordingActuator
	sink  *recordingSink
	reg   *prometheus.Registry
}

func newHarness(t *testing.T, mutate func(*spec.Spec)) *harness {
	t.Helper()
	h := &harness{
		clock: &fakeClock{t: t0},
		read:  &fakeReader{scenario: healthyScenario("", 0)},
		act:   &recordingActuator{},
		sink:  &recordingSink{},
		reg:   prometheus.NewRegistry(),
	}
	e, err := New(Config{Spec: testSpec(t, three, mutate), Reader: h.read, Actuator: h.act, Sink: h.sink,
		Now: h.clock.Now, Registerer: h.reg, ResendEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	h.e = e
	return h
}

// ticks runs n ticks, advancing the clock by the tick interval after each.
func (h *harness) ticks(t *testing.T, n int) (last Decision, errs []error) {
	t.Helper()
	for range n {
		d, err := h.e.Tick(context.Background())
		if err != nil {
			errs = append(errs, err)
		}
		last = d
		h.clock.Advance(tick)
	}
	return last, errs
}

func TestTickAppliesTheTableWhenItChangesAndEveryFewTicksAnyway(t *testing.T) {
	h := newHarness(t, nil)
	if _, errs := h.ticks(t, 9); len(errs) > 0 {
		t.Fatal(errs)
	}
	got := h.act.applied()
	// Unchanged signals: the first tick, then every ResendEvery (4) ticks,
	// always with the same version (the first tick's clock in ms).
	if len(got) != 3 {
		t.Fatalf("applied %d tables over 9 unchanged ticks, want 3 (ticks 1, 5, 9)", len(got))
	}
	for _, tb := range got {
		if tb.Version != t0.UnixMilli() || len(tb.Regions) != 3 || tb.Regions["sh-a"].Breaker != Closed {
			t.Fatalf("table %+v; want version %d with three closed regions", tb, t0.UnixMilli())
		}
	}
	// sh-a's P95 doubles (a change of weight, not of breaker): a new
	// version at once.
	h.read.set(func(at time.Time) Signals {
		s := healthyScenario("", 0)(at)
		s.Regions[0].LatencyP95 = Val(0.1, at)
		return s
	}, nil)
	before := h.clock.Now()
	d, errs := h.ticks(t, 1)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got = h.act.applied()
	if len(got) != 4 || got[3].Version != before.UnixMilli() || got[3].Version <= got[2].Version || got[3].Regions["sh-a"].Weight != 50 {
		t.Fatalf("after a weight change applied %+v", got[len(got)-1])
	}
	if h.e.Table().Version != d.Table.Version || h.e.Status().Version != d.Table.Version {
		t.Fatal("Table and Status must report the latest version")
	}
	if v := testutil.ToFloat64(h.e.metrics.version); v != float64(d.Table.Version) {
		t.Fatalf("version metric %v", v)
	}
}

func TestApplyErrorsAreCountedAndRetriedAndNeverStopTheEngine(t *testing.T) {
	h := newHarness(t, nil)
	h.act.setFail(true)
	_, errs := h.ticks(t, 3)
	if len(errs) != 3 || !strings.Contains(errs[0].Error(), "applying route table version") || !strings.Contains(errs[0].Error(), "gateway unreachable") {
		t.Fatalf("errors %v", errs)
	}
	if n := len(h.act.applied()); n != 3 {
		t.Fatalf("a failed apply must be retried every tick; %d applies over 3 ticks", n)
	}
	h.act.setFail(false)
	if _, errs := h.ticks(t, 3); len(errs) != 0 {
		t.Fatal(errs)
	}
	if n := len(h.act.applied()); n != 4 {
		t.Fatalf("after a success the unchanged table waits for the resend; %d applies", n)
	}
	if e, ok := testutil.ToFloat64(h.e.metrics.pushes.WithLabelValues("error")), testutil.ToFloat64(h.e.metrics.pushes.WithLabelValues("ok")); e != 3 || ok != 1 {
		t.Fatalf("pushes error %v ok %v", e, ok)
	}
}

func TestTickEmitsEventsAndExposesTheDecision(t *testing.T) {
	h := newHarness(t, nil)
	h.read.set(healthyScenario("sh-a", 0.6), nil)
	h.ticks(t, 25) // trips at the 25th tick (2m)
	if k := h.sink.kinds(); strings.Join(k, ",") != "breaker:sh-a:open" {
		t.Fatalf("events %v", k)
	}
	tables := h.act.applied()
	last := tables[len(tables)-1]
	if last.Regions["sh-a"].Breaker != Open || last.Regions["sh-a"].Weight != 0 {
		t.Fatalf("the open region was not pushed: %+v", last)
	}
	if v := testutil.ToFloat64(h.e.metrics.breaker.WithLabelValues("sh-a")); v != catalog.BreakerOpen {
		t.Fatalf("carpool_breaker_state %v", v)
	}
	if v := testutil.ToFloat64(h.e.metrics.weight.WithLabelValues("sh-a")); v != 0 {
		t.Fatalf("carpool_route_weight %v", v)
	}
	if v := testutil.ToFloat64(h.e.metrics.events.WithLabelValues("breaker")); v != 1 {
		t.Fatalf("events counted %v", v)
	}
	if v := testutil.ToFloat64(h.e.metrics.composite.WithLabelValues("global")); v <= 0 || v > 1 {
		t.Fatalf("global composite %v", v)
	}
}

func TestAFailedReadDecidesOnAbsentSignalsAndGoesStale(t *testing.T) {
	h := newHarness(t, nil)
	h.ticks(t, 2)
	h.read.set(nil, errors.New("prometheus: connection refused"))
	d, errs := h.ticks(t, 14) // 70s without data: past staleAfter (1m)
	if len(errs) != 14 || !strings.Contains(errs[0].Error(), "reading the signals: prometheus: connection refused") {
		t.Fatalf("errors %v", errs)
	}
	for _, rd := range d.Regions {
		if rd.Breaker != Closed || !rd.Stale {
			t.Fatalf("%s: %s stale %v; a failed read must hold the breaker and go stale", rd.Region, rd.Breaker, rd.Stale)
		}
	}
	if st := h.e.Status(); st.ReadErrors != 14 || st.Ticks != 16 {
		t.Fatalf("status counts %d read errors over %d ticks", st.ReadErrors, st.Ticks)
	}
	if k := h.sink.kinds(); strings.Join(k, ",") != "stale:sh-a:stale,stale:sh-b:stale,stale:bj-a:stale" {
		t.Fatalf("events %v", k)
	}
	if v := testutil.ToFloat64(h.e.metrics.stale.WithLabelValues("sh-b")); v != 1 {
		t.Fatalf("carpool_sla_signals_stale %v", v)
	}
	if v := testutil.ToFloat64(h.e.metrics.ticks.WithLabelValues("error")); v != 14 {
		t.Fatalf("error ticks %v", v)
	}
}

func TestVersionsKeepGrowingAcrossRestarts(t *testing.T) {
	h := newHarness(t, nil)
	h.ticks(t, 1)
	first := h.e.Table().Version
	// A restarted engine a second later starts from its clock, above the old one.
	h.clock.Advance(time.Second)
	h2, err := New(Config{Spec: testSpec(t, three, nil), Reader: h.read, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	d, err := h2.Tick(context.Background())
	if err != nil || d.Table.Version <= first {
		t.Fatalf("restarted version %d, first %d, %v", d.Table.Version, first, err)
	}
	// Within one engine a change grows the version even if the clock does not move.
	if v := nextVersion(d.Table.Version, h.clock.Now()); v != d.Table.Version+1 {
		t.Fatalf("next version on a still clock %d", v)
	}
}

func TestRunTicksUntilCancelled(t *testing.T) {
	reads := make(chan time.Time, 16)
	act := &recordingActuator{}
	s := testSpec(t, three, func(s *spec.Spec) {
		s.Engine.Interval = spec.Duration(10 * time.Millisecond)
		s.Engine.StaleAfter = spec.Duration(time.Minute)
	})
	e, err := New(Config{Spec: s, Reader: &fakeReader{scenario: healthyScenario("", 0), reads: reads}, Actuator: act})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	deadline := time.After(10 * time.Second)
	for i := range 3 {
		select {
		case <-reads:
		case <-deadline:
			t.Fatalf("only %d ticks in 10s at a 10ms interval", i)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v on cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop within 10s of the cancel")
	}
	if st := e.Status(); st.Ticks < 3 || len(st.Regions) != 3 || len(act.applied()) < 1 {
		t.Fatalf("after Run: %d ticks, %d regions, %d applies", st.Ticks, len(st.Regions), len(act.applied()))
	}
}

func TestTheHandlerServesStatusAndRouting(t *testing.T) {
	h := newHarness(t, nil)
	srv := h.e.Handler()
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	if w := get("/api/v1/routing"); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("routing before the first tick: %d", w.Code)
	}
	h.read.set(func(at time.Time) Signals {
		s := healthyScenario("", 0)(at)
		s.Regions[2] = RegionSignals{Region: "bj-a"} // nothing about bj-a
		return s
	}, nil)
	h.ticks(t, 1)
	w := get("/api/v1/routing")
	var tb RouteTable
	if err := json.Unmarshal(w.Body.Bytes(), &tb); err != nil || w.Code != 200 || tb.Version != h.e.Table().Version || len(tb.Regions) != 3 {
		t.Fatalf("routing %d %s (%v)", w.Code, w.Body, err)
	}
	w = get("/api/v1/status")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %s", w.Code, w.Header())
	}
	var st struct {
		Version int64 `json:"version"`
		Panic   *bool `json:"panic"`
		DryRun  *bool `json:"dry_run"`
		Global  struct {
			Composite *float64 `json:"composite"`
		} `json:"global"`
		Regions []struct {
			Region     string `json:"region"`
			Health     float64
			Breaker    string   `json:"breaker"`
			Weight     float64  `json:"weight"`
			Composite  *float64 `json:"composite"`
			LatencyP99 *float64 `json:"latency_p99_seconds"`
			Stale      *bool    `json:"stale"`
			Components []struct {
				Name  string   `json:"name"`
				Score float64  `json:"score"`
				Value *float64 `json:"value"`
			} `json:"components"`
			SLOs []struct {
				Service, SLO    string
				Attainment      *float64           `json:"attainment"`
				BudgetRemaining *float64           `json:"budget_remaining"`
				BurnRates       map[string]float64 `json:"burn_rates"`
			} `json:"slos"`
		} `json:"regions"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, w.Body)
	}
	a, b := st.Regions[0], st.Regions[2]
	if st.Version != tb.Version || st.Panic == nil || st.DryRun == nil || st.Global.Composite == nil {
		t.Fatalf("status top level: %s", w.Body)
	}
	if a.Region != "sh-a" || a.Breaker != "closed" || a.Weight != 100 || a.Composite == nil || a.LatencyP99 == nil || *a.LatencyP99 != 0.1 ||
		len(a.Components) != 4 || a.Components[0].Value == nil || len(a.SLOs) != 3 || a.SLOs[0].Attainment == nil || a.SLOs[0].BurnRates["1h"] != 0.4 {
		t.Fatalf("sh-a in the status: %+v", a)
	}
	if b.Region != "bj-a" || b.LatencyP99 != nil || b.Composite != nil || b.Components[0].Value != nil || b.SLOs[0].Attainment != nil {
		t.Fatalf("a region without data must show nulls: %+v", b)
	}
	if w := get("/api/v1/nothing"); w.Code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", w.Code)
	}
}

func TestNewRejectsABadConfigSayingWhatToDo(t *testing.T) {
	good := testSpec(t, three, nil)
	bad := testSpec(t, three, nil)
	bad.Breaker.MaxBrokenFraction = 1
	cases := map[string]struct {
		cfg  Config
		want string
	}{
		"Without a spec.":       {Config{Reader: &fakeReader{}}, "Config.Spec is nil; load the spec"},
		"Without a reader.":     {Config{Spec: good}, "Config.Reader is nil; pass a Reader"},
		"A negative resend.":    {Config{Spec: good, Reader: &fakeReader{}, ResendEvery: -1}, "Config.ResendEvery is -1"},
		"An invalid spec.":      {Config{Spec: bad, Reader: &fakeReader{}}, "breaker.maxBrokenFraction"},
		"A registry used twice": {Config{Spec: good, Reader: &fakeReader{}}, "registering its metrics"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if strings.HasPrefix(name, "A registry") {
				reg := prometheus.NewRegistry()
				tc.cfg.Registerer = reg
				if _, err := New(tc.cfg); err != nil {
					t.Fatal(err)
				}
			}
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestTheLogSinkWritesOneLinePerEvent(t *testing.T) {
	var buf bytes.Buffer
	sink := NewLogSink(slog.New(slog.NewJSONHandler(&buf, nil)))
	evs := []Event{
		withID(Event{At: t0, Kind: "breaker", Region: "sh-a", From: "closed", To: "open", Reason: "p99 0.512s > 0.300s for 2m0s", Values: map[string]float64{"p99_seconds": 0.512}}),
		withID(Event{At: t0, Kind: "panic", Region: "global", From: "normal", To: "panic", Reason: "r"}),
	}
	if err := sink.Emit(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["event_id"] != evs[0].ID || rec["reason"] != evs[0].Reason || rec["to"] != "open" || rec["values"].(map[string]any)["p99_seconds"] != 0.512 {
		t.Fatalf("log line %s", lines[0])
	}
}

// exposition renders a registry in the text format.
func exposition(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestTheEngineMetricsPassPromtoolCheckMetrics(t *testing.T) {
	promtool := realserver.Binary(t, "promtool")
	for name, dry := range map[string]bool{"Acting.": false, "Dry-run.": true} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(s *spec.Spec) { s.Breaker.DryRun = dry })
			// Every region slow: one opens, two are denied (panic).
			h.read.set(func(at time.Time) Signals {
				s := healthyScenario("", 0)(at)
				for i := range s.Regions {
					s.Regions[i].LatencyP99 = Val(0.9, at)
				}
				return s
			}, nil)
			h.ticks(t, 26)
			text := exposition(t, h.reg)
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(text)
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Fatalf("promtool check metrics (err %v):\n%s\n---\n%s", err, out, text)
			}
			for _, want := range []string{
				`carpool_sla_engine_panic 1`,
				`carpool_breaker_trip_denied{region="sh-a"} 1`,
				`carpool_breaker_state{region="bj-a"} 2`,
				`carpool_route_weight{region="bj-a"} 0`,
				`carpool_sla_composite_ratio{region="global"}`,
				`carpool_sla_attainment_ratio{region="global",service="order",slo="availability"}`,
				`carpool_sla_health_component_score{component="sync_lag",region="sh-b"} 100`,
				`carpool_sla_engine_ticks_total{outcome="ok"} 26`,
				`carpool_sla_engine_events_total{kind="panic"} 1`,
			} {
				if !bytes.Contains(text, []byte(want)) {
					t.Errorf("the exposition lacks %s", want)
				}
			}
			wantDry := "carpool_sla_engine_dry_run 0"
			if dry {
				wantDry = "carpool_sla_engine_dry_run 1"
			}
			if !bytes.Contains(text, []byte(wantDry)) {
				t.Errorf("the exposition lacks %s", wantDry)
			}
		})
	}
}
