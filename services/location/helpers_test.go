package location

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

// fakeClock is a settable clock for state machines tested without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
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

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testService is a Service on an httptest server bound to 127.0.0.1, run
// until the test ends.
type testService struct {
	*Service
	reg    *prometheus.Registry
	srv    *httptest.Server
	wsURL  string
	faults *faults.Injector
	cancel context.CancelFunc
	done   chan error
}

func startService(t testing.TB, cfg Config) *testService {
	t.Helper()
	return startServiceOn(t, cfg, nil)
}

// startServiceOn starts the service on ln (a fresh 127.0.0.1 listener when
// nil).
func startServiceOn(t testing.TB, cfg Config, ln net.Listener) *testService {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Region == "" {
		cfg.Region = "eu"
	}
	if cfg.Faults == nil {
		cfg.Faults = &faults.Injector{}
	}
	cfg.Registerer = reg
	cfg.Logger = quietLogger()
	setDefault(&cfg.Consumer.Block, 50*time.Millisecond)
	setDefault(&cfg.Consumer.PausePoll, 10*time.Millisecond)
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testService{Service: svc, reg: reg, faults: cfg.Faults, done: make(chan error, 1)}
	ts.srv = httptest.NewUnstartedServer(svc.Handler())
	if ln != nil {
		_ = ts.srv.Listener.Close()
		ts.srv.Listener = ln
	}
	ts.srv.Start()
	ts.wsURL = "ws" + strings.TrimPrefix(ts.srv.URL, "http") + Route
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- svc.Run(ctx) }()
	t.Cleanup(ts.stop)
	return ts
}

// stop ends Run (bounded) and the HTTP server; it may be called twice.
func (ts *testService) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.cancel = nil
	select {
	case <-ts.done:
	case <-time.After(10 * time.Second):
		panic("the location service did not stop within 10 s")
	}
	ts.srv.Close()
}

// value reads a counter or gauge of the service's registry by metric
// name and label values in the catalog's label order.
func (ts *testService) value(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// valueOf reads a counter or gauge (testutil.ToFloat64 would need a module
// go.mod does not list).
func valueOf(m prometheus.Metric) float64 {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		panic(err)
	}
	if pb.Counter != nil {
		return pb.GetCounter().GetValue()
	}
	return pb.GetGauge().GetValue()
}

// waitFor polls cond every 5 ms and fails the test when timeout passes
// first.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not done after %s", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
