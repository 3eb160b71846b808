package drill

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/gateway"
	"github.com/carpoolsla/carpoolsla/services/ids"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// benchOrders is n acknowledged rides over 3 nodes at 1000/s, each taking
// 5 ms, half of them overlapping their neighbour.
func benchOrders(b *testing.B, n int) []Order {
	b.Helper()
	out := make([]Order, n)
	for i := range out {
		start := t0.Add(time.Duration(i) * time.Millisecond)
		id, err := ids.Make(start.Add(time.Millisecond), i%3, i%4096)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = order(fmt.Sprint(i), all[i%3], start, start.Add(5*time.Millisecond), true, all[(i+1)%3], int64(id))
	}
	return out
}

// BenchmarkCheckIDs: the id check over a drill's acknowledged rides.
func BenchmarkCheckIDs(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		orders := benchOrders(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if r := checkIDs(orders); r.Checked != n {
					b.Fatal(r)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/ride")
		})
	}
}

// BenchmarkLoadStats: the load summary over a drill's rides.
func BenchmarkLoadStats(b *testing.B) {
	orders := benchOrders(b, 100000)
	for b.Loop() {
		_ = loadStats(orders, t0, true)
	}
}

// BenchmarkPairValues: reading the sync lag out of a region entry's
// /metrics, which also holds every other metric of the region (here 3000
// other lines).
func BenchmarkPairValues(b *testing.B) {
	var sb strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&sb, "carpool_request_duration_seconds_bucket{region=\"sh-a\",service=\"order\",operation=\"op%d\",le=\"0.1\"} %d\n", i, i)
	}
	for _, s := range all {
		for _, t := range all {
			if s != t {
				fmt.Fprintf(&sb, "carpool_sync_lag_seconds{source_region=%q,target_region=%q} 0.25\n", s, t)
			}
		}
	}
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if m := pairValues(body, "carpool_sync_lag_seconds"); len(m) != 6 {
			b.Fatal(m)
		}
	}
}

// BenchmarkMarks: the phase analysis over a drill's control samples (a
// minute at 10 polls a second, three gateways).
func BenchmarkMarks(b *testing.B) {
	s := shippedSpec(b)
	r, err := New(Config{Spec: s, Target: unreachable(), Scenario: spec.ScenarioRegionDown, Region: "sh-a"})
	if err != nil {
		b.Fatal(err)
	}
	p := r.plan
	ok := view(nil)
	out := healthy
	out.ProbeHealthy = false
	down := view(map[string]gateway.RegionStatus{"sh-a": out})
	var control []controlSample
	for i := range 600 {
		st := ok
		if i >= 300 {
			st = down
		}
		control = append(control, sample(ms(i*100-30000), map[string]gateway.Status{"sh-a": st, "sh-b": st, "bj-a": st}, nil))
	}
	for b.Loop() {
		if !detectMark(p, control, nil, t0).set || !decideMark(p, control, t0).set || !shiftMark(p, control, t0, all).set {
			b.Fatal("no marks")
		}
	}
}
