// Package drilltest runs the latency_spike drill end to end: three regions
// of services, the embedded metric store scraping them and evaluating the
// generated rules, and the SLA engine reading it and steering the gateways,
// all in this process. It is its own package so that it runs beside the
// drill package's tests.
package drilltest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/alerts"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/loadgen/drill"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/services/region/regiontest"
	"github.com/carpoolsla/carpoolsla/sla/embedded"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/engine/actuate"
	"github.com/carpoolsla/carpoolsla/sla/engine/signals"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

const (
	token   = "drilltest-admin-token"
	tick    = time.Second
	tripFor = 6 * time.Second
	slow    = "sh-b"
	poll    = 100 * time.Millisecond // the drill's
)

// shortSpec is deploy/sla.yaml with windows short enough for a test: a 1 s
// engine tick and scrape, a 6 s trip, a 4 s recovery, a ramp of 50 % then
// 100 % for 2 s each, a 3 s initial hold; probes with an 800 ms timeout, so
// that 500 ms of latency slows a region without failing its probes (the
// engine's breaker, not the probes, must move the traffic); and the health
// score without config consistency (the cluster runs no config-drift
// exporter).
func shortSpec(t testing.TB) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := func(v time.Duration) spec.Duration { return spec.Duration(v) }
	s.Engine.Interval, s.Engine.ScrapeInterval = d(tick), d(tick)
	s.Engine.StaleAfter, s.Engine.RecoveryBlackout = d(10*time.Second), d(2*time.Second)
	s.Breaker.Trip.For, s.Breaker.Recover.For = d(tripFor), d(4*time.Second)
	s.Breaker.Ramp = spec.Ramp{Steps: []float64{50, 100}, StepDuration: d(2 * time.Second)}
	s.Breaker.Hold.Initial, s.Breaker.Hold.Max, s.Breaker.Hold.ResetAfter = d(3*time.Second), d(30*time.Second), d(time.Minute)
	s.Routing.Probes.Timeout = d(800 * time.Millisecond)
	var comps []spec.HealthComponent
	total := 0.0
	for _, c := range s.Health.Components {
		if c.Measure != spec.MeasureConfigConsistency {
			comps = append(comps, c)
			total += c.Weight
		}
	}
	sum := 0.0
	for i := range comps {
		comps[i].Weight = math.Round(comps[i].Weight/total*1000) / 1000
		sum += comps[i].Weight
	}
	comps[0].Weight += 1 - sum
	s.Health.Components = comps
	if err := s.Validate(); err != nil {
		t.Fatalf("the short spec is invalid: %v", err)
	}
	return s
}

func startCluster(t *testing.T, s *spec.Spec) *region.Cluster {
	t.Helper()
	return regiontest.Start(t, region.ClusterConfig{Spec: s, AdminToken: token})
}

// startStore runs the embedded store scraping every server of the cluster
// each second, with the spec's generated rules.
func startStore(t *testing.T, s *spec.Spec, c *region.Cluster) *embedded.Store {
	t.Helper()
	set, err := alerts.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := set.RulesYAML(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := embedded.ConfigFromSpec(s, filepath.Join(dir, "tsdb"))
	cfg.RuleFiles = []string{filepath.Join(dir, "rules.yml")}
	jobs := c.MetricsJobs()
	for _, job := range slices.Sorted(maps.Keys(jobs)) {
		cfg.Targets = append(cfg.Targets, embedded.Target{Job: job, URLs: jobs[job]})
	}
	st, err := embedded.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the embedded store stopped with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the embedded store did not stop within 15s")
		}
		if err := st.Close(); err != nil {
			t.Errorf("closing the embedded store: %v", err)
		}
	})
	return st
}

