package enginetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/carpoolsla/carpoolsla/alerts"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/services/region/regiontest"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/embedded"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/engine/actuate"
	"github.com/carpoolsla/carpoolsla/sla/engine/signals"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

const adminToken = "e2e-admin-token"

// The test's short windows.
const (
	tick          = time.Second
	tripFor       = 6 * time.Second
	recoverFor    = 4 * time.Second
	stepDuration  = 2 * time.Second
	holdInitial   = 3 * time.Second
	latencyWindow = 5 * time.Second
	injected      = 500 * time.Millisecond
	loadRate      = 20 // requests per second through the gateways
	slowRegion    = "sh-b"
)

// e2eSpec is deploy/sla.yaml with windows short enough for a test: a 1 s
// engine tick and scrape, a 6 s trip, a 4 s recovery, a ramp of 50 % then
// 100 % for 2 s each, a 3 s initial hold. The probes' timeout is 800 ms, so
// that 500 ms of latency slows a region without failing its probes: what
// takes its traffic away is the engine's breaker, not the gateways' probes.
// Config consistency is left out of the health score because the cluster
// runs no config-drift exporter.
func e2eSpec(t testing.TB) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := func(v time.Duration) spec.Duration { return spec.Duration(v) }
	s.Engine.Interval, s.Engine.ScrapeInterval = d(tick), d(tick)
	s.Engine.StaleAfter, s.Engine.RecoveryBlackout = d(10*time.Second), d(2*time.Second)
	s.Breaker.Trip.For, s.Breaker.Recover.For = d(tripFor), d(recoverFor)
	s.Breaker.Ramp = spec.Ramp{Steps: []float64{50, 100}, StepDuration: d(stepDuration)}
	s.Breaker.Hold.Initial, s.Breaker.Hold.Max, s.Breaker.Hold.ResetAfter = d(holdInitial), d(30*time.Second), d(time.Minute)
	s.Routing.Probes.Timeout = d(800 * time.Millisecond)
	var comps []spec.HealthComponent
	for _, c := range s.Health.Components {
		if c.Measure != spec.MeasureConfigConsistency {
			comps = append(comps, c)
		}
	}
	total := 0.0
	for _, c := range comps {
		total += c.Weight
	}
	for i := range comps {
		comps[i].Weight = math.Round(comps[i].Weight/total*1000) / 1000
	}
	comps[0].Weight += 1 - sumWeights(comps)
	s.Health.Components = comps
	if err := s.Validate(); err != nil {
		t.Fatalf("the e2e spec is invalid: %v", err)
	}
	return s
}

func sumWeights(cs []spec.HealthComponent) float64 {
	total := 0.0
	for _, c := range cs {
		total += c.Weight
	}
	return total
}

// startCluster runs every region of s in this process.
func startCluster(t *testing.T, s *spec.Spec) *region.Cluster {
	t.Helper()
	return regiontest.Start(t, region.ClusterConfig{Spec: s, AdminToken: adminToken})
}

