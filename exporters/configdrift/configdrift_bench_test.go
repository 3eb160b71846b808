package configdrift

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
)

// bigConfig is a ~20 KB JSON configuration: 200 services with a few
// settings each.
func bigConfig() string {
	var b strings.Builder
	b.WriteString(`{"generatedAt":"2026-11-25T10:00:00Z","services":{`)
	for i := range 200 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"svc-%d":{"timeout":"300ms","retries":3,"weights":[1,2,3],"limits":{"qps":%d,"burst":1.5}}`, i, 100+i)
	}
	b.WriteString(`}}`)
	return b.String()
}

// BenchmarkNormalize is the cost of normalizing and hashing one ~20 KB
// configuration.
func BenchmarkNormalize(b *testing.B) {
	cfg := []byte(bigConfig())
	ign := []Path{{"generatedAt"}}
	b.SetBytes(int64(len(cfg)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := Normalize(cfg, ign)
		if err != nil {
			b.Fatal(err)
		}
		_ = Hash(n)
	}
}

// BenchmarkScrape is one scrape of 10 regions holding the ~20 KB
// configuration, through the shared frame (in-process fetchers).
func BenchmarkScrape(b *testing.B) {
	cfg := []byte(bigConfig())
	set := Set{Source: "services", Ignore: []Path{{"generatedAt"}}}
	for i := range 10 {
		set.Regions = append(set.Regions, Region{Name: fmt.Sprintf("r%d", i), Fetcher: FetcherFunc(func(context.Context) ([]byte, error) { return cfg, nil })})
	}
	s, _ := New(Config{Sets: []Set{set}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(s, 5*time.Second, nil))
	h := exporters.Handler(reg)
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}

// BenchmarkRender compares exposing the metrics of 100 regions (500
// series) with client_golang const metrics and a VictoriaMetrics/metrics
// Set, without the fetches.
func BenchmarkRender(b *testing.B) {
	const regions = 100
	hash := strings.Repeat("ab", 32)
	b.Run("client_golang", func(b *testing.B) {
		set := Set{Source: "services"}
		for i := range regions {
			set.Regions = append(set.Regions, Region{Name: fmt.Sprintf("r%d", i), Fetcher: FetcherFunc(nil)})
		}
		s, _ := New(Config{Sets: []Set{set}})
		res := make([]result, regions)
		for i := range res {
			res[i] = result{hash: hash}
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) { s.report(set, res, ch) }))
		h := exporters.Handler(reg)
		req := httptest.NewRequest("GET", "/metrics", nil)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
		}
	})
	b.Run("vmetrics", func(b *testing.B) {
		set := vmetrics.NewSet()
		type names struct{ hash, drifted, ok, errs string }
		ns := make([]names, regions)
		for i := range ns {
			l := fmt.Sprintf(`region="r%d",source="services"`, i)
			ns[i] = names{`carpool_config_hash_info{hash="` + hash[:16] + `",` + l + `}`, "carpool_config_drifted{" + l + "}",
				"carpool_config_fetch_success{" + l + "}", "carpool_config_fetch_errors_total{" + l + "}"}
		}
		b.ReportAllocs()
		for b.Loop() {
			for _, n := range ns {
				set.GetOrCreateGauge(n.hash, nil).Set(1)
				set.GetOrCreateGauge(n.drifted, nil).Set(0)
				set.GetOrCreateGauge(n.ok, nil).Set(1)
				set.GetOrCreateCounter(n.errs).Set(0)
			}
			set.GetOrCreateGauge(`carpool_config_consistent{source="services"}`, nil).Set(1)
			set.WritePrometheus(io.Discard)
		}
	})
}

type collectorFunc func(ch chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