// TestLatencySpikeDrill runs the latency_spike drill against three regions
// steered by a real SLA engine (over the embedded store), the engine's
// status read over HTTP as `carpoolsla drill --engine URL` reads it. The
// drill must meet its objectives with the engine's breaker, not the
// gateways' probes, moving the traffic; and its breaker-open moment must
// match the engine's own record within a poll.
func TestLatencySpikeDrill(t *testing.T) {
	s := shortSpec(t)
	c := startCluster(t, s)
	store := startStore(t, s, c)
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	reader, err := signals.New(signals.Config{Spec: s, Querier: store, LatencyWindow: 5 * time.Second, Registerer: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	var gws []actuate.Gateway
	for _, name := range c.Names() {
		gws = append(gws, actuate.Gateway{Region: name, URL: c.Regions[name].URLs()[region.Gateway]})
	}
	pusher, err := actuate.New(actuate.Config{Gateways: gws, Token: token, Timeout: 500 * time.Millisecond, Registerer: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Spec: s, Reader: reader, Actuator: pusher, Registerer: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(eng.Handler())
	defer api.Close()
	ctx, cancel := context.WithCancel(context.Background())
	engineDone := make(chan error, 1)
	go func() { engineDone <- eng.Run(ctx) }()
	defer func() { cancel(); <-engineDone }()

	// The engine has measured every region before the drill starts, so its
	// trip clock starts with the fault.
	realserver.WaitFor(t, 40*time.Second, "every region measured and closed", func() (bool, error) {
		st := eng.Status()
		if len(st.Regions) != len(c.Names()) {
			return false, fmt.Errorf("%d regions decided", len(st.Regions))
		}
		for _, r := range st.Regions {
			if r.Breaker != engine.Closed || !r.LatencyP99.Known() {
				return false, fmt.Errorf("%s: breaker %s, P99 %v", r.Region, r.Breaker, r.LatencyP99)
			}
		}
		return true, nil
	})

	// The test's own record of when the engine opened the slow region's breaker.
	openedAt := make(chan time.Time, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			if r, ok := eng.Status().Region(slow); ok && r.Breaker == engine.Open {
				openedAt <- time.Now()
				return
			}
			select {
			case <-watchCtx.Done():
				openedAt <- time.Time{}
				return
			case <-tk.C:
			}
		}
	}()

	tg := drill.Target{Token: token, Engine: api.URL + "/api/v1/status", Regions: map[string]drill.RegionTarget{}}
	for _, n := range c.Names() {
		u := c.Regions[n].URLs()
		tg.Regions[n] = drill.RegionTarget{Gateway: u[region.Gateway], API: u[region.Entry]}
	}
	r, err := drill.New(drill.Config{Spec: s, Target: tg, Scenario: spec.ScenarioLatencySpike, Region: slow, Value: "500ms",
		Rate: 15, Baseline: 2 * time.Second, Hold: 3 * time.Second, Settle: time.Second, MaxWait: 40 * time.Second,
		RecoverTimeout: 40 * time.Second, Tail: 300 * time.Millisecond, Poll: poll, MetricsPoll: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithTimeout(ctx, 3*time.Minute)
	defer stopRun()
	res, err := r.Run(runCtx)
	if err != nil {
		t.Fatal(err)
	}
	stopWatch()
	opened := <-openedAt
	if t.Failed() || testing.Verbose() || !res.Passed {
		t.Logf("report:\n%s", res.Markdown())
	}
	if !res.Passed {
		t.Fatalf("the drill missed %v", res.Failed())
	}
	if opened.IsZero() || res.Timeline.BreakerOpen == nil {
		t.Fatalf("the engine's breaker opened at %v, the drill saw it at %v", opened, res.Timeline.BreakerOpen)
	}
	// The drill polls every 100 ms; the test every 10 ms.
	if d := res.Timeline.BreakerOpen.Sub(opened); d < -20*time.Millisecond || d > poll+100*time.Millisecond {
		t.Errorf("the drill saw the breaker open at %s, the engine opened it at %s: off by %s, more than a poll",
			res.Timeline.BreakerOpen.Format("15:04:05.000"), opened.Format("15:04:05.000"), d)
	}
	if !strings.Contains(res.Timeline.DecidedBy, "engine opened "+slow) {
		t.Errorf("decided by %q; the engine should have decided", res.Timeline.DecidedBy)
	}
	if !strings.HasPrefix(res.Timeline.DetectedBy, "engine: "+slow) {
		t.Errorf("detected by %q; the engine should have noticed first (the probes have 800 ms for 500 ms of latency)", res.Timeline.DetectedBy)
	}
	// The trip rule held for breaker.trip.for before the breaker opened.
	if res.DecideSeconds < tripFor.Seconds()-float64(tick/time.Second)-0.5 {
		t.Errorf("detect %.3fs, decide %.3fs: the breaker opened sooner than the %s trip rule allows", res.DetectSeconds, res.DecideSeconds, tripFor)
	}
}