func rulesYAML(t testing.TB, s *spec.Spec) []byte {
	t.Helper()
	set, err := alerts.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := set.RulesYAML(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startEmbedded runs the embedded store scraping jobs every tick with the
// spec's generated rules.
func startEmbedded(t *testing.T, s *spec.Spec, jobs map[string][]string) source.Querier {
	t.Helper()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rules, rulesYAML(t, s), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := embedded.ConfigFromSpec(s, filepath.Join(dir, "tsdb"))
	cfg.RuleFiles = []string{rules}
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

// startPrometheus runs a real Prometheus 2.42 with the same jobs and rules
// and returns the external client on it.
func startPrometheus(t *testing.T, s *spec.Spec, jobs map[string][]string) source.Querier {
	t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\nrule_files: [\"{{DIR}}/rules.yml\"]\nscrape_configs:\n", s.Engine.ScrapeInterval, s.Engine.ScrapeInterval)
	for _, job := range slices.Sorted(maps.Keys(jobs)) {
		byPath := map[string][]string{}
		for _, raw := range jobs[job] {
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			byPath[u.Path] = append(byPath[u.Path], u.Host)
		}
		for _, path := range slices.Sorted(maps.Keys(byPath)) {
			hosts, _ := json.Marshal(byPath[path])
			fmt.Fprintf(&cfg, "  - job_name: %s\n    metrics_path: %s\n    static_configs: [{targets: %s}]\n", job, path, hosts)
		}
	}
	p := realserver.StartPrometheus(t, realserver.PrometheusOptions{Config: []byte(cfg.String()), Files: map[string][]byte{"rules.yml": rulesYAML(t, s)}})
	h, err := source.NewHTTP(source.HTTPConfig{URL: p.URL, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// tickRecord is what the engine read at one tick.
type tickRecord struct {
	At  time.Time
	P99 engine.Measured // the slow region's
}

// recordingReader records the slow region's P99 of every tick.
type recordingReader struct {
	engine.Reader
	mu    sync.Mutex
	ticks []tickRecord
}

func (r *recordingReader) Read(ctx context.Context, at time.Time) (engine.Signals, error) {
	sig, err := r.Reader.Read(ctx, at)
	rec := tickRecord{At: at}
	for _, reg := range sig.Regions {
		if reg.Region == slowRegion {
			rec.P99 = reg.LatencyP99
		}
	}
	r.mu.Lock()
	r.ticks = append(r.ticks, rec)
	r.mu.Unlock()
	return sig, err
}

func (r *recordingReader) records() []tickRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ticks)
}

// shot is one request of the load.
type shot struct {
	Start  time.Time
	Region string // X-Carpool-Region: the region that served it
	Code   int
}

// load sends rate requests per second (an open loop: one goroutine per
// request, at most 64 in flight) through the gateways in turn, each a ride
// lookup, and records who served them.
type load struct {
	mu      sync.Mutex
	shots   []shot
	dropped int
	wg      sync.WaitGroup
}

func startLoad(ctx context.Context, t *testing.T, gateways []string, paths []string) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{}
	client := &http.Client{Timeout: 5 * time.Second}
	sem := make(chan struct{}, 64)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tk := time.NewTicker(time.Second / loadRate)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			select {
			case sem <- struct{}{}:
			default:
				l.mu.Lock()
				l.dropped++
				l.mu.Unlock()
				continue
			}
			gw, path := gateways[i%len(gateways)], paths[i%len(paths)]
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer func() { <-sem }()
				start := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw+path, nil)
				resp, err := client.Do(req)
				s := shot{Start: start}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					s.Region, s.Code = resp.Header.Get("X-Carpool-Region"), resp.StatusCode
				}
				l.mu.Lock()
				l.shots = append(l.shots, s)
				l.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { cancel(); l.wg.Wait() })
	return l
}

func (l *load) snapshot() []shot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.shots)
}

// lastServedBy is the start of the last request served by region that
// started in [from, to].
func lastServedBy(shots []shot, region string, from, to time.Time) (time.Time, int) {
	var last time.Time
	n := 0
	for _, s := range shots {
		if s.Region == region && !s.Start.Before(from) && !s.Start.After(to) {
			n++
			if s.Start.After(last) {
				last = s.Start
			}
		}
	}
	return last, n
}

