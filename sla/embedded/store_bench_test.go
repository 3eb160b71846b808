package embedded

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/carpoolsla/carpoolsla/alerts"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/source/sourcetest"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// The size the benchmarks measure: the 10 regions × 20 services ×
// 3 SLOs.
const (
	benchRegions  = 10
	benchServices = 20
	benchStep     = 5 * time.Second // the spec's default scrape interval
	benchHistory  = 30 * time.Minute
)

// benchSpec is the shipped spec with 10 regions and 20 services of 3 SLOs
// each (availability, latency at 300 ms, latency at 100 ms).
func benchSpec(b *testing.B) *spec.Spec {
	b.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		b.Fatal(err)
	}
	s.Regions = nil
	for r := range benchRegions {
		s.Regions = append(s.Regions, spec.Region{Name: fmt.Sprintf("r%02d", r), City: fmt.Sprintf("c%02d", r)})
	}
	s.DR.Pairs = nil
	s.Services = nil
	window := spec.Duration(30 * 24 * time.Hour)
	for i := range benchServices {
		s.Services = append(s.Services, spec.Service{
			Name: fmt.Sprintf("svc%02d", i), Weight: 1.0 / benchServices, Operations: []string{"op"},
			SLOs: []spec.SLO{
				{Name: "availability", Kind: spec.KindAvailability, Objective: 99.9, Window: window, Key: i == 0},
				{Name: "latency", Kind: spec.KindLatency, Objective: 99, Threshold: spec.Duration(300 * time.Millisecond), Window: window},
				{Name: "latency_fast", Kind: spec.KindLatency, Objective: 95, Threshold: spec.Duration(100 * time.Millisecond), Window: window},
			},
		})
	}
	if err := s.Validate(); err != nil {
		b.Fatalf("the benchmark's spec: %v", err)
	}
	return s
}

// benchRules writes the rules the alerts package generates for s into dir.
func benchRules(b *testing.B, s *spec.Spec, dir string) (string, int) {
	b.Helper()
	files, err := alerts.Files(s)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(path, files[alerts.RulesFile], 0o644); err != nil {
		b.Fatal(err)
	}
	return path, strings.Count(string(files[alerts.RulesFile]), "\n      - ")
}

// synthSeries are the series a carpool deployment of the bench size
// exposes: per region and service a request-duration histogram for ok and
// for error outcomes (13 buckets, +Inf, count, sum), and per region pair
// the sync lag and probe, per region the stream lag. inc is each series'
// growth per scrape (0 for gauges).
type synthSeries struct {
	lset  labels.Labels
	text  string // the exposition line's name{labels} part
	inc   float64
	gauge float64
}

func synthetic() []synthSeries {
	var out []synthSeries
	add := func(name string, inc, gauge float64, nameValues ...string) {
		lset := labels.FromStrings(append([]string{model.MetricNameLabel, name}, nameValues...)...)
		var parts []string
		for i := 0; i < len(nameValues); i += 2 {
			parts = append(parts, nameValues[i]+`="`+nameValues[i+1]+`"`)
		}
		out = append(out, synthSeries{lset: lset, text: name + "{" + strings.Join(parts, ",") + "}", inc: inc, gauge: gauge})
	}
	h := catalog.RequestDuration.Name
	for r := range benchRegions {
		region := fmt.Sprintf("r%02d", r)
		for s := range benchServices {
			svc := fmt.Sprintf("svc%02d", s)
			for _, o := range []struct {
				outcome, code string
				perStep       float64
			}{{catalog.OutcomeOK, "200", 100}, {catalog.OutcomeError, "500", 1}} {
				id := []string{"region", region, "service", svc, "operation", "op", "code", o.code, "outcome", o.outcome}
				for i, le := range catalog.RequestDurationBuckets {
					share := float64(i+1) / float64(len(catalog.RequestDurationBuckets))
					add(h+"_bucket", o.perStep*share, 0, append([]string{"le", catalog.FormatLe(le)}, id...)...)
				}
				add(h+"_bucket", o.perStep, 0, append([]string{"le", "+Inf"}, id...)...)
				add(h+"_count", o.perStep, 0, id...)
				add(h+"_sum", o.perStep*0.08, 0, id...)
			}
		}
		for s := range benchRegions {
			if s == r {
				continue
			}
			src := fmt.Sprintf("r%02d", s)
			add(catalog.SyncLag.Name, 0, 0.5+float64(s)/10, "source_region", src, "target_region", region)
			add(catalog.ProbeHealthy.Name, 0, 1, "region", src, "target", region)
		}
		add(catalog.StreamLagMessages.Name, 0, 20, "region", region, "stream", "rides", "group", "dispatch")
	}
	add(catalog.ConfigConsistent.Name, 0, 1, "source", "gateway")
	return out
}

