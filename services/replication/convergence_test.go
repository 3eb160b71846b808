package replication

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"pgregory.net/rapid"

	"github.com/carpoolsla/carpoolsla/services/hlc"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// TestConvergence is the replication property: three regions write
// conflicting values to the same few keys while replicators between every
// pair step in a random order, regions stall and resume, replicators are
// restarted from their stored offsets, time moves, and one region's clock
// is skewed (within the HLC maximum offset). Once every stall is cleared
// and every replicator drained:
//   - every region holds the same state (same value, version, tombstone);
//   - that state is, per key, the write with the greatest HLC version
//     (last-writer-wins, the region name breaking ties);
//   - every pair applied each source event exactly once (the applied
//     counter equals the source's high-water mark);
//   - no timestamp was refused (the skew stays within the maximum offset).
func TestConvergence(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		tt := newTrueTime()
		reg := prometheus.NewRegistry()
		metrics, err := NewMetrics(reg)
		if err != nil {
			rt.Fatal(err)
		}
		names := []string{"a", "b", "c"}
		regions := map[string]*region{}
		for _, n := range names {
			regions[n] = newRegion(rt, n, tt, reg)
		}
		skewed := rapid.SampledFrom(names).Draw(rt, "skewed region")
		skew := time.Duration(rapid.Int64Range(-450, 450).Draw(rt, "skew ms")) * time.Millisecond
		regions[skewed].skew(rt, skew)

		offsets := NewMemOffsets()
		type pairKey struct{ src, dst string }
		var pairs []pairKey
		reps := map[pairKey]*Replicator{}
		build := func(p pairKey) *Replicator {
			batch := rapid.IntRange(1, 4).Draw(rt, "batch size")
			return pair(rt, regions[p.src], regions[p.dst], func(c *Config) {
				c.Offsets, c.Metrics, c.BatchSize = offsets, metrics, batch
			})
		}
		for _, s := range names {
			for _, d := range names {
				if s != d {
					p := pairKey{s, d}
					pairs = append(pairs, p)
					reps[p] = build(p)
				}
			}
		}
		keys := []string{"k0", "k1", "k2"}
		var writes []store.Record

		steps := rapid.IntRange(1, 150).Draw(rt, "steps")
		for i := range steps {
			switch rapid.IntRange(0, 8).Draw(rt, "action") {
			case 0, 1, 2: // a write
				r := regions[rapid.SampledFrom(names).Draw(rt, "writer")]
				key := rapid.SampledFrom(keys).Draw(rt, "key")
				rec, err := r.store.Put(ctx, "rides", key, fmt.Appendf(nil, `{"by":%q,"n":%d}`, r.name, i))
				if err != nil {
					rt.Fatal(err)
				}
				writes = append(writes, rec)
			case 3: // a delete
				r := regions[rapid.SampledFrom(names).Draw(rt, "deleter")]
				rec, err := r.store.Delete(ctx, "rides", rapid.SampledFrom(keys).Draw(rt, "key"))
				if err != nil {
					rt.Fatal(err)
				}
				writes = append(writes, rec)
			case 4, 5: // a replication step
				p := rapid.SampledFrom(pairs).Draw(rt, "pair")
				if _, err := reps[p].Step(ctx); err != nil && !errors.Is(err, ErrStalled) {
					rt.Fatalf("step %s→%s: %v", p.src, p.dst, err)
				}
			case 6: // a stall starts or ends
				r := regions[rapid.SampledFrom(names).Draw(rt, "stalled")]
				r.stall(rt, !r.faults.ReplicationStalled())
			case 7: // a replicator restarts from its stored offset
				p := rapid.SampledFrom(pairs).Draw(rt, "restarted")
				reps[p] = build(p)
			case 8: // time passes
				tt.add(time.Duration(rapid.Int64Range(0, 300).Draw(rt, "dt ms")) * time.Millisecond)
			}
		}

		for _, r := range regions {
			r.stall(rt, false)
		}
		all := make([]*Replicator, 0, len(reps))
		for _, p := range pairs {
			all = append(all, reps[p])
		}
		drain(rt, all...)

		for _, n := range names[1:] {
			if diff := sameState(regions["a"].store, regions[n].store); diff != "" {
				rt.Fatalf("regions diverged (skew %v in %s): %s", skew, skewed, diff)
			}
		}
		winners := map[string]store.Record{}
		for _, w := range writes {
			if cur, ok := winners[w.Key]; !ok || cur.Version.Less(w.Version) {
				winners[w.Key] = w
			}
		}
		for key, w := range winners {
			got, ok, _ := regions["b"].store.Get(ctx, "rides", key)
			if !ok || got.Version != w.Version || string(got.Value) != string(w.Value) || got.Deleted != w.Deleted {
				rt.Fatalf("key %s holds %v (%s), want the last writer %v (%s)", key, got.Version, got.Value, w.Version, w.Value)
			}
		}
		for _, p := range pairs {
			hw, _ := regions[p.src].store.HighWater(ctx)
			if got := metricValue(rt, reg, "carpool_replication_applied_total", pairLabels(p.src, p.dst)); got != float64(hw) {
				rt.Fatalf("%s→%s applied %v events, the source wrote %d", p.src, p.dst, got, hw)
			}
			if b := reps[p].Stats().Backlog(); b != 0 {
				rt.Fatalf("%s→%s backlog %d after draining", p.src, p.dst, b)
			}
		}
		for _, r := range regions {
			if n := r.store.Clock().Rejected(); n != 0 {
				rt.Fatalf("region %s refused %d timestamps with a skew of %v (max offset %v)", r.name, n, skew, hlc.DefaultMaxOffset)
			}
		}
	})
}