// upstreamTo sums every gateway's attempts sent to target, from the
// gateways' own registries.
func upstreamTo(t *testing.T, c *region.Cluster, target string) float64 {
	t.Helper()
	total := 0.0
	for _, name := range c.Names() {
		mfs, err := c.Regions[name].Registries[region.Gateway].Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != catalog.GatewayUpstreamRequests.Name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == catalog.LabelTarget && lp.GetValue() == target {
						total += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return total
}

// gatewayView is one gateway's GET /admin/routing, reduced to one region.
type gatewayView struct {
	Version      int64
	Breaker      string
	Weight       float64
	ProbeHealthy bool
	// Share is the region's weight over every serving region's.
	Share float64
}

func gatewayRouting(gatewayURL, target string) (gatewayView, error) {
	req, _ := http.NewRequest(http.MethodGet, gatewayURL+actuate.RoutingPath, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return gatewayView{}, err
	}
	defer resp.Body.Close()
	var st struct {
		Version int64 `json:"version"`
		Regions map[string]struct {
			Weight       float64 `json:"weight"`
			Breaker      string  `json:"breaker"`
			ProbeHealthy bool    `json:"probe_healthy"`
		} `json:"regions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return gatewayView{}, err
	}
	r := st.Regions[target]
	v := gatewayView{Version: st.Version, Breaker: r.Breaker, Weight: r.Weight, ProbeHealthy: r.ProbeHealthy}
	total := 0.0
	for _, x := range st.Regions {
		if x.Breaker != string(engine.Open) {
			total += x.Weight
		}
	}
	if total > 0 && r.Breaker != string(engine.Open) {
		v.Share = r.Weight / total
	}
	return v, nil
}

func setFault(t *testing.T, entryURL string, method, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, entryURL+"/admin/faults", bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s /admin/faults %s: %d %s", method, body, resp.StatusCode, b)
	}
}

// createRides creates one ride through each gateway and returns their
// lookup paths (GET /v1/rides/{id}).
func createRides(t *testing.T, c *region.Cluster) []string {
	t.Helper()
	var paths []string
	for i, name := range c.Names() {
		body := fmt.Sprintf(`{"rider_id":"e2e-rider-%d","pickup":{"lat":31.23,"lng":121.47},"dropoff":{"lat":31.28,"lng":121.52}}`, i)
		req, _ := http.NewRequest(http.MethodPost, c.Regions[name].URLs()[region.Gateway]+"/v1/rides", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Rider-ID", fmt.Sprintf("e2e-rider-%d", i))
		req.Header.Set("Idempotency-Key", fmt.Sprintf("e2e-key-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			ID string `json:"id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || r.ID == "" || resp.StatusCode >= 300 {
			t.Fatalf("creating a ride through %s's gateway: %d %v", name, resp.StatusCode, err)
		}
		paths = append(paths, "/v1/rides/"+r.ID)
	}
	return paths
}

// describe summarises a status: each region's breaker, P95, health and weight.
func describe(st engine.Status) string {
	var parts []string
	for _, r := range st.Regions {
		parts = append(parts, fmt.Sprintf("%s %s p95=%.3fs health=%.0f weight=%.1f", r.Region, r.Breaker, float64(r.LatencyP95), float64(r.Health), r.Weight))
	}
	return strings.Join(parts, "; ")
}

// TestLatencyInOneRegionOpensItsBreakerAndTheRampBringsItBack is the
// issue's end-to-end proof, once against the embedded store and once
// against a real Prometheus 2.42.
func TestLatencyInOneRegionOpensItsBreakerAndTheRampBringsItBack(t *testing.T) {
	for name, start := range map[string]func(*testing.T, *spec.Spec, map[string][]string) source.Querier{
		"embedded store":  startEmbedded,
		"prometheus 2.42": startPrometheus,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each drill has its own cluster, store and engine
			runLatencyDrill(t, start)
		})
	}
}

