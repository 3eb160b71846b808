//go:build unix

package loadgen_test

import (
	"context"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/loadgen"
)

// noop is a scenario of one empty step.
type noop struct{}

func (noop) Name() string { return "noop" }

func (noop) Run(ctx context.Context, it *loadgen.Iteration) error {
	return it.Step(ctx, "noop", func(context.Context) error { return nil })
}

// BenchmarkExecutorOverhead measures what the executor itself costs per
// iteration — scheduling, the hand-off to a worker, the step's timeout
// context, the histogram and the metrics — with a scenario that does
// nothing, at 100,000 iterations a second: the process CPU time per started
// iteration, and the share dropped (none while the executor keeps up).
func BenchmarkExecutorOverhead(b *testing.B) {
	for _, withMetrics := range []bool{false, true} {
		name := "plain"
		if withMetrics {
			name = "with-metrics"
		}
		b.Run(name, func(b *testing.B) {
			cfg := loadgen.Config{Schedule: loadgen.Constant(100_000, time.Duration(b.N)*10*time.Microsecond+10*time.Microsecond),
				Scenarios: []loadgen.Weighted{{Scenario: noop{}, Weight: 1}}, Workers: 64, MaxWorkers: 1024}
			if withMetrics {
				cfg.Metrics = loadgen.NewMetrics()
			}
			ex, err := loadgen.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			if err := ex.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			s := ex.Summary()
			b.ReportMetric(float64(s.Dropped)/float64(max(s.Scheduled, 1)), "dropped/op")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(s.Iterations, 1)), "cpu-ns/iteration")
		})
	}
}
