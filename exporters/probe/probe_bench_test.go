package probe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
)

const benchTargets = 100

// BenchmarkRender compares exposing 100 targets' state (300 series) with
// client_golang const metrics through the shared frame and with a
// VictoriaMetrics/metrics Set updated by the probe loop.
func BenchmarkRender(b *testing.B) {
	targets := make([]Target, benchTargets)
	for i := range targets {
		targets[i] = Target{fmt.Sprintf("t%d", i), "http://127.0.0.1:1/healthz"}
	}
	b.Run("client_golang", func(b *testing.B) {
		p, _ := New(Config{Region: "sh-a", Targets: targets})
		for i := range p.targets {
			p.targets[i].probed, p.targets[i].duration = true, time.Millisecond
		}
		p.running = true
		reg := prometheus.NewRegistry()
		reg.MustRegister(exporters.NewCollector(p, 0, nil))
		h := exporters.Handler(reg)
		req := httptest.NewRequest("GET", "/metrics", nil)
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	})
	b.Run("vmetrics", func(b *testing.B) {
		set := vmetrics.NewSet()
		type gauges struct{ healthy, duration *vmetrics.Gauge }
		gs := make([]gauges, benchTargets)
		for i, t := range targets {
			l := fmt.Sprintf(`{region="sh-a",target=%q}`, t.Name)
			gs[i] = gauges{set.NewGauge("carpool_probe_healthy"+l, nil), set.NewGauge("carpool_probe_duration_seconds"+l, nil)}
			set.NewCounter("carpool_probe_failures_total" + l)
		}
		b.ReportAllocs()
		for b.Loop() {
			for _, g := range gs {
				g.healthy.Set(1)
				g.duration.Set(0.001)
			}
			set.WritePrometheus(io.Discard)
		}
	})
}

// BenchmarkRound is one probe round of 10 targets on a loopback server
// (keep-alive connections).
func BenchmarkRound(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	var targets []Target
	for i := range 10 {
		targets = append(targets, Target{fmt.Sprintf("t%d", i), srv.URL + "/healthz"})
	}
	p, _ := New(Config{Region: "sh-a", Targets: targets})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p.round(ctx)
	}
}
