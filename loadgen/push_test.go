package loadgen_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/loadgen"
)

// TestMetricsArriveInVictoriaMetrics pushes a run's client-side metrics to a
// real VictoriaMetrics (/api/v1/import/prometheus) and reads them back with
// PromQL: the counts equal the run's summary, and the latency histogram's
// buckets are there.
func TestMetricsArriveInVictoriaMetrics(t *testing.T) {
	vm := realserver.StartVictoriaMetrics(t)
	srv := newStallServer(t)
	m := loadgen.NewMetrics()
	const run = "push-test"
	ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(100, time.Second), Scenarios: httpScenario(t, srv.URL, 50),
		Workers: 10, Metrics: m, RunID: run})
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadgen.NewPusher(m, loadgen.PushConfig{URL: vm.URL + "/api/v1/import/prometheus", Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pushed := make(chan error, 1)
	go func() { pushed <- p.Run(ctx) }()
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	s := ex.Summary()
	want := map[string]float64{
		fmt.Sprintf(`carpool_loadgen_iterations_total{run=%q,scenario="http"}`, run):                          float64(s.Iterations),
		fmt.Sprintf(`carpool_loadgen_scheduled_iterations_total{run=%q}`, run):                                100,
		fmt.Sprintf(`sum(carpool_loadgen_requests_total{run=%q,outcome="ok"})`, run):                          float64(s.Requests),
		fmt.Sprintf(`carpool_loadgen_request_duration_seconds_count{run=%q,operation="get"}`, run):            float64(s.Requests),
		fmt.Sprintf(`carpool_loadgen_request_duration_seconds_bucket{run=%q,operation="get",le="+Inf"}`, run): float64(s.Requests),
		fmt.Sprintf(`carpool_loadgen_dropped_iterations_total{run=%q}`, run):                                  0,
		fmt.Sprintf(`count(carpool_loadgen_request_duration_seconds_bucket{run=%q,operation="get"})`, run):    14, // 13 bounds + Inf
		fmt.Sprintf(`carpool_loadgen_workers{run=%q} >= 10`, run):                                             10,
	}
	for q, v := range want {
		realserver.WaitFor(t, 15*time.Second, q, func() (bool, error) {
			vm.Flush(t)
			got := vm.Query(t, q)
			if len(got) != 1 {
				return false, fmt.Errorf("%d samples", len(got))
			}
			if q[len(q)-5:] == ">= 10" {
				return got[0].Value >= v, fmt.Errorf("value %v", got[0].Value)
			}
			return got[0].Value == v, fmt.Errorf("value %v, want %v", got[0].Value, v)
		})
	}
}
