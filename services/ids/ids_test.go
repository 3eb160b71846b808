package ids

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"pgregory.net/rapid"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// fakeClock is a clock that moves only when told to, or when a generator
// sleeps on it.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

var t0 = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func newFake(t *testing.T, node int, maxWait time.Duration) (*Generator, *fakeClock, *prometheus.Registry) {
	t.Helper()
	clk := newFakeClock(t0)
	reg := prometheus.NewRegistry()
	g, err := New(Config{Region: "sh-a", Node: node, MaxWait: maxWait, Now: clk.Now, Sleep: clk.Sleep}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g, clk, reg
}

func mustNext(t *testing.T, g *Generator) ID {
	t.Helper()
	id, err := g.NextID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestLayoutDecodesWhatMakeEncodes(t *testing.T) {
	tests := map[string]struct {
		t         time.Time
		node, seq int
		want      ID
	}{
		"The epoch itself with node 0 and sequence 0 is id 0.": {Epoch, 0, 0, 0},
		"One millisecond after the epoch sets bit 18.":         {Epoch.Add(time.Millisecond), 0, 0, 1 << 18},
		"Node 63 fills bits 12..17.":                           {Epoch, 63, 0, 63 << 12},
		"Sequence 4095 fills bits 0..11.":                      {Epoch, 0, 4095, 4095},
		"A time in 2026 with every field set.":                 {t0.Add(123 * time.Millisecond), 17, 42, ID((t0.UnixMilli()-Epoch.UnixMilli()+123)<<18 | 17<<12 | 42)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id, err := Make(tc.t, tc.node, tc.seq)
			if err != nil {
				t.Fatal(err)
			}
			if id != tc.want {
				t.Fatalf("Make = %d, want %d", id, tc.want)
			}
			if !id.Time().Equal(tc.t) || id.Node() != tc.node || id.Seq() != tc.seq {
				t.Fatalf("decoded %s/%d/%d, want %s/%d/%d", id.Time(), id.Node(), id.Seq(), tc.t, tc.node, tc.seq)
			}
			back, err := Parse(id.String())
			if tc.want != 0 && (err != nil || back != id) {
				t.Fatalf("Parse(String) = %d, %v", back, err)
			}
		})
	}
}

func TestLayoutRoundTripsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms := rapid.Int64Range(0, maxTime).Draw(t, "ms")
		node := rapid.IntRange(0, MaxNode).Draw(t, "node")
		seq := rapid.IntRange(0, MaxSeq).Draw(t, "seq")
		at := time.UnixMilli(epochMs + ms)
		id, err := Make(at, node, seq)
		if err != nil {
			t.Fatal(err)
		}
		if id < 0 || !id.Time().Equal(at) || id.Node() != node || id.Seq() != seq {
			t.Fatalf("id %d decodes to %s/%d/%d", id, id.Time(), id.Node(), id.Seq())
		}
	})
}

