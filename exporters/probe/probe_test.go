package probe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func TestStateMachine(t *testing.T) {
	// o = success, x = failure; want is the health after each result.
	f := func(results, want string) {
		t.Helper()
		s := state{healthy: true}
		var got strings.Builder
		for _, r := range results {
			s.observe(r == 'o', 3, 2)
			if s.healthy {
				got.WriteByte('H')
			} else {
				got.WriteByte('U')
			}
		}
		if got.String() != want {
			t.Fatalf("%s: got %s, want %s", results, got.String(), want)
		}
	}
	f("ooo", "HHH")
	f("xx", "HH")             // two failures are not three
	f("xxx", "HHU")           // three in a row are
	f("xxoxx", "HHHHH")       // a success resets the count
	f("xxxo", "HHUU")         // one success is not two
	f("xxxoo", "HHUUH")       // two are
	f("xxxoxoo", "HHUUUUH")   // a failure resets the successes
	f("xxxooxxx", "HHUUHHHU") // and it can go down again
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fakeTicker struct{ ch chan time.Time }

func (t fakeTicker) C() <-chan time.Time { return t.ch }
func (t fakeTicker) Stop()               {}

// fakeTransport answers probes by host: ok (204 after the host's latency
// on the fake clock) or an error.
type fakeTransport struct {
	clock *fakeClock
	mu    sync.Mutex
	fail  map[string]bool
	took  map[string]time.Duration
	heads atomic.Int64
}

func (f *fakeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.heads.Add(1)
	if r.Method != http.MethodHead {
		return nil, errors.New("not a HEAD")
	}
	f.mu.Lock()
	fail, took := f.fail[r.URL.Host], f.took[r.URL.Host]
	f.mu.Unlock()
	f.clock.Advance(took) // targets are probed concurrently: only one has a latency in these tests
	if fail {
		return nil, errors.New("connection refused")
	}
	return &http.Response{StatusCode: http.StatusNoContent, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func (f *fakeTransport) set(host string, fail bool) { f.mu.Lock(); f.fail[host] = fail; f.mu.Unlock() }

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	w := httptest.NewRecorder()
	exporters.Handler(reg).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

func value(out, series string) (float64, bool) {
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func want(t *testing.T, out, series string, v float64) {
	t.Helper()
	if got, ok := value(out, series); !ok || got != v {
		t.Fatalf("%s = %v (present %v), want %v\n%s", series, got, ok, v, out)
	}
}

func promtoolCheck(t *testing.T, out string) {
	t.Helper()
	cmd := exec.Command(realserver.Binary(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(out)
	if b, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(b)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, b, out)
	}
}

func series(name, target string) string { return name + `{region="sh-a",target="` + target + `"}` }

const up = `carpool_exporter_up{exporter="probe"}`

// TestProbeLoopOnAFakeClock drives the probe loop round by round with a
// fake ticker, clock and transport: the seed's 3 failures make a target
// unhealthy, 2 successes healthy again, and durations come from the clock.
func TestProbeLoopOnAFakeClock(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	tr := &fakeTransport{clock: clock, fail: map[string]bool{}, took: map[string]time.Duration{"b.test": 42 * time.Millisecond}}
	ticker := fakeTicker{ch: make(chan time.Time)}
	cfg := ConfigFromSpec("sh-a", spec.Default().Routing.Probes, []Target{{"sh-b", "http://b.test/healthz"}, {"bj-a", "http://c.test/healthz"}})
	cfg.Transport, cfg.Now = tr, clock.Now
	cfg.NewTicker = func(d time.Duration) Ticker {
		if d != time.Second {
			t.Errorf("ticker of %s, want the seed's 1s", d)
		}
		return ticker
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rounds := make(chan struct{})
	p.probed = func() { rounds <- struct{}{} }
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(p, 0, nil))

	if out := scrape(t, reg); strings.Contains(out, "carpool_probe_healthy{") {
		t.Fatalf("series before the first probe:\n%s", out)
	} else {
		want(t, out, up, 0) // the loop is not running
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	wait := func() {
		t.Helper()
		select {
		case <-rounds:
		case <-time.After(5 * time.Second):
			t.Fatal("no probe round within 5s")
		}
	}
	tick := func() { t.Helper(); ticker.ch <- clock.Now(); wait() }
	wait() // Run probes at once

	out := scrape(t, reg)
	want(t, out, up, 1)
	want(t, out, series("carpool_probe_healthy", "sh-b"), 1)
	want(t, out, series("carpool_probe_duration_seconds", "sh-b"), 0.042)
	want(t, out, series("carpool_probe_failures_total", "sh-b"), 0)
	promtoolCheck(t, out)

	tr.set("b.test", true)
	tick()
	tick()
	out = scrape(t, reg)
	want(t, out, series("carpool_probe_healthy", "sh-b"), 1) // 2 failures
	want(t, out, series("carpool_probe_failures_total", "sh-b"), 2)
	tick()
	out = scrape(t, reg)
	want(t, out, series("carpool_probe_healthy", "sh-b"), 0) // 3 failures
	want(t, out, series("carpool_probe_healthy", "bj-a"), 1)
	if p.Healthy("sh-b") {
		t.Fatal("Healthy(sh-b) after 3 failures")
	}

	tr.set("b.test", false)
	tick()
	want(t, scrape(t, reg), series("carpool_probe_healthy", "sh-b"), 0) // 1 success
	tick()
	out = scrape(t, reg)
	want(t, out, series("carpool_probe_healthy", "sh-b"), 1) // 2 successes
	want(t, out, series("carpool_probe_failures_total", "sh-b"), 3)
	promtoolCheck(t, out)

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, reg), up, 0) // stopped: the numbers go stale
	if n := tr.heads.Load(); n != 12 {
		t.Fatalf("%d probes, want 6 rounds of 2", n)
	}
}

// TestProbeOverRealHTTP probes httptest servers on 127.0.0.1: a 5xx, a
// timeout and a refused connection are failures; a redirect is a success
// and is not followed.
func TestProbeOverRealHTTP(t *testing.T) {
	var heads, followed atomic.Int64
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer ok.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer redirect.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer broken.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // holds the probe until the prober gives up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()

	p, err := New(Config{Region: "sh-a", Interval: time.Second, Timeout: 100 * time.Millisecond, UnhealthyAfter: 1, HealthyAfter: 1,
		Targets: []Target{{"ok", ok.URL + "/healthz"}, {"redirect", redirect.URL}, {"broken", broken.URL}, {"slow", slow.URL}, {"gone", goneURL}}})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	p.round(context.Background())
	if took := time.Since(began); took > 900*time.Millisecond {
		t.Fatalf("a round took %s; the 100ms timeout must bound it", took)
	}
	p.running = true // as if Run were running
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(p, 0, nil))
	out := scrape(t, reg)
	for target, h := range map[string]float64{"ok": 1, "redirect": 1, "broken": 0, "slow": 0, "gone": 0} {
		want(t, out, series("carpool_probe_healthy", target), h)
	}
	if d, _ := value(out, series("carpool_probe_duration_seconds", "slow")); d < 0.1 || d > 0.9 {
		t.Fatalf("the timed-out probe took %vs, want about the 100ms timeout", d)
	}
	if heads.Load() != 1 || followed.Load() != 0 {
		t.Fatalf("%d HEADs, %d redirects followed", heads.Load(), followed.Load())
	}
	promtoolCheck(t, out)
}

func TestConfigAndFlags(t *testing.T) {
	targets := []Target{{"a", "http://127.0.0.1:1/healthz"}}
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"A timeout not below the interval is refused.": {Config{Region: "r", Targets: targets, Interval: time.Second, Timeout: time.Second}, "not below interval"},
		"A missing region is named.":                   {Config{Targets: targets}, "region is empty"},
		"No target is named.":                          {Config{Region: "r"}, "no target"},
		"A URL that is not http is named.":             {Config{Region: "r", Targets: []Target{{"a", "tcp://x:1"}}}, `URL "tcp://x:1"`},
		"A target given twice is named.":               {Config{Region: "r", Targets: append(targets, targets...)}, `"a" is given twice`},
		"Negative thresholds are refused.":             {Config{Region: "r", Targets: targets, HealthyAfter: -1}, "healthy-after (-1)"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want %q", err, tc.want)
			}
		})
	}

	parse := func(args ...string) (*Exporter, error) {
		var f Flags
		fs := pflag.NewFlagSet("probe", pflag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Build(nil)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"A target without = is named.":        {[]string{"--region", "r", "--target", "http://x"}, `--target "http://x": want name=url`},
		"A zero interval is refused.":         {[]string{"--region", "r", "--target", "a=http://x", "--interval", "0s"}, "--interval (0s)"},
		"Zero thresholds are refused.":        {[]string{"--region", "r", "--target", "a=http://x", "--unhealthy-after", "0"}, "--unhealthy-after (0)"},
		"A timeout above the interval fails.": {[]string{"--region", "r", "--target", "a=http://x", "--timeout", "2s"}, "not below interval"},
		"A missing spec file is named.":       {[]string{"--region", "r", "--target", "a=http://x", "--spec", "/nonexistent.yaml"}, "--spec"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build(%v) = %v, want %q", tc.args, err, tc.want)
			}
		})
	}
	t.Run("The spec gives the defaults; explicit flags win.", func(t *testing.T) {
		e, err := parse("--region", "sh-a", "--target", "sh-b=http://127.0.0.1:1/healthz", "--spec", "../../deploy/sla.yaml", "--healthy-after", "5")
		if err != nil {
			t.Fatal(err)
		}
		s, err := spec.Load("../../deploy/sla.yaml")
		if err != nil {
			t.Fatal(err)
		}
		c := e.Prober.cfg
		if c.Interval != time.Duration(s.Routing.Probes.Interval) || c.UnhealthyAfter != s.Routing.Probes.UnhealthyAfter || c.HealthyAfter != 5 {
			t.Fatalf("config %+v from spec %+v", c, s.Routing.Probes)
		}
	})
	t.Run("A built exporter probes and stops.", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
		defer srv.Close()
		e, err := parse("--region", "sh-a", "--target", "sh-b="+srv.URL, "--interval", "50ms", "--timeout", "40ms")
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(e.Collectors...)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		realserver.WaitFor(t, 5*time.Second, "the first probe", func() (bool, error) {
			v, ok := value(scrape(t, reg), series("carpool_probe_healthy", "sh-b"))
			return ok && v == 1, nil
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var nilE *Exporter
		if err := nilE.Run(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
