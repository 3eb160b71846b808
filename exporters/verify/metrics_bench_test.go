package verify

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
)

// benchTables is a large deployment's table count: 100 tables make 1,100
// series (11 per table) plus the run metrics.
const benchTables = 100

// BenchmarkScrape measures a scrape of the verifier's metrics as built
// (client_golang const metrics at scrape time), against the same series
// kept in a VictoriaMetrics/metrics Set.
func BenchmarkScrape(b *testing.B) {
	var tables []Table
	for i := range benchTables {
		tables = append(tables, Table{Name: fmt.Sprintf("t%03d", i)})
	}
	st := NewStore(nil, nil)
	v, err := New(Config{Source: st, Target: st, Tables: tables})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("client_golang", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(exporters.NewCollector(v, 0, nil))
		h := exporters.Handler(reg)
		req := httptest.NewRequest("GET", "/metrics", nil)
		for b.Loop() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
		}
	})
	b.Run("vmetrics", func(b *testing.B) {
		s := vmetrics.NewSet()
		for _, t := range tables {
			l := fmt.Sprintf(`{table=%q,source_region="source",target_region="target"}`, t.Name)
			for _, n := range []string{"carpool_verify_rows_verified_total", "carpool_verify_chunks_total",
				"carpool_verify_chunks_mismatched_total", "carpool_verify_rows_in_flight_total", "carpool_verify_rows_unsettled_total"} {
				s.NewCounter(n + l)
			}
			for _, k := range Kinds {
				kl := fmt.Sprintf(`{table=%q,source_region="source",target_region="target",kind=%q}`, t.Name, k)
				s.NewCounter("carpool_verify_rows_mismatched_total" + kl)
				s.NewGauge("carpool_verify_mismatches_open"+kl, nil)
			}
		}
		for b.Loop() {
			s.WritePrometheus(io.Discard)
		}
	})
}
