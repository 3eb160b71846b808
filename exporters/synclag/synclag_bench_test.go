package synclag

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// benchRegions is the benchmark size: 100 regions, 9,900 pairs.
const benchRegions = 100

func regionNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("region-%03d", i)
	}
	return out
}

// staticReader returns the same rows on every read, without copying.
type staticReader map[string]time.Time

func (s staticReader) Read(context.Context) (map[string]time.Time, error) { return s, nil }

// benchTargets holds, for every region, a heartbeat row of every region
// (its own, written, and the 99 others, applied).
func benchTargets(names []string) []Target {
	var targets []Target
	for i, dst := range names {
		rows := staticReader{}
		for j, src := range names {
			rows[src] = t0.Add(-time.Duration(i*j%1500) * time.Millisecond)
		}
		var sources []string
		for _, src := range names {
			if src != dst {
				sources = append(sources, src)
			}
		}
		targets = append(targets, Target{Region: dst, Applied: rows, Sources: sources})
	}
	return targets
}

// discard is a ResponseWriter that drops the body and counts its bytes.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// benchScrape serves /metrics b.N times and reports ms per scrape.
func benchScrape(b *testing.B, h http.Handler) {
	b.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	w := &discard{h: http.Header{}}
	h.ServeHTTP(w, req) // warm up, and size the output
	bytes := w.n
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.n = 0
		h.ServeHTTP(w, req)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/scrape")
	b.ReportMetric(float64(bytes), "bytes/scrape")
}

// gaugeScraper is the textbook VictoriaMetrics/metrics design, for
// comparison: one registered Gauge per series, set from a reading at
// scrape time, then Set.WritePrometheus.
type gaugeScraper struct {
	r       *Reader
	set     *vmetrics.Set
	lag     map[[2]string]*vmetrics.Gauge
	applied map[[2]string]*vmetrics.Gauge
	written map[string]*vmetrics.Gauge
}

func newGaugeScraper(r *Reader, names []string) *gaugeScraper {
	g := &gaugeScraper{r: r, set: vmetrics.NewSet(), lag: map[[2]string]*vmetrics.Gauge{},
		applied: map[[2]string]*vmetrics.Gauge{}, written: map[string]*vmetrics.Gauge{}}
	for _, dst := range names {
		g.written[dst] = g.set.NewGauge(fmt.Sprintf(`%s{region=%q}`, catalog.SyncHeartbeatWritten.Name, dst), nil)
		for _, src := range names {
			if src != dst {
				k := [2]string{src, dst}
				g.lag[k] = g.set.NewGauge(fmt.Sprintf(`%s{source_region=%q,target_region=%q}`, catalog.SyncLag.Name, src, dst), nil)
				g.applied[k] = g.set.NewGauge(fmt.Sprintf(`%s{source_region=%q,target_region=%q}`, catalog.SyncHeartbeatApplied.Name, src, dst), nil)
			}
		}
	}
	return g
}

func (g *gaugeScraper) Name() string                     { return Name }
func (g *gaugeScraper) Describe(chan<- *prometheus.Desc) {}
func (g *gaugeScraper) Scrape(ctx context.Context, _ chan<- prometheus.Metric) error {
	snap, err := g.r.read(ctx)
	now := g.r.cfg.Now()
	for _, w := range snap.written {
		g.written[w.region].Set(unixSeconds(w.ts))
	}
	for _, p := range snap.pairs {
		k := [2]string{p.source, p.target}
		g.lag[k].Set(g.r.lag(now, p))
		g.applied[k].Set(unixSeconds(p.applied))
	}
	return err
}

// BenchmarkScrape100Regions is the benchmark: one scrape of the
// sync exporter over 100 regions (9,900 pairs: 19,800 pair series plus
// 100 written stamps, and the exporter's own up/errors/duration), through
// exporters.Handler, the backends read at scrape time.
func BenchmarkScrape100Regions(b *testing.B) {
	names := regionNames(benchRegions)
	clk := newClock()
	for _, tc := range []struct {
		name string
		exp  Exposition
	}{{"client_golang-const-metrics", ExposeClientGolang}, {"VictoriaMetrics-set-writer", ExposeVM}} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := New(Config{Targets: benchTargets(names), Now: clk.Now, Exposition: tc.exp})
			if err != nil {
				b.Fatal(err)
			}
			s := serve(b, r)
			benchScrape(b, exporters.Handler(s.reg, s.sets...))
		})
	}
	b.Run("VictoriaMetrics-registered-gauges", func(b *testing.B) {
		r, err := New(Config{Targets: benchTargets(names), Now: clk.Now, Exposition: ExposeClientGolang})
		if err != nil {
			b.Fatal(err)
		}
		g := newGaugeScraper(r, names)
		reg := prometheus.NewRegistry()
		reg.MustRegister(exporters.NewCollector(g, time.Second, nil))
		benchScrape(b, exporters.Handler(reg, g.set))
	})
	// The whole path over 100 in-process region stores, each holding 100
	// heartbeat rows (JSON documents decoded at every scrape).
	b.Run("VictoriaMetrics-set-writer-over-region-stores", func(b *testing.B) {
		stores := map[string]RegionStore{}
		for _, n := range names {
			st := newStore(b, n, clk.Now)
			for _, src := range names {
				if err := NewStoreBackend(st).Write(ctx, src, clk.Now()); err != nil {
					b.Fatal(err)
				}
			}
			stores[n] = st
		}
		r, err := NewClusterReader(stores, clk.Now)
		if err != nil {
			b.Fatal(err)
		}
		s := serve(b, r)
		benchScrape(b, exporters.Handler(s.reg, s.sets...))
	})
}
