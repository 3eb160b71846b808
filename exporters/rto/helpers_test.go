package rto

import (
	"bytes"
	"io"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// registry returns a fresh registry holding s in the shared frame. (Two
// frame collectors cannot share a registry: their carpool_exporter_*
// descriptors collide.)
func registry(t *testing.T, s exporters.Scraper) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(s, 5*time.Second, nil))
	return reg
}

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

func success(region string) string {
	return `carpool_synthetic_probe_success{region="` + region + `"}`
}
func duration(region string) string {
	return `carpool_synthetic_probe_duration_seconds{region="` + region + `"}`
}
func runs(region string) string { return `carpool_synthetic_probe_runs_total{region="` + region + `"}` }
func failures(region, step string) string {
	return `carpool_synthetic_probe_failures_total{region="` + region + `",step="` + step + `"}`
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
