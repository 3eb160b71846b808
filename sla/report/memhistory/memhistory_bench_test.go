package memhistory_test

import (
	"context"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/report/memhistory"
	"github.com/carpoolsla/carpoolsla/sla/rollup"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// monthOfMinutes is the volume of BenchmarkReportFromClickHouse in
// sla/report: the shipped spec's 3 regions × 8 SLOs over the 43,200 minutes
// of a 30-day month from 2026-10-01 (1,036,800 rows), one bad event in 7
// rows, written a minute at a time as the rollup writes them.
func monthOfMinutes(b *testing.B, s *spec.Spec, st *memhistory.Store) {
	b.Helper()
	var batch []rollup.Minute
	n := 0
	for m := range 43_200 {
		minute := oct1.Add(time.Duration(m) * time.Minute)
		batch = batch[:0]
		for _, region := range s.RegionNames() {
			for _, svc := range s.Services {
				for _, slo := range svc.SLOs {
					good := uint64(1000)
					if n%7 == 0 {
						good--
					}
					n++
					batch = append(batch, minuteRow(minute, svc.Name, slo.Name, region, good, 1000))
				}
			}
		}
		if err := st.WriteMinutes(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkReportFromMemory answers the reports of
// BenchmarkReportFromClickHouse (1.5–4 s each there) from memhistory.
func BenchmarkReportFromMemory(b *testing.B) {
	s, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	st, err := memhistory.New(memhistory.Config{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	before := heap()
	start := time.Now()
	monthOfMinutes(b, s, st)
	took := time.Since(start)
	rows := st.Stats().Minutes
	used := heap() - before
	b.Logf("loaded %d minute rows in %s (%.0f rows/s); heap %.1f MB, %.0f bytes a row",
		rows, took.Round(time.Millisecond), float64(rows)/took.Seconds(), float64(used)/1e6, float64(used)/float64(rows))
	h, err := report.New(report.Config{Spec: s, History: st, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, target string }{
		{"composite month", "/api/v1/sla?month=2026-10"},
		{"region month", "/api/v1/sla?scope=region&region=sh-a&month=2026-10"},
		{"service month CSV", "/api/v1/sla?scope=service&service=order&month=2026-10&format=csv"},
		{"timeseries 24h hourly", "/api/v1/sla/timeseries?hours=24"},
		{"timeseries 31d 6-hourly", "/api/v1/sla/timeseries?hours=744&step=360"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", c.target, nil)
				req.RemoteAddr = "127.0.0.1:1"
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkWriteMinutes writes one minute of the shipped spec (24 rows)
// per op into a store that holds a day and more.
func BenchmarkWriteMinutes(b *testing.B) {
	s, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	st, err := memhistory.New(memhistory.Config{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	var batch []rollup.Minute
	m := 0
	for b.Loop() {
		minute := oct1.AddDate(0, 1, 0).Add(time.Duration(m%43_200) * time.Minute)
		m++
		batch = batch[:0]
		for _, region := range s.RegionNames() {
			for _, svc := range s.Services {
				for _, slo := range svc.SLOs {
					batch = append(batch, minuteRow(minute, svc.Name, slo.Name, region, 999, 1000))
				}
			}
		}
		if err := st.WriteMinutes(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "rows/s")
}
