package rpo

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
)

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkScrape is one scrape of /metrics: the 6 pairs of 3 region
// stores (each source with an unapplied backlog), and 9,900 pairs (100
// regions) of constant backends, the size of the sync-lag benchmark.
func BenchmarkScrape(b *testing.B) {
	run := func(b *testing.B, pairs []Pair, now func() time.Time) {
		s, err := New(Config{Pairs: pairs, Now: now})
		if err != nil {
			b.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(exporters.NewCollector(s, 0, nil))
		h := exporters.Handler(reg)
		req := httptest.NewRequest("GET", "/metrics", nil)
		w := &discard{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, req)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/scrape")
	}
	b.Run("3-region-stores", func(b *testing.B) {
		clk := &fakeClock{t: t0}
		stores := map[string]interface {
			Outbox
			Applied
		}{}
		for _, n := range []string{"a", "b", "c"} {
			st := newStore(b, n, clk.Now)
			for i := range 1000 {
				if _, err := st.Put(ctx, "rides", fmt.Sprint(i), []byte(`{}`)); err != nil {
					b.Fatal(err)
				}
			}
			stores[n] = st
		}
		run(b, ClusterPairs(stores), clk.Now)
	})
	b.Run("100-regions-constant-backends", func(b *testing.B) {
		clk := &fakeClock{t: t0}
		var pairs []Pair
		for i := range 100 {
			for j := range 100 {
				if i != j {
					pairs = append(pairs, Pair{SourceRegion: fmt.Sprintf("region-%03d", i), TargetRegion: fmt.Sprintf("region-%03d", j),
						Backend: &fakeBackend{commit: t0.Add(-time.Duration(i*j) * time.Millisecond), behind: true}})
				}
			}
		}
		run(b, pairs, clk.Now)
	})
}
