package rto

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
)

// BenchmarkRender compares exposing 100 probed regions and 50 drill
// scenarios (about 1,000 series) with client_golang const metrics through
// the shared frame and with a VictoriaMetrics/metrics Set.
func BenchmarkRender(b *testing.B) {
	const regions, scenarios = 100, 50
	b.Run("client_golang", func(b *testing.B) {
		var apis []RegionAPI
		for i := range regions {
			apis = append(apis, RegionAPI{Name: fmt.Sprintf("r%d", i), BaseURL: "http://127.0.0.1:1"})
		}
		s, _ := NewSynthetic(SyntheticConfig{Regions: apis})
		for _, st := range s.states {
			st.probed, st.ok, st.duration, st.runs = true, true, 20*time.Millisecond, 1000
		}
		s.running.Store(true)
		d := &Drills{}
		for i := range scenarios {
			_ = d.Record(fmt.Sprintf("s%d", i), map[string]time.Duration{PhaseDetect: 1, PhaseDecide: 2, PhaseShift: 3, PhaseTotal: 6}, time.Second)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(exporters.NewCollector(Scraper{Synthetic: s, Drills: d}, 0, nil))
		h := exporters.Handler(reg)
		req := httptest.NewRequest("GET", "/metrics", nil)
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	})
	b.Run("vmetrics", func(b *testing.B) {
		set := vmetrics.NewSet()
		var gauges []*vmetrics.Gauge
		for i := range regions {
			l := fmt.Sprintf(`{region="r%d"}`, i)
			gauges = append(gauges, set.NewGauge("carpool_synthetic_probe_success"+l, nil), set.NewGauge("carpool_synthetic_probe_duration_seconds"+l, nil))
			set.NewCounter("carpool_synthetic_probe_runs_total" + l)
			set.NewCounter(fmt.Sprintf(`carpool_synthetic_probe_failures_total{region="r%d",step="create"}`, i))
			set.NewCounter(fmt.Sprintf(`carpool_synthetic_probe_failures_total{region="r%d",step="cancel"}`, i))
		}
		for i := range scenarios {
			for _, p := range []string{PhaseDetect, PhaseDecide, PhaseShift, PhaseTotal} {
				gauges = append(gauges, set.NewGauge(fmt.Sprintf(`carpool_drill_rto_seconds{phase=%q,scenario="s%d"}`, p, i), nil))
			}
			gauges = append(gauges, set.NewGauge(fmt.Sprintf(`carpool_drill_rpo_seconds{scenario="s%d"}`, i), nil),
				set.NewGauge(fmt.Sprintf(`carpool_drill_timestamp_seconds{scenario="s%d"}`, i), nil))
		}
		b.ReportAllocs()
		for b.Loop() {
			for _, g := range gauges {
				g.Set(1)
			}
			set.WritePrometheus(io.Discard)
		}
	})
}

// BenchmarkSyntheticProbe is one create-and-cancel against an in-process
// httptest ride API (the probe's own cost plus loopback HTTP).
func BenchmarkSyntheticProbe(b *testing.B) {
	api := newFakeAPIB(b)
	s, _ := NewSynthetic(SyntheticConfig{Regions: []RegionAPI{{Name: "sh-a", BaseURL: api.URL}}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.probe(ctx, s.cfg.Regions[0]); err != nil {
			b.Fatal(err)
		}
	}
}