func runLatencyDrill(t *testing.T, startStore func(*testing.T, *spec.Spec, map[string][]string) source.Querier) {
	began := time.Now()
	s := e2eSpec(t)
	c := startCluster(t, s)
	slowEntry := c.Regions[slowRegion].URLs()[region.Entry]
	var gateways []string
	var pushTo []actuate.Gateway
	for _, name := range c.Names() {
		u := c.Regions[name].URLs()[region.Gateway]
		gateways = append(gateways, u)
		pushTo = append(pushTo, actuate.Gateway{Region: name, URL: u})
	}

	// The engine's own /metrics is scraped into the same store, as
	// `carpoolsla engine` does.
	reg := prometheus.NewRegistry()
	engineMetrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(engineMetrics.Close)
	jobs := c.MetricsJobs()
	jobs["carpool-engine"] = []string{engineMetrics.URL + "/metrics"}
	store := startStore(t, s, jobs)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	reader, err := signals.New(signals.Config{Spec: s, Querier: store, LatencyWindow: latencyWindow, Registerer: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingReader{Reader: reader}
	pusher, err := actuate.New(actuate.Config{Gateways: pushTo, Token: adminToken, Timeout: 500 * time.Millisecond, Registerer: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Spec: s, Reader: rec, Actuator: pusher, Registerer: reg, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	engineDone := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		select {
		case <-engineDone:
		case <-time.After(10 * time.Second):
			t.Error("the engine did not stop within 10s")
		}
	})

	l := startLoad(ctx, t, gateways, createRides(t, c))
	go func() { engineDone <- eng.Run(ctx) }()

	// Steady state: every region measured, closed and serving.
	realserver.WaitFor(t, 40*time.Second, "every region measured and closed", func() (bool, error) {
		st := eng.Status()
		if len(st.Regions) != len(c.Names()) {
			return false, fmt.Errorf("%d regions decided", len(st.Regions))
		}
		for _, r := range st.Regions {
			if r.Breaker != engine.Closed || !r.LatencyP99.Known() || !r.Health.Known() || r.Stale {
				return false, fmt.Errorf("%s: breaker %s, P99 %v, health %v, stale %v %v", r.Region, r.Breaker, r.LatencyP99, r.Health, r.Stale, r.StaleInputs)
			}
		}
		return true, nil
	})
	bar := spec.D(s.Breaker.Trip.LatencyP99).Seconds()
	for _, r := range rec.records() {
		if r.P99.OK && r.P99.Value > bar {
			t.Fatalf("%s's P99 was %.3fs at %s before any fault: the machine is too busy for this test", slowRegion, r.P99.Value, r.At.Format(time.TimeOnly))
		}
	}
	t.Logf("steady after %s: %s", time.Since(began).Round(time.Millisecond), describe(eng.Status()))

	// Inject 500 ms into the slow region's order service.
	injectedAt := time.Now()
	setFault(t, slowEntry, http.MethodPatch, fmt.Sprintf(`{"services":{"order":{"latency":{"fixed":%q}}}}`, injected))

	var opened engine.RegionDecision
	minShare, probeHealthy := 1.0, true
	realserver.WaitFor(t, 40*time.Second, slowRegion+"'s breaker open", func() (bool, error) {
		r, _ := eng.Status().Region(slowRegion)
		opened = r
		for _, gw := range gateways {
			if v, err := gatewayRouting(gw, slowRegion); err == nil {
				probeHealthy = probeHealthy && v.ProbeHealthy
				if v.Breaker != string(engine.Open) {
					minShare = min(minShare, v.Share)
				}
			}
		}
		return r.Breaker == engine.Open, fmt.Errorf("breaker %s, P99 %v, reason %q", r.Breaker, r.LatencyP99, r.Reason)
	})
	var firstAbove time.Time
	for _, r := range rec.records() {
		if r.At.After(injectedAt) && r.P99.OK && r.P99.Value > bar {
			firstAbove = r.At
			break
		}
	}
	if firstAbove.IsZero() {
		t.Fatalf("the breaker opened (%s) but no tick read %s's P99 above %.1fs", opened.Reason, slowRegion, bar)
	}
	deadline := firstAbove.Add(tripFor + 2*tick)
	t.Logf("P99 above the bar first at +%s, breaker open at +%s (%s)", firstAbove.Sub(injectedAt).Round(time.Millisecond),
		opened.Since.Sub(injectedAt).Round(time.Millisecond), opened.Reason)
	if opened.Since.Before(firstAbove.Add(tripFor)) {
		t.Errorf("the breaker opened at %s, before the trip rule held for %s (first above at %s)", opened.Since.Format(time.StampMilli), tripFor, firstAbove.Format(time.StampMilli))
	}
	if opened.Since.After(deadline) {
		t.Errorf("the breaker opened at %s, later than the trip duration plus two ticks (%s)", opened.Since.Format(time.StampMilli), deadline.Format(time.StampMilli))
	}

	// Every gateway applies it, and no request is routed there any more.
	for i, gw := range gateways {
		realserver.WaitFor(t, 5*time.Second, c.Names()[i]+"'s gateway applies the open breaker", func() (bool, error) {
			v, err := gatewayRouting(gw, slowRegion)
			return v.Breaker == string(engine.Open) && v.Weight == 0, fmt.Errorf("%+v %v", v, err)
		})
	}
	before := upstreamTo(t, c, slowRegion)
	shotsBefore := len(l.snapshot())
	quiet := time.Now()
	realserver.WaitFor(t, 10*time.Second, "3s of load after the breaker opened", func() (bool, error) {
		return time.Since(quiet) >= 3*time.Second && len(l.snapshot()) >= shotsBefore+loadRate*2, nil
	})
	if after := upstreamTo(t, c, slowRegion); after != before {
		t.Errorf("the gateways sent %v attempts to %s while its breaker was open", after-before, slowRegion)
	}
	shots := l.snapshot()
	byRegion := map[string]int{}
	for _, x := range shots {
		byRegion[fmt.Sprintf("%s/%d", x.Region, x.Code)]++
	}
	t.Logf("served so far (region/status): %v", byRegion)
	lastB, servedAfterInject := lastServedBy(shots, slowRegion, injectedAt, time.Now())
	if servedAfterInject > 0 {
		t.Logf("%d requests served by %s after the fault; the last started at +%s", servedAfterInject, slowRegion, lastB.Sub(injectedAt).Round(time.Millisecond))
	}
	if lastB.After(deadline) {
		t.Errorf("a request started at %s was still routed to %s, after the trip duration plus two ticks (%s)", lastB.Format(time.StampMilli), slowRegion, deadline.Format(time.StampMilli))
	}
	// The engine moved the traffic, not the gateways' probes: the slow
	// region stayed probe-healthy at every gateway, and before the breaker
	// opened its inverse-P95 weight had already shrunk its share.
	t.Logf("%s's smallest share of the gateways' weights before the breaker opened: %.3f", slowRegion, minShare)
	if !probeHealthy {
		t.Errorf("a gateway saw %s probe-unhealthy: its probes, not the engine, may have moved the traffic", slowRegion)
	}
	if minShare >= 1.0/float64(len(gateways)) {
		t.Errorf("%s kept a share of %.3f of the weights while slow; the inverse-P95 weights did not move traffic away", slowRegion, minShare)
	}
	if _, n := lastServedBy(shots, "sh-a", opened.Since, time.Now()); n == 0 {
		t.Error("the other regions served nothing while the breaker was open")
	}

	// Clear the fault and watch the ramp, tick by tick.
	clearedAt := time.Now()
	setFault(t, slowEntry, http.MethodDelete, "")
	type step struct {
		At      time.Time
		Breaker engine.BreakerState
		Ramp    float64
	}
	var steps []step
	sawRecoveringAtGateway := false
	realserver.WaitFor(t, 60*time.Second, slowRegion+" closed again", func() (bool, error) {
		st := eng.Status()
		r, _ := st.Region(slowRegion)
		if n := len(steps); n == 0 || steps[n-1].Breaker != r.Breaker || steps[n-1].Ramp != r.RampPercent {
			steps = append(steps, step{st.At, r.Breaker, r.RampPercent})
		}
		if v, err := gatewayRouting(gateways[0], slowRegion); err == nil && v.Breaker == string(engine.Recovering) && v.Weight > 0 {
			sawRecoveringAtGateway = true
		}
		return r.Breaker == engine.Closed, fmt.Errorf("breaker %s ramp %v P99 %v", r.Breaker, r.RampPercent, r.LatencyP99)
	})
	var trace []string
	for _, x := range steps {
		trace = append(trace, fmt.Sprintf("+%s %s %g%%", x.At.Sub(clearedAt).Round(100*time.Millisecond), x.Breaker, x.Ramp))
	}
	t.Logf("after clearing: %s", strings.Join(trace, " → "))
	var ramps []float64
	for i, x := range steps {
		if x.Breaker == engine.Open && i > 0 {
			t.Errorf("the breaker opened again during recovery: %s", strings.Join(trace, " → "))
		}
		if x.Breaker == engine.Recovering {
			ramps = append(ramps, x.Ramp)
		}
	}
	if len(ramps) == 0 || ramps[0] != s.Breaker.Ramp.Steps[0] || !slices.IsSorted(ramps) {
		t.Errorf("the ramp went %v; want it to start at %v%% and only go up", ramps, s.Breaker.Ramp.Steps[0])
	}
	for i := 1; i < len(steps); i++ {
		if steps[i-1].Breaker == engine.Recovering && steps[i].At.Sub(steps[i-1].At) < stepDuration {
			t.Errorf("ramp step %g%% lasted %s, less than the step duration %s", steps[i-1].Ramp, steps[i].At.Sub(steps[i-1].At), stepDuration)
		}
	}
	if !sawRecoveringAtGateway {
		t.Error("the gateway never routed to the recovering region at a ramp weight")
	}
	closedAt := time.Now()
	realserver.WaitFor(t, 10*time.Second, slowRegion+" serving again", func() (bool, error) {
		_, n := lastServedBy(l.snapshot(), slowRegion, closedAt, time.Now())
		return n > 0, nil
	})

	// The engine's breaker states reached the store through its own /metrics.
	realserver.WaitFor(t, 10*time.Second, "carpool_breaker_state in the store", func() (bool, error) {
		v, err := store.Query(context.Background(), fmt.Sprintf(`max_over_time(%s{region=%q}[2m])`, catalog.BreakerState.Name, slowRegion), time.Now())
		return err == nil && len(v) == 1 && v[0].Value == catalog.BreakerOpen, fmt.Errorf("%v %v", v, err)
	})
	l.mu.Lock()
	dropped := l.dropped
	l.mu.Unlock()
	t.Logf("drill took %s; %d requests, %d dropped by the load's in-flight bound", time.Since(began).Round(time.Millisecond), len(l.snapshot()), dropped)
}
