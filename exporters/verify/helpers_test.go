package verify

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/services/store"
)

// newStores returns two empty region stores.
func newStores(t testing.TB) (src, tgt *store.Memory) {
	t.Helper()
	var err error
	if src, err = store.NewMemory(store.Config{Region: "sh-a"}); err != nil {
		t.Fatal(err)
	}
	if tgt, err = store.NewMemory(store.Config{Region: "sh-b"}); err != nil {
		t.Fatal(err)
	}
	return src, tgt
}

// rideKey is the key of ride i: fixed width, so key order is number order.
func rideKey(i int) string { return fmt.Sprintf("ride-%06d", i) }

// rideDoc is ride i's document.
func rideDoc(i int, driver string) string {
	return fmt.Sprintf(`{"id":%d,"driver":%q,"fare":%d,"state":"done"}`, i, driver, 100+i%37)
}

// fill puts rides [0, n) in every store.
func fill(t testing.TB, n int, stores ...*store.Memory) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		for _, s := range stores {
			if _, err := s.Put(ctx, "rides", rideKey(i), []byte(rideDoc(i, fmt.Sprintf("d%d", i%50)))); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// manualAfter is an injected After: each wait is recorded and fires at
// once, after calling the hook (which can, say, land a write in flight).
type manualAfter struct {
	mu    sync.Mutex
	waits []time.Duration
	hook  func(n int, d time.Duration)
}

func (m *manualAfter) after(d time.Duration) <-chan time.Time {
	m.mu.Lock()
	m.waits = append(m.waits, d)
	n := len(m.waits)
	hook := m.hook
	m.mu.Unlock()
	if hook != nil {
		hook(n, d)
	}
	ch := make(chan time.Time, 1)
	ch <- time.Unix(0, 0)
	return ch
}

// summary renders mismatches as sorted "kind key" lines.
func summary(ms []Mismatch) string {
	var lines []string
	for _, m := range ms {
		lines = append(lines, string(m.Kind)+" "+m.Key)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// flaky wraps a Backend: while down is set every call fails; calls counts
// the Chunk and Checksum calls, and onCall runs before each.
type flaky struct {
	Backend
	mu     sync.Mutex
	down   bool
	calls  int
	onCall func(n int)
}

func (f *flaky) hit() error {
	f.mu.Lock()
	f.calls++
	n, down, on := f.calls, f.down, f.onCall
	f.mu.Unlock()
	if on != nil {
		on(n)
	}
	if down {
		return fmt.Errorf("dial tcp 127.0.0.1:1: connect: connection refused")
	}
	return nil
}

func (f *flaky) setDown(d bool) {
	f.mu.Lock()
	f.down = d
	f.mu.Unlock()
}

func (f *flaky) Chunk(ctx context.Context, t Table, r Range, n int, salt uint64) (Checksum, string, error) {
	if err := f.hit(); err != nil {
		return Checksum{}, "", err
	}
	return f.Backend.Chunk(ctx, t, r, n, salt)
}

func (f *flaky) Checksum(ctx context.Context, t Table, r Range, salt uint64) (Checksum, error) {
	if err := f.hit(); err != nil {
		return Checksum{}, err
	}
	return f.Backend.Checksum(ctx, t, r, salt)
}

// gather returns the value of the one series of name whose labels include
// the given pairs; the test fails when there is not exactly one.
func gather(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var vals []float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				vals = append(vals, m.GetGauge().GetValue())
			case m.Counter != nil:
				vals = append(vals, m.GetCounter().GetValue())
			}
		}
	}
	if len(vals) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labels, len(vals))
	}
	return vals[0]
}
