package exporters

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

type fakeScraper struct{ err error }

var fakeDesc = prometheus.NewDesc("carpool_fake_value", "A fake value.", nil, nil)

func (f *fakeScraper) Name() string                        { return "fake" }
func (f *fakeScraper) Describe(ch chan<- *prometheus.Desc) { ch <- fakeDesc }
func (f *fakeScraper) Scrape(_ context.Context, ch chan<- prometheus.Metric) error {
	if f.err != nil {
		return f.err
	}
	ch <- prometheus.MustNewConstMetric(fakeDesc, prometheus.GaugeValue, 7)
	return nil
}

func scrape(t *testing.T, reg *prometheus.Registry, sets ...*vmetrics.Set) string {
	t.Helper()
	w := httptest.NewRecorder()
	Handler(reg, sets...).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

func TestAFailingBackendShowsAsDownAndRecovers(t *testing.T) {
	f := &fakeScraper{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(f, 0, nil))
	if out := scrape(t, reg); !strings.Contains(out, `carpool_exporter_up{exporter="fake"} 1`) || !strings.Contains(out, "carpool_fake_value 7") {
		t.Fatalf("healthy scrape:\n%s", out)
	}
	f.err = errors.New("connection refused")
	out := scrape(t, reg)
	if !strings.Contains(out, `carpool_exporter_up{exporter="fake"} 0`) || !strings.Contains(out, `carpool_exporter_scrape_errors_total{exporter="fake"} 1`) {
		t.Fatalf("failing scrape:\n%s", out)
	}
	f.err = nil
	if out := scrape(t, reg); !strings.Contains(out, `carpool_exporter_up{exporter="fake"} 1`) || !strings.Contains(out, `carpool_exporter_scrape_errors_total{exporter="fake"} 1`) {
		t.Fatalf("recovered scrape:\n%s", out)
	}
}

func TestHandlerAppendsVictoriaMetricsSets(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(&fakeScraper{}, 0, nil))
	set := vmetrics.NewSet()
	set.NewGauge(`carpool_sync_lag_seconds{source_region="a",target_region="b"}`, func() float64 { return 1.5 })
	out := scrape(t, reg, set)
	if !strings.Contains(out, "carpool_fake_value 7") || !strings.Contains(out, `carpool_sync_lag_seconds{source_region="a",target_region="b"} 1.5`) {
		t.Fatalf("combined output:\n%s", out)
	}
}

type namedScraper struct {
	fakeScraper
	name string
}

func (n *namedScraper) Name() string                        { return n.name }
func (n *namedScraper) Describe(ch chan<- *prometheus.Desc) {}
func (n *namedScraper) Scrape(context.Context, chan<- prometheus.Metric) error {
	return nil
}

func TestSeveralExportersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, n := range []string{"synclag", "rpo"} {
		if err := reg.Register(NewCollector(&namedScraper{name: n}, 0, nil)); err != nil {
			t.Fatalf("registering %s: %v", n, err)
		}
	}
	out := scrape(t, reg)
	for _, n := range []string{"synclag", "rpo"} {
		if !strings.Contains(out, `carpool_exporter_up{exporter="`+n+`"} 1`) {
			t.Errorf("no up for %s:\n%s", n, out)
		}
	}
}

func TestHandlerWithSetsNeverCompresses(t *testing.T) {
	reg := prometheus.NewRegistry()
	set := vmetrics.NewSet()
	set.NewGauge(`carpool_x_seconds`, func() float64 { return 1 })
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	w := httptest.NewRecorder()
	Handler(reg, set).ServeHTTP(w, r)
	if w.Header().Get("Content-Encoding") != "" || !strings.Contains(w.Body.String(), "carpool_x_seconds 1") {
		t.Fatalf("encoding %q, body %q", w.Header().Get("Content-Encoding"), w.Body.String())
	}
}