// value is a series' value at scrape k.
func (s synthSeries) value(k int) float64 {
	if s.inc == 0 {
		return s.gauge
	}
	return 1e6 + s.inc*float64(k)
}

// prefill appends history at benchStep up to end.
func prefill(b *testing.B, st *Store, series []synthSeries, end time.Time, history time.Duration) int {
	b.Helper()
	steps := int(history / benchStep)
	n := 0
	for k := 0; k <= steps; k++ {
		ts := end.Add(-time.Duration(steps-k) * benchStep).UnixMilli()
		app := st.AppenderV2(context.Background())
		for _, s := range series {
			if _, err := app.Append(0, s.lset, 0, ts, s.value(k), nil, nil, storage.AOptions{}); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// BenchmarkEmbeddedAtScale measures, at 10 regions × 20 services × 3 SLOs
// with 30 minutes of history at 5 s: one evaluation of every generated rule
// group (what the store does every evaluation interval), single typical
// engine queries, and the whole set of engine queries of one tick.
func BenchmarkEmbeddedAtScale(b *testing.B) {
	sp := benchSpec(b)
	dir := b.TempDir()
	rulesPath, nRules := benchRules(b, sp, dir)
	st, err := Open(Config{Dir: filepath.Join(dir, "data"), RuleFiles: []string{rulesPath}, ScrapeInterval: benchStep})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	series := synthetic()
	end := time.Now().Truncate(benchStep)
	began := time.Now()
	samples := prefill(b, st, series, end, benchHistory)
	b.Logf("%d series, %d samples of history appended in %v (%.0f samples/s); %d rules",
		len(series), samples, time.Since(began).Round(time.Millisecond), float64(samples)/time.Since(began).Seconds(), nRules)

	groups, errs := st.ruler.LoadGroups(benchStep, labels.EmptyLabels(), "", nil, false, rulesPath)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	ctx := context.Background()
	evalAll := func(ts time.Time) {
		for _, g := range groups {
			g.Eval(ctx, ts)
		}
	}
	// The long group's tier (5-minute event rates, recorded every minute)
	// gets its history too, as a store running for benchHistory has it:
	// the long windows sum it.
	for _, g := range groups {
		if g.Interval() <= benchStep {
			continue
		}
		for ts := end.Add(-benchHistory + 5*time.Minute); ts.Before(end); ts = ts.Add(g.Interval()) {
			g.Eval(ctx, ts)
		}
	}
	evalAll(end) // recorded series exist for the queries below
	count := func(expr string) int {
		vec, err := st.Query(ctx, "count("+expr+")", end)
		if err != nil || len(vec) != 1 {
			b.Fatalf("count(%s): %v %v", expr, vec, err)
		}
		return int(vec[0].Value)
	}
	raw := count(`{__name__=~"carpool_request_duration_seconds_(count|bucket)"}`)
	tier := count(`{__name__=~"carpool:sli_(bad_)?events:rate5m"}`)
	b.Logf("windows over 1h read the tier: %d series, a sample a minute, instead of up to %d raw request series, a sample every %v: %.0f× fewer samples per minute of window",
		tier, raw, benchStep, float64(raw)*float64(time.Minute/benchStep)/float64(max(tier, 1)))
	for _, g := range groups {
		for _, r := range g.Rules() {
			if err := r.LastError(); err != nil {
				b.Fatalf("rule %s: %v", r.Name(), err)
			}
		}
	}

	// The rules' long windows (30m … 30d) read every sample of their
	// window, raw up to an hour and the recorded tier beyond, so their cost
	// grows with the history: evaluate as at 10 minutes and at 30 minutes
	// into it.
	for _, h := range []time.Duration{10 * time.Minute, benchHistory} {
		b.Run(fmt.Sprintf("evaluate-all-rule-groups/history=%v", h), func(b *testing.B) {
			at := end.Add(h - benchHistory)
			b.ReportAllocs()
			for b.Loop() {
				evalAll(at)
			}
			b.ReportMetric(float64(nRules), "rules")
		})
	}
	// Per group: the long-window group runs every minute, so a 5 s
	// interval pays the short group each time and 1/12 of the long one.
	for _, g := range groups {
		b.Run(fmt.Sprintf("evaluate-group/%s/history=%v", g.Name(), benchHistory), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g.Eval(ctx, end)
			}
			b.ReportMetric(float64(len(g.Rules())), "rules")
			b.ReportMetric(g.Interval().Seconds(), "interval_s")
		})
	}
	for _, q := range []sourcetest.Query{
		{Name: "attainment", Expr: catalog.SLOAttainment.Name},
		{Name: "p95-from-buckets", Expr: `histogram_quantile(0.95, sum by (region, le) (rate(carpool_request_duration_seconds_bucket{service!="gateway"}[1m])))`},
		{Name: "sync-lag", Expr: `max by (target_region) (carpool_sync_lag_seconds)`},
	} {
		b.Run("query/"+q.Name, func(b *testing.B) {
			vec, err := st.Query(ctx, q.Expr, end)
			if err != nil || len(vec) == 0 {
				b.Fatalf("%s: %d samples, %v", q.Expr, len(vec), err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.Query(ctx, q.Expr, end); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(vec)), "samples")
		})
	}
	b.Run("engine-queries-of-one-tick", func(b *testing.B) {
		qs := sourcetest.EngineQueries(sp)
		for b.Loop() {
			for _, q := range qs {
				if _, err := st.Query(ctx, q.Expr, end); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(len(qs)), "queries")
	})
}

// benchTarget serves the synthetic series in the text format, every
// counter a step further on each scrape, and counts the time it spends
// rendering.
type benchTarget struct {
	series  []synthSeries
	scrapes atomic.Int64
	render  atomic.Int64 // ns
	mu      sync.Mutex
	buf     []byte
}

func (t *benchTarget) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	began := time.Now()
	t.mu.Lock()
	k := int(t.scrapes.Add(1))
	b := t.buf[:0]
	for _, s := range t.series {
		b = append(b, s.text...)
		b = append(b, ' ')
		b = strconv.AppendFloat(b, s.value(k), 'g', -1, 64)
		b = append(b, '\n')
	}
	t.buf = b
	t.render.Add(int64(time.Since(began)))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write(b)
	t.mu.Unlock()
}

// BenchmarkScrape measures one scrape of a target exposing the series of
// 10 regions × 20 services (6,600 series) by the store's real scrape loop:
// fetch, parse, append and commit, as Prometheus' own
// prometheus_target_scrape_duration_seconds histogram records it. ns/op is
// that mean duration (the target's own rendering is reported apart as
// target-ns/op); an iteration waits for one scrape at a 250 ms interval.
func BenchmarkScrape(b *testing.B) {
	target := &benchTarget{series: synthetic()}
	srv := httptest.NewServer(target)
	defer srv.Close()
	st, err := Open(Config{
		Dir: b.TempDir(), ScrapeInterval: 250 * time.Millisecond, ExtraScrapeMetrics: true,
		Targets: []Target{{Job: "bench", URLs: []string{srv.URL + "/metrics"}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		st.Close()
	}()
	scrapeSum := func() (float64, uint64) {
		mfs, err := st.Gatherer().Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "prometheus_target_scrape_duration_seconds" {
				h := mf.GetMetric()[0].GetHistogram()
				return h.GetSampleSum(), h.GetSampleCount()
			}
		}
		return 0, 0
	}
	// Wait for two scrapes: the first creates the series, later ones are
	// the steady state.
	waitScrapes := func(n uint64) {
		deadline := time.Now().Add(time.Duration(n)*time.Second + 30*time.Second)
		for {
			if _, c := scrapeSum(); c >= n {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("fewer than %d scrapes before the deadline", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitScrapes(2)
	sum0, count0 := scrapeSum()
	render0, scrapes0 := target.render.Load(), target.scrapes.Load()
	b.ResetTimer()
	waitScrapes(count0 + uint64(b.N))
	b.StopTimer()
	sum1, count1 := scrapeSum()
	n := float64(count1 - count0)
	b.ReportMetric((sum1-sum0)/n*1e9, "ns/op")
	b.ReportMetric(float64(target.render.Load()-render0)/float64(target.scrapes.Load()-scrapes0), "target-ns/op")
	b.ReportMetric(float64(len(target.series)), "series")
}
