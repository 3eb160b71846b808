package hlc

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"pgregory.net/rapid"
)

// fakePhysical is a settable physical clock in Unix milliseconds.
type fakePhysical struct {
	mu sync.Mutex
	ms int64
}

func (f *fakePhysical) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.UnixMilli(f.ms)
}

func (f *fakePhysical) set(ms int64) {
	f.mu.Lock()
	f.ms = ms
	f.mu.Unlock()
}

func newClock(t testing.TB, region string, pt *fakePhysical, reg prometheus.Registerer) *Clock {
	t.Helper()
	c, err := New(Config{Region: region, Now: pt.now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigValidation(t *testing.T) {
	cases := map[string]struct {
		cfg  Config
		want string
	}{
		"A clock without a region is refused.":     {Config{}, "region is required"},
		"A sub-millisecond max offset is refused.": {Config{Region: "a", MaxOffset: time.Microsecond}, "at least 1ms"},
		"Defaults make a region enough.":           {Config{Region: "a"}, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			clk, err := New(c.cfg)
			if c.want == "" {
				if err != nil || clk.MaxOffset() != DefaultMaxOffset {
					t.Fatalf("New = %v; max offset %v", err, clk.MaxOffset())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
		})
	}
}

func TestNowFollowsThePhysicalClockAndTicksWhenItStalls(t *testing.T) {
	pt := &fakePhysical{ms: 1000}
	c := newClock(t, "eu", pt, nil)
	steps := []struct {
		physical int64
		want     Timestamp
	}{
		{1000, Timestamp{1000, 0, "eu"}},
		{1000, Timestamp{1000, 1, "eu"}}, // stalled: logical ticks
		{999, Timestamp{1000, 2, "eu"}},  // went back: still ticks
		{1005, Timestamp{1005, 0, "eu"}}, // moved on: logical resets
	}
	for i, s := range steps {
		pt.set(s.physical)
		if got := c.Now(); got != s.want {
			t.Fatalf("step %d: Now = %v, want %v", i, got, s.want)
		}
	}
	if c.Last() != (Timestamp{1005, 0, "eu"}) {
		t.Fatalf("Last = %v", c.Last())
	}
}

func TestUpdateRules(t *testing.T) {
	// Each case starts from a clock whose last timestamp is 1000.5 and a
	// physical clock at physical.
	cases := map[string]struct {
		physical int64
		remote   Timestamp
		want     Timestamp
	}{
		"A remote in the past advances the logical counter.":                      {900, Timestamp{990, 7, "us"}, Timestamp{1000, 6, "eu"}},
		"A remote at the same wall takes the larger logical plus one.":            {900, Timestamp{1000, 9, "us"}, Timestamp{1000, 10, "eu"}},
		"A remote ahead (within the offset) is adopted with its logical plus one": {900, Timestamp{1200, 3, "us"}, Timestamp{1200, 4, "eu"}},
		"A physical clock ahead of both resets the logical counter.":              {1500, Timestamp{1200, 3, "us"}, Timestamp{1500, 0, "eu"}},
		"A remote exactly the max offset ahead is accepted.":                      {1000, Timestamp{1500, 0, "us"}, Timestamp{1500, 1, "eu"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			pt := &fakePhysical{ms: 1000}
			clk := newClock(t, "eu", pt, nil)
			for range 6 {
				clk.Now() // 1000.0 .. 1000.5
			}
			pt.set(c.physical)
			got, err := clk.Update(c.remote)
			if err != nil || got != c.want {
				t.Fatalf("Update = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestRemoteTooFarAheadIsRejectedAndCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	pt := &fakePhysical{ms: 10_000}
	clk := newClock(t, "eu", pt, reg)
	before := clk.Now()
	_, err := clk.Update(Timestamp{WallMS: 10_501, Region: "us"})
	var ahead *RemoteAheadError
	if !errors.As(err, &ahead) || !errors.Is(err, ErrRemoteAhead) {
		t.Fatalf("err = %v, want a *RemoteAheadError", err)
	}
	if ahead.PhysicalMS != 10_000 || ahead.Remote.Region != "us" || !strings.Contains(err.Error(), "501ms ahead") {
		t.Fatalf("error details: %+v: %v", ahead, err)
	}
	if clk.Last() != before {
		t.Fatalf("a refused timestamp moved the clock to %v", clk.Last())
	}
	if clk.Rejected() != 1 {
		t.Fatalf("Rejected = %d", clk.Rejected())
	}
	var m dto.Metric
	if err := clk.rejected.Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Fatalf("counter = %v, %v", m.GetCounter().GetValue(), err)
	}
	// A second region in the same registry shares the metric family.
	other := newClock(t, "us", pt, reg)
	_, _ = other.Update(Timestamp{WallMS: 99_999, Region: "eu"})
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 2 {
		t.Fatalf("gathered %v, %v; want one family with a series per region", mfs, err)
	}
}

func TestLogicalOverflowCarriesIntoTheWall(t *testing.T) {
	pt := &fakePhysical{ms: 5}
	c := newClock(t, "eu", pt, nil)
	c.last = Timestamp{WallMS: 5, Logical: ^uint32(0)}
	if got := c.Now(); got != (Timestamp{6, 0, "eu"}) {
		t.Fatalf("Now = %v", got)
	}
	c.last = Timestamp{WallMS: 6, Logical: ^uint32(0)}
	if got, _ := c.Update(Timestamp{6, 1, "us"}); got != (Timestamp{7, 0, "eu"}) {
		t.Fatalf("Update = %v", got)
	}
}

func TestConcurrentNowIsUniqueAndIncreasing(t *testing.T) {
	c := newClock(t, "eu", &fakePhysical{ms: 1}, nil)
	const workers, each = 4, 2000
	out := make([][]Timestamp, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				out[w] = append(out[w], c.Now())
			}
		})
	}
	wg.Wait()
	seen := map[Timestamp]bool{}
	for _, ts := range out {
		for i, v := range ts {
			if seen[v] {
				t.Fatalf("duplicate timestamp %v", v)
			}
			seen[v] = true
			if i > 0 && !ts[i-1].Less(v) {
				t.Fatalf("not increasing: %v then %v", ts[i-1], v)
			}
		}
	}
}

// node is one participant of the simulated system of the property test.
type node struct {
	pt   *fakePhysical
	clk  *Clock
	last Timestamp
}

// TestClockProperties drives three clocks with skewed, stalling and
// backwards-jumping physical clocks through random local, send and receive
// events and checks the HLC paper's guarantees on every step:
//   - Now and Update are strictly monotonic per clock;
//   - a receive event is after both the sent event and the receiver's past
//     (Update ≥ both, hence causality: e happened-before f ⇒ ts(e) < ts(f));
//   - the wall part never exceeds the largest physical time any clock has
//     shown (HLC stays close to physical time);
//   - a refused remote leaves the clock unchanged.
func TestClockProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		regions := []string{"a", "b", "c"}
		nodes := make([]*node, len(regions))
		var maxPhysical int64
		for i, r := range regions {
			pt := &fakePhysical{ms: rapid.Int64Range(1_000, 1_400).Draw(t, "start")}
			maxPhysical = max(maxPhysical, pt.ms)
			c, err := New(Config{Region: r, Now: pt.now})
			if err != nil {
				t.Fatal(err)
			}
			nodes[i] = &node{pt: pt, clk: c}
		}
		var inFlight []Timestamp // sent, not yet received
		steps := rapid.IntRange(1, 200).Draw(t, "steps")
		for range steps {
			n := nodes[rapid.IntRange(0, len(nodes)-1).Draw(t, "node")]
			switch rapid.IntRange(0, 3).Draw(t, "action") {
			case 0: // the physical clock moves, possibly backwards
				n.pt.set(max(0, n.pt.ms+rapid.Int64Range(-50, 300).Draw(t, "dt")))
				maxPhysical = max(maxPhysical, n.pt.ms)
			case 1: // local or send event
				ts := n.clk.Now()
				if !n.last.clockPart().Less(ts.clockPart()) {
					t.Fatalf("Now not increasing: %v then %v", n.last, ts)
				}
				n.last = ts
				if rapid.Bool().Draw(t, "send") {
					inFlight = append(inFlight, ts)
				}
			case 2: // receive
				if len(inFlight) == 0 {
					continue
				}
				i := rapid.IntRange(0, len(inFlight)-1).Draw(t, "msg")
				msg := inFlight[i]
				inFlight = append(inFlight[:i], inFlight[i+1:]...)
				before := n.clk.Last()
				ts, err := n.clk.Update(msg)
				if err != nil {
					if !errors.Is(err, ErrRemoteAhead) || msg.WallMS <= n.pt.ms+500 {
						t.Fatalf("Update(%v) at physical %d: %v", msg, n.pt.ms, err)
					}
					if n.clk.Last() != before {
						t.Fatal("a refused remote moved the clock")
					}
					continue
				}
				if !msg.clockPart().Less(ts.clockPart()) || !n.last.clockPart().Less(ts.clockPart()) {
					t.Fatalf("receive %v not after sent %v and local %v", ts, msg, n.last)
				}
				n.last = ts
			case 3: // a forged timestamp far in the future
				far := Timestamp{WallMS: n.pt.ms + 501 + rapid.Int64Range(0, 1e9).Draw(t, "ahead"), Region: "x"}
				before := n.clk.Last()
				if _, err := n.clk.Update(far); !errors.Is(err, ErrRemoteAhead) || n.clk.Last() != before {
					t.Fatalf("far remote %v: err %v, clock %v → %v", far, err, before, n.clk.Last())
				}
			}
			for _, m := range nodes {
				if m.clk.Last().WallMS > maxPhysical {
					t.Fatalf("wall %d beyond every physical clock (max %d)", m.clk.Last().WallMS, maxPhysical)
				}
			}
		}
	})
}
