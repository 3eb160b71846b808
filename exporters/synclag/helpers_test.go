package synclag

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

var ctx = context.Background()

// t0 is the fake clocks' start: 2025-11-25T00:00:00Z.
var t0 = time.Unix(1_764_028_800, 0)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

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

// fakeBackend is an in-memory HeartbeatBackend that can be made to fail.
type fakeBackend struct {
	mu     sync.Mutex
	rows   map[string]time.Time
	err    error
	writes int
}

func newFake(rows map[string]time.Time) *fakeBackend {
	if rows == nil {
		rows = map[string]time.Time{}
	}
	return &fakeBackend{rows: rows}
}

func (f *fakeBackend) Write(_ context.Context, region string, ts time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.rows[region] = ts
	f.writes++
	return nil
}

func (f *fakeBackend) Read(context.Context) (map[string]time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := make(map[string]time.Time, len(f.rows))
	for k, v := range f.rows {
		out[k] = v
	}
	return out, nil
}

func (f *fakeBackend) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// served is a Reader registered as an exporter would be.
type served struct {
	reg  *prometheus.Registry
	sets []*vmetrics.Set
}

func serve(t testing.TB, r *Reader, extra ...prometheus.Collector) *served {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(r, time.Second, nil))
	reg.MustRegister(extra...)
	s := &served{reg: reg}
	if set := r.Set(); set != nil {
		s.sets = append(s.sets, set)
	}
	return s
}

// text scrapes /metrics.
func (s *served) text(t testing.TB) string {
	t.Helper()
	w := httptest.NewRecorder()
	exporters.Handler(s.reg, s.sets...).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

// scrape is one parsed scrape of /metrics.
type scrape map[string]*dto.MetricFamily

func (s *served) scrape(t testing.TB) scrape {
	t.Helper()
	return parse(t, s.text(t))
}

func parse(t testing.TB, text string) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, text)
	}
	return fams
}

// get returns the value of the series of name with labels (pairs of name,
// value); ok is false when it is absent.
func (sc scrape) get(name string, labels ...string) (float64, bool) {
	mf := sc[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := len(have) == len(labels)/2
		for i := 0; match && i+1 < len(labels); i += 2 {
			match = have[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func (sc scrape) count(name string) int {
	if mf := sc[name]; mf != nil {
		return len(mf.GetMetric())
	}
	return 0
}

func (sc scrape) lag(src, dst string) (float64, bool) {
	return sc.get("carpool_sync_lag_seconds", "source_region", src, "target_region", dst)
}

func (sc scrape) up() float64 {
	v, _ := sc.get("carpool_exporter_up", "exporter", Name)
	return v
}

// promtoolCheck pipes a scrape into the real `promtool check metrics`.
func promtoolCheck(t testing.TB, text string) {
	t.Helper()
	cmd := exec.Command(realserver.Binary(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\nscrape:\n%s", err, out.String(), text)
	}
}

// proxy forwards TCP connections to a real server; cut makes the server
// unreachable (open connections dropped, new ones refused) until restore.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	go p.accept()
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		if !down {
			p.conns[c] = true
		}
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		go p.forward(c)
	}
}

func (p *proxy) forward(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[s] = true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
	_, _ = io.Copy(c, s)
	_ = c.Close()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// near reports whether got is within tol of want.
func near(got, want, tol float64) bool { return got >= want-tol && got <= want+tol }
