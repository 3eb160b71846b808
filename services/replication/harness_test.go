package replication

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/hlc"
	"github.com/carpoolsla/carpoolsla/services/store"
)

var ctx = context.Background()

// tb is what the helpers need of a test: *testing.T and *rapid.T have it.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// trueTime is the fake "true" time every region's physical clock derives
// from (through its fault injector, which adds the region's skew).
type trueTime struct{ ms atomic.Int64 }

func newTrueTime() *trueTime {
	tt := &trueTime{}
	tt.ms.Store(1_764_028_800_000)
	return tt
}

func (tt *trueTime) now() time.Time      { return time.UnixMilli(tt.ms.Load()) }
func (tt *trueTime) add(d time.Duration) { tt.ms.Add(d.Milliseconds()) }

// region is one test region: a store whose HLC runs on the region's
// injector clock, and the injector.
type region struct {
	name   string
	store  *store.Memory
	faults *faults.Injector
}

func newRegion(t tb, name string, tt *trueTime, reg prometheus.Registerer) *region {
	t.Helper()
	in := &faults.Injector{Now: tt.now}
	clk, err := hlc.New(hlc.Config{Region: name, Now: in.Clock, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.NewMemory(store.Config{Region: name, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &region{name: name, store: s, faults: in}
}

func (r *region) skew(t tb, d time.Duration) {
	t.Helper()
	if err := r.faults.Update(func(s *faults.State) { s.ClockSkew = faults.Duration(d) }); err != nil {
		t.Fatal(err)
	}
}

func (r *region) stall(t tb, on bool) {
	t.Helper()
	if err := r.faults.Update(func(s *faults.State) { s.ReplicationStalled = on }); err != nil {
		t.Fatal(err)
	}
}

// pair builds the in-process replicator src → dst; mutate adjusts its
// config.
func pair(t tb, src, dst *region, mutate func(*Config)) *Replicator {
	t.Helper()
	cfg := Config{SourceRegion: src.name, Source: NewLocalSource(src.store), Target: dst.store, Stall: dst.faults}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// drain steps every replicator until none makes progress; bounded.
func drain(t tb, reps ...*Replicator) {
	t.Helper()
	for round := 0; round < 10_000; round++ {
		progress := false
		for _, r := range reps {
			n, err := r.Step(ctx)
			if err != nil {
				t.Fatalf("draining: %v", err)
			}
			progress = progress || n > 0
		}
		if !progress {
			return
		}
	}
	t.Fatal("replication did not drain within 10,000 rounds")
}

// sameState reports how two stores' contents differ ("" when identical:
// same keys, values, versions, tombstones).
func sameState(a, b *store.Memory) string {
	da, db := a.Dump(), b.Dump()
	if len(da) != len(db) {
		return fmt.Sprintf("%s holds %d records, %s %d", a.Region(), len(da), b.Region(), len(db))
	}
	for i := range da {
		x, y := da[i], db[i]
		if x.Table != y.Table || x.Key != y.Key || x.Version != y.Version || x.Deleted != y.Deleted ||
			x.Prev != y.Prev || x.Origin != y.Origin || !bytes.Equal(x.Value, y.Value) {
			return fmt.Sprintf("record %d differs: %s has %+v (%s), %s has %+v (%s)", i, a.Region(), x, x.Value, b.Region(), y, y.Value)
		}
	}
	return ""
}

// counterValue reads one child of a counter or gauge family from reg.
func metricValue(t tb, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

func pairLabels(src, dst string) map[string]string {
	return map[string]string{"source_region": src, "target_region": dst}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t tb, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
