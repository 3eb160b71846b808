package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
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

// fakeTicker ticks when the test sends on c.
type fakeTicker struct{ c chan time.Time }

func (f *fakeTicker) C() <-chan time.Time { return f.c }
func (f *fakeTicker) Stop()               {}

// upstream is one region's fake service: it counts the requests it serves
// (probes apart) and answers with status (200 by default).
type upstream struct {
	name      string
	srv       *httptest.Server
	hits      atomic.Int64
	probes    atomic.Int64
	status    atomic.Int32 // 0 means 200
	probeCode atomic.Int32 // 0 means 200
	delay     atomic.Int64 // nanoseconds before answering

	mu          sync.Mutex
	traceparent string
	bodies      []string
	headers     http.Header
}

func newUpstream(t testing.TB, name string) *upstream {
	t.Helper()
	u := &upstream{name: name}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			u.probes.Add(1)
			if c := u.probeCode.Load(); c != 0 {
				w.WriteHeader(int(c))
			}
			return
		}
		u.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.traceparent = r.Header.Get("traceparent")
		u.bodies = append(u.bodies, string(body))
		u.headers = r.Header.Clone()
		u.mu.Unlock()
		if d := time.Duration(u.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		code := int(u.status.Load())
		if code == 0 {
			code = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, "{\"region\":%q,\"path\":%q}\n", name, r.URL.RequestURI())
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// testGateway is a gateway over fake upstreams, with a fake clock and
// hand-driven tickers.
type testGateway struct {
	*Gateway
	ups   map[string]*upstream
	clock *fakeClock
	reg   *prometheus.Registry
	srv   *httptest.Server
}

const testToken = "s3cret"

// newTestGateway builds the gateway of the first region over one fake
// upstream per name. edit changes the config before New.
func newTestGateway(t testing.TB, names []string, edit func(*Config)) *testGateway {
	t.Helper()
	tg := &testGateway{ups: map[string]*upstream{}, clock: newFakeClock(), reg: prometheus.NewRegistry()}
	cfg := Config{Region: names[0], AdminToken: testToken, Now: tg.clock.Now,
		NewTicker: func(time.Duration) Ticker { return &fakeTicker{c: make(chan time.Time)} }}
	for _, n := range names {
		u := newUpstream(t, n)
		tg.ups[n] = u
		cfg.Regions = append(cfg.Regions, Upstream{Name: n, City: "city-" + n, BaseURL: u.srv.URL})
	}
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(cfg, tg.reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.Gateway = g
	tg.srv = httptest.NewServer(g.Handler())
	t.Cleanup(tg.srv.Close)
	return tg
}

// do sends one request through the gateway.
func (tg *testGateway) do(t testing.TB, method, path string, hdr map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, tg.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := tg.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s through the gateway: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// push sends a routing table with the admin token.
func (tg *testGateway) push(t testing.TB, table string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, tg.srv.URL+"/admin/routing", bytes.NewBufferString(table))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := tg.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// setHealthy drives a region's probe state machine until it has the
// wanted health.
func (tg *testGateway) setHealthy(name string, healthy bool) {
	r := tg.byName[name]
	for i := 0; i < 10 && r.healthy.Load() != healthy; i++ {
		tg.applyProbe(r, probeResult{ok: healthy})
	}
}

// counter reads the value of one counter or gauge child.
func counter(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