func TestMakeAndParseRefuseBadInput(t *testing.T) {
	makes := map[string]struct {
		t         time.Time
		node, seq int
	}{
		"A time before the epoch is refused.":   {Epoch.Add(-time.Millisecond), 0, 0},
		"A time past 42 bits of ms is refused.": {time.UnixMilli(epochMs + maxTime + 1), 0, 0},
		"Node 64 is refused.":                   {t0, 64, 0},
		"A negative node is refused.":           {t0, -1, 0},
		"Sequence 4096 is refused.":             {t0, 0, 4096},
	}
	for name, tc := range makes {
		t.Run(name, func(t *testing.T) {
			if _, err := Make(tc.t, tc.node, tc.seq); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	for _, s := range []string{"", "abc", "-5", "0", "1.5", "1152921504606846976"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

func TestNodeID(t *testing.T) {
	tests := map[string]struct {
		region, instance int
		want             int
		wantErr          bool
	}{
		"The first instance of the first region is node 0.": {0, 0, 0, false},
		"Region 1 instance 2 is node 10.":                   {1, 2, 10, false},
		"The last instance of the last region is node 63.":  {7, 7, 63, false},
		"A ninth region does not fit in the layout.":        {8, 0, 0, true},
		"A ninth instance does not fit in the layout.":      {0, 8, 0, true},
		"A negative region index is refused.":               {-1, 0, 0, true},
		"A negative instance is refused.":                   {0, -1, 0, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := NodeID(tc.region, tc.instance)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("NodeID(%d, %d) = %d, %v", tc.region, tc.instance, got, err)
			}
		})
	}
	seen := map[int]bool{}
	for r := range MaxRegions {
		for i := range MaxInstances {
			n, err := NodeID(r, i)
			if err != nil || seen[n] || n < 0 || n > MaxNode {
				t.Fatalf("NodeID(%d, %d) = %d, %v (seen %v)", r, i, n, err, seen[n])
			}
			seen[n] = true
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, node := range []int{-1, 64} {
		if _, err := New(Config{Node: node}, nil, nil); err == nil {
			t.Errorf("node %d accepted", node)
		}
	}
}

func TestIDsCarryTheClockAndTheNode(t *testing.T) {
	g, clk, _ := newFake(t, 42, 0)
	a, b := mustNext(t, g), mustNext(t, g)
	clk.Add(5 * time.Millisecond)
	c := mustNext(t, g)
	if !a.Time().Equal(t0) || a.Node() != 42 || a.Seq() != 0 || b.Seq() != 1 {
		t.Fatalf("a=%s/%d/%d b seq %d", a.Time(), a.Node(), a.Seq(), b.Seq())
	}
	if !c.Time().Equal(t0.Add(5*time.Millisecond)) || c.Seq() != 0 {
		t.Fatalf("c = %s/%d, want a new millisecond at sequence 0", c.Time(), c.Seq())
	}
}

func TestSequenceOverflowWaitsForTheNextMillisecond(t *testing.T) {
	g, clk, reg := newFake(t, 3, 0)
	var last ID
	for i := range MaxSeq + 1 {
		id := mustNext(t, g)
		if id.Seq() != i || !id.Time().Equal(t0) {
			t.Fatalf("id %d: seq %d at %s", i, id.Seq(), id.Time())
		}
		last = id
	}
	if len(clk.Slept()) != 0 {
		t.Fatalf("slept before the sequence ran out: %v", clk.Slept())
	}
	id := mustNext(t, g)
	if id <= last || id.Seq() != 0 || !id.Time().Equal(t0.Add(time.Millisecond)) {
		t.Fatalf("after overflow: %s seq %d, want the next millisecond at sequence 0", id.Time(), id.Seq())
	}
	if got := clk.Slept(); len(got) != 1 || got[0] != time.Millisecond {
		t.Fatalf("slept %v, want one wait of 1ms", got)
	}
	if n := value(g.exhausted); n != 1 {
		t.Fatalf("exhausted counter = %v", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == catalog.IDSequenceExhausted.Name {
			found = mf.GetMetric()[0].GetCounter().GetValue() == 1
		}
	}
	if !found {
		t.Fatalf("%s is not exposed with value 1", catalog.IDSequenceExhausted.Name)
	}
}

func TestClockRollback(t *testing.T) {
	tests := map[string]struct {
		maxWait     time.Duration
		back        time.Duration
		wantRefused bool
		wantSlept   time.Duration
	}{
		"A rollback within the bound is waited out.":            {10 * time.Millisecond, 7 * time.Millisecond, false, 7 * time.Millisecond},
		"A rollback exactly at the bound is waited out.":        {10 * time.Millisecond, 10 * time.Millisecond, false, 10 * time.Millisecond},
		"A rollback beyond the bound is refused.":               {10 * time.Millisecond, 11 * time.Millisecond, true, 0},
		"A large step back (one second) is refused.":            {10 * time.Millisecond, time.Second, true, 0},
		"A negative bound refuses even a one millisecond step.": {-1, time.Millisecond, true, 0},
		"A rollback within the same millisecond needs no wait.": {10 * time.Millisecond, 300 * time.Microsecond, false, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g, clk, _ := newFake(t, 1, tc.maxWait)
			clk.Add(500 * time.Microsecond) // mid-millisecond
			first := mustNext(t, g)
			clk.Add(-tc.back)
			id, err := g.NextID()
			var rb *ClockRollbackError
			if tc.wantRefused {
				if !errors.As(err, &rb) || rb.Behind <= 0 {
					t.Fatalf("got %v, %v; want a ClockRollbackError", id, err)
				}
				if value(g.refused) != 1 || value(g.waited) != 0 {
					t.Fatalf("refused=%v waited=%v", value(g.refused), value(g.waited))
				}
				// Once the clock has caught up, ids resume, still increasing.
				clk.Add(tc.back)
				if next := mustNext(t, g); next <= first {
					t.Fatalf("after recovery %d <= %d", next, first)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id <= first {
				t.Fatalf("id after the rollback %d <= %d", id, first)
			}
			if tc.wantSlept > 0 {
				slept := clk.Slept()
				var total time.Duration
				for _, d := range slept {
					total += d
				}
				// The clock was mid-millisecond; waiting to the start of the
				// last id's millisecond takes back minus half a millisecond.
				if want := tc.back - 500*time.Microsecond; total != want {
					t.Fatalf("slept %v in total, want %v", slept, want)
				}
				if value(g.waited) != 1 {
					t.Fatalf("waited counter = %v", value(g.waited))
				}
			}
			if value(g.refused) != 0 {
				t.Fatal("a rollback within the bound was refused")
			}
		})
	}
}

func TestClockOutOfRange(t *testing.T) {
	clk := newFakeClock(Epoch.Add(-time.Hour))
	g, err := New(Config{Now: clk.Now, Sleep: clk.Sleep}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.NextID(); !errors.Is(err, ErrClockOutOfRange) {
		t.Fatalf("got %v", err)
	}
}

// TestIDsIncreaseWhateverTheClockDoes drives a generator with random clock
// moves: ids always increase, and Next fails only for a rollback beyond the
// bound.
func TestIDsIncreaseWhateverTheClockDoes(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		maxWait := time.Duration(rapid.IntRange(1, 20).Draw(rt, "maxWaitMs")) * time.Millisecond
		clk := newFakeClock(t0)
		g, err := New(Config{Node: 9, MaxWait: maxWait, Now: clk.Now, Sleep: clk.Sleep}, nil, nil)
		if err != nil {
			rt.Fatal(err)
		}
		var last ID
		var high time.Time // the latest millisecond an id was issued in
		for i := range rapid.IntRange(1, 300).Draw(rt, "steps") {
			clk.Add(time.Duration(rapid.Int64Range(-30_000, 30_000).Draw(rt, "moveUs")) * time.Microsecond)
			for range rapid.IntRange(1, 50).Draw(rt, "burst") {
				before := clk.Now()
				id, err := g.NextID()
				if err != nil {
					var rb *ClockRollbackError
					if !errors.As(err, &rb) || high.Sub(before) <= maxWait {
						rt.Fatalf("step %d: unexpected %v (clock %s behind the last id)", i, err, high.Sub(before))
					}
					continue
				}
				if id <= last || id.Node() != 9 {
					rt.Fatalf("step %d: id %d after %d", i, id, last)
				}
				if id.Time().After(clk.Now()) {
					rt.Fatalf("step %d: id from the future %s > %s", i, id.Time(), clk.Now())
				}
				last, high = id, id.Time()
			}
		}
	})
}

func TestMonotonicUnderConcurrency(t *testing.T) {
	g, err := New(Config{Region: "sh-a", Node: 5}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 16, 2000
	out := make([][]ID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ids := make([]ID, 0, each)
			for range each {
				id, err := g.NextID()
				if err != nil {
					t.Error(err)
					return
				}
				if len(ids) > 0 && id <= ids[len(ids)-1] {
					t.Errorf("worker %d: %d after %d", w, id, ids[len(ids)-1])
					return
				}
				ids = append(ids, id)
			}
			out[w] = ids
		})
	}
	wg.Wait()
	all := slices.Concat(out...)
	slices.Sort(all)
	if len(all) != workers*each {
		t.Fatalf("got %d ids", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("duplicate id %d", all[i])
		}
	}
}

func TestNoDuplicatesAcross64Nodes(t *testing.T) {
	reg := prometheus.NewRegistry() // shared: several generators per registry work
	const each = 1000
	out := make([][]ID, MaxNode+1)
	var wg sync.WaitGroup
	for node := range MaxNode + 1 {
		g, err := New(Config{Region: "r", Node: node}, reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			ids := make([]ID, each)
			for i := range ids {
				id, err := g.NextID()
				if err != nil {
					t.Error(err)
					return
				}
				if id.Node() != node {
					t.Errorf("node %d issued an id of node %d", node, id.Node())
				}
				ids[i] = id
			}
			out[node] = ids
		})
	}
	wg.Wait()
	seen := make(map[ID]bool, 64*each)
	for _, ids := range out {
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("duplicate id %d", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != 64*each {
		t.Fatalf("got %d distinct ids", len(seen))
	}
}
