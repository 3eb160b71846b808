package enginetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/embedded"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/engine/signals"
	"github.com/carpoolsla/carpoolsla/sla/source/sourcetest"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Size of the benchmark's spec: the 10 regions × 20 services × 3 SLOs.
const (
	benchRegions  = 10
	benchServices = 20
)

// bigSpec is deploy/sla.yaml with 10 regions and 20 services of 3 SLOs
// each (availability, latency at 300 ms and at 800 ms).
func bigSpec(tb testing.TB) *spec.Spec {
	tb.Helper()
	s, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	s.Regions = nil
	for i := range benchRegions {
		s.Regions = append(s.Regions, spec.Region{Name: fmt.Sprintf("r%02d", i), City: fmt.Sprintf("city%d", i/2)})
	}
	s.DR.Pairs = nil
	window := spec.Duration(spec.DefaultWindow)
	s.Services = nil
	for i := range benchServices {
		s.Services = append(s.Services, spec.Service{
			Name: fmt.Sprintf("svc%02d", i), Weight: 1.0 / benchServices, Operations: []string{"op"},
			SLOs: []spec.SLO{
				{Name: "availability", Kind: spec.KindAvailability, Objective: 99.9, Window: window, Key: i == 0},
				{Name: "latency", Kind: spec.KindLatency, Objective: 99, Threshold: spec.Duration(300 * time.Millisecond), Window: window},
				{Name: "latency_slow", Kind: spec.KindLatency, Objective: 99.9, Threshold: spec.Duration(800 * time.Millisecond), Window: window},
			},
		})
	}
	if err := s.Validate(); err != nil {
		tb.Fatalf("the benchmark spec is invalid: %v", err)
	}
	return s
}

// benchStore opens an embedded store holding the Carpool scenario of s
// (10 minutes every 15 s) and returns it with the scenario's end.
func benchStore(b *testing.B, s *spec.Spec) (*embedded.Store, time.Time, int) {
	b.Helper()
	st, err := embedded.Open(embedded.ConfigFromSpec(s, b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	end := time.Now().Truncate(time.Minute)
	sc := sourcetest.Carpool(s, end)
	if err := sc.Append(context.Background(), st); err != nil {
		b.Fatal(err)
	}
	return st, sc.End(), len(sc.Series)
}

// percentiles reports the p50 and p99 of the per-iteration durations.
func percentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkTick is one full engine tick for 10 regions × 20 services × 3
// SLOs: every signal query through the embedded store's PromQL engine,
// then the core's step (scores, breakers, weights, metrics, events). The
// goal is under 100 ms per tick.
func BenchmarkTick(b *testing.B) {
	s := bigSpec(b)
	st, end, series := benchStore(b, s)
	reader, err := signals.New(signals.Config{Spec: s, Querier: st, QueryTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	now := end.Add(time.Second)
	eng, err := engine.New(engine.Config{Spec: s, Reader: reader, Now: func() time.Time { return now },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Sink: engine.NewLogSink(slog.New(slog.DiscardHandler))})
	if err != nil {
		b.Fatal(err)
	}
	d, err := eng.Tick(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if len(d.Regions) != benchRegions || !d.Regions[0].LatencyP99.Known() || len(d.Regions[0].SLOs) != 3*benchServices || !d.Regions[0].SLOs[0].Attainment.Known() {
		b.Fatalf("the tick did not read the scenario: %d regions, first %+v", len(d.Regions), d.Regions[0])
	}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := eng.Tick(context.Background()); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	percentiles(b, ds)
	b.ReportMetric(float64(series), "series")
}

// BenchmarkRead is the read half of the tick alone: every query family
// through the embedded store, mapped onto the spec's regions and SLOs.
func BenchmarkRead(b *testing.B) {
	s := bigSpec(b)
	st, end, _ := benchStore(b, s)
	reader, err := signals.New(signals.Config{Spec: s, Querier: st, QueryTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	at := end.Add(time.Second)
	ds := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if _, err := reader.Read(context.Background(), at); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.StopTimer()
	percentiles(b, ds)
}
