package rpo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/hlc"
	"github.com/carpoolsla/carpoolsla/services/replication"
	"github.com/carpoolsla/carpoolsla/services/store"
)

var ctx = context.Background()

var t0 = time.Unix(1_764_028_800, 0)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newStore(t testing.TB, name string, now func() time.Time) *store.Memory {
	t.Helper()
	clk, err := hlc.New(hlc.Config{Region: name, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.NewMemory(store.Config{Region: name, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exposure scrapes reg and returns the exposure of src→dst; ok is false
// when the series is absent.
func exposure(t *testing.T, reg *prometheus.Registry, src, dst string) (v float64, ok bool, up float64) {
	t.Helper()
	fams := scrape(t, reg)
	for _, m := range fams["carpool_rpo_exposure_seconds"].GetMetric() {
		if label(m, "source_region") == src && label(m, "target_region") == dst {
			v, ok = m.GetGauge().GetValue(), true
		}
	}
	for _, m := range fams["carpool_exporter_up"].GetMetric() {
		if label(m, "exporter") == Name {
			up = m.GetGauge().GetValue()
		}
	}
	return v, ok, up
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

func text(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	w := httptest.NewRecorder()
	exporters.Handler(reg).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text(t, reg)))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func promtoolCheck(t *testing.T, s string) {
	t.Helper()
	cmd := exec.Command(realserver.Binary(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(s)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\nscrape:\n%s", err, out.String(), s)
	}
}

func TestExposureIsTheAgeOfTheOldestUnappliedWriteAndZeroAfterCatchUp(t *testing.T) {
	clk := &fakeClock{t: t0}
	src, dst := newStore(t, "a", clk.Now), newStore(t, "b", clk.Now)
	stall := &faults.Injector{Now: clk.Now}
	rep, err := replication.New(replication.Config{SourceRegion: "a", Source: replication.NewLocalSource(src), Target: dst, Stall: stall, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Pairs: []Pair{{SourceRegion: "a", Source: src, TargetRegion: "b", Target: dst}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(s, 0, nil))
	want := func(w float64) {
		t.Helper()
		got, ok, up := exposure(t, reg, "a", "b")
		if !ok || got != w || up != 1 {
			t.Fatalf("exposure a→b = %v (present %v, up %v), want %v", got, ok, up, w)
		}
	}
	put := func(key string) {
		t.Helper()
		if _, err := src.Put(ctx, "rides", key, []byte(`{"state":"requested"}`)); err != nil {
			t.Fatal(err)
		}
	}

	want(0) // nothing written yet
	if err := stall.Update(func(st *faults.State) { st.ReplicationStalled = true }); err != nil {
		t.Fatal(err)
	}
	put("ride-1") // committed at t0
	want(0)
	clk.Add(3 * time.Second)
	put("ride-2") // committed at t0+3s
	clk.Add(2 * time.Second)
	want(5) // ride-1 is 5 s old and unapplied
	if _, err := rep.Step(ctx); !errors.Is(err, replication.ErrStalled) {
		t.Fatalf("step of a stalled replicator: %v", err)
	}
	clk.Add(time.Second)
	want(6) // it keeps growing while stalled

	// The stall ends; one event per step: ride-1 lands, ride-2 is the oldest.
	if err := stall.Update(func(st *faults.State) { st.ReplicationStalled = false }); err != nil {
		t.Fatal(err)
	}
	if n, err := rep.Step(ctx); err != nil || n != 1 {
		t.Fatalf("step: %d, %v", n, err)
	}
	want(3)
	if n, err := rep.Step(ctx); err != nil || n != 1 {
		t.Fatalf("step: %d, %v", n, err)
	}
	want(0) // caught up
	clk.Add(time.Minute)
	want(0) // and an idle pair stays at 0
	promtoolCheck(t, text(t, reg))
}

type fakeBackend struct {
	mu     sync.Mutex
	commit time.Time
	behind bool
	err    error
}

func (f *fakeBackend) OldestUnapplied(context.Context) (time.Time, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commit, f.behind, f.err
}

func TestAFailingPairShowsAsDownKeepsTheOthersAndRecovers(t *testing.T) {
	clk := &fakeClock{t: t0}
	bad := &fakeBackend{err: errors.New("connection refused")}
	good := &fakeBackend{commit: t0.Add(-1500 * time.Millisecond), behind: true}
	s, err := New(Config{Pairs: []Pair{{SourceRegion: "a", TargetRegion: "b", Backend: bad}, {SourceRegion: "a", TargetRegion: "c", Backend: good}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(s, 0, nil))
	if _, ok, up := exposure(t, reg, "a", "b"); ok || up != 0 {
		t.Fatalf("failing pair: present %v, up %v", ok, up)
	}
	if v, ok, _ := exposure(t, reg, "a", "c"); !ok || v != 1.5 {
		t.Fatalf("healthy pair: %v (present %v), want 1.5", v, ok)
	}
	promtoolCheck(t, text(t, reg))
	bad.mu.Lock()
	bad.err = nil
	bad.mu.Unlock()
	if v, ok, up := exposure(t, reg, "a", "b"); !ok || v != 0 || up != 1 {
		t.Fatalf("recovered pair: %v (present %v), up %v", v, ok, up)
	}
}

func TestASourceClockAheadGivesExposureZeroNotNegative(t *testing.T) {
	clk := &fakeClock{t: t0}
	s, err := New(Config{Pairs: []Pair{{SourceRegion: "a", TargetRegion: "b", Backend: &fakeBackend{commit: t0.Add(time.Second), behind: true}}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(s, 0, nil))
	if v, _, _ := exposure(t, reg, "a", "b"); v != 0 {
		t.Fatalf("exposure = %v, want 0", v)
	}
}

func TestATruncatedOutboxIsAnErrorNotAZero(t *testing.T) {
	clk := &fakeClock{t: t0}
	src, dst := newStore(t, "a", clk.Now), newStore(t, "b", clk.Now)
	for _, k := range []string{"x", "y", "z"} {
		if _, err := src.Put(ctx, "rides", k, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	src.Truncate(2) // the target, at 0, can never catch up
	_, _, err := StorePair("a", src, dst).OldestUnapplied(ctx)
	if !errors.Is(err, store.ErrTruncated) {
		t.Fatalf("got %v, want ErrTruncated", err)
	}
}

func TestClusterPairsListsEveryOrderedPair(t *testing.T) {
	clk := &fakeClock{t: t0}
	stores := map[string]*store.Memory{}
	for _, n := range []string{"c", "a", "b"} {
		stores[n] = newStore(t, n, clk.Now)
	}
	pairs := ClusterPairs(stores)
	var got []string
	for _, p := range pairs {
		got = append(got, p.SourceRegion+"→"+p.TargetRegion)
	}
	if strings.Join(got, " ") != "a→b a→c b→a b→c c→a c→b" {
		t.Fatalf("pairs: %v", got)
	}
	if _, err := New(Config{Pairs: pairs}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidation(t *testing.T) {
	st := newStore(t, "a", time.Now)
	b := &fakeBackend{}
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"A config without pairs should fail.":            {Config{}, "no pairs"},
		"A pair without regions should fail.":            {Config{Pairs: []Pair{{Backend: b}}}, "regions are required"},
		"A pair from a region to itself should fail.":    {Config{Pairs: []Pair{{SourceRegion: "a", TargetRegion: "a", Backend: b}}}, "both region"},
		"A pair without stores or backend should fail.":  {Config{Pairs: []Pair{{SourceRegion: "a", TargetRegion: "b"}}}, "stores are required"},
		"A pair with only the source store should fail.": {Config{Pairs: []Pair{{SourceRegion: "a", TargetRegion: "b", Source: st}}}, "stores are required"},
		"A pair with stores and a backend should fail.":  {Config{Pairs: []Pair{{SourceRegion: "a", TargetRegion: "b", Source: st, Target: st, Backend: b}}}, "not both"},
		"A pair listed twice should fail.":               {Config{Pairs: []Pair{{SourceRegion: "a", TargetRegion: "b", Backend: b}, {SourceRegion: "a", TargetRegion: "b", Backend: b}}}, "listed twice"},
		"A pair with stores should pass.":                {Config{Pairs: []Pair{{SourceRegion: "a", TargetRegion: "b", Source: st, Target: st}}}, ""},
	} {
		_, err := New(tc.cfg)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s\n got %v, want an error containing %q", name, err, tc.want)
		}
	}
}
