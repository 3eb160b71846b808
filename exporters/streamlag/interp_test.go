package streamlag

import (
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0)

func at(s float64) time.Time { return t0.Add(seconds(s)) }

func TestInterpolate(t *testing.T) {
	// A stream sampled at t0+0, +10 and +20 s at sequences 100, 200 and 250:
	// 10 messages/s, then 5 messages/s.
	pts := []point{{100, at(0)}, {200, at(10)}, {250, at(20)}}
	now := at(30)
	tests := map[string]struct {
		pts  []point
		seq  uint64
		want time.Time
		ok   bool
	}{
		"A sequence on a sample is that sample's time.":                            {pts, 200, at(10), true},
		"The first sample is exact.":                                               {pts, 100, at(0), true},
		"Between two samples the time is interpolated linearly.":                   {pts, 150, at(5), true},
		"Each segment has its own rate.":                                           {pts, 225, at(15), true},
		"Just after a sample is a little later than it.":                           {pts, 201, at(10.2), true},
		"Before the table is extrapolated back at the table's average rate.":       {pts, 50, at(-50.0 / 150 * 20), true},
		"After the table is extrapolated forward at the average rate.":             {pts, 265, at(20 + 15.0/150*20), true},
		"Forward extrapolation never passes now.":                                  {pts, 100000, now, true},
		"One sample: before it is its time (no rate to extrapolate with).":         {[]point{{100, at(0)}}, 10, at(0), true},
		"One sample: after it is now (the message came after the only sample).":    {[]point{{100, at(0)}}, 101, now, true},
		"No sample: nothing is known.":                                             {nil, 5, time.Time{}, false},
		"A flat table (no rate) puts what is before it at the first sample's time": {[]point{{7, at(0)}, {7, at(5)}}, 3, at(0), true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := interpolate(tc.pts, tc.seq, now)
			if ok != tc.ok || got.Sub(tc.want).Abs() > time.Microsecond {
				t.Fatalf("interpolate(%d) = %v %v, want %v %v", tc.seq, got.Sub(t0), ok, tc.want.Sub(t0), tc.ok)
			}
		})
	}
}

func TestSeqTable(t *testing.T) {
	t.Run("The table keeps the newest samples up to its size.", func(t *testing.T) {
		tbl := newSeqTable(3)
		for i := range 5 {
			tbl.add(uint64(10*(i+1)), at(float64(i)))
		}
		if len(tbl.pts) != 3 || tbl.pts[0].seq != 30 || tbl.pts[2].seq != 50 {
			t.Fatalf("table %v", tbl.pts)
		}
	})
	t.Run("A sample at the last sequence again is ignored.", func(t *testing.T) {
		tbl := newSeqTable(3)
		tbl.add(10, at(0))
		tbl.add(10, at(5))
		if len(tbl.pts) != 1 || !tbl.pts[0].t.Equal(at(0)) {
			t.Fatalf("table %v", tbl.pts)
		}
	})
	t.Run("A lower sequence (a recreated stream) starts afresh.", func(t *testing.T) {
		tbl := newSeqTable(3)
		tbl.add(10, at(0))
		tbl.add(20, at(1))
		tbl.add(3, at(2))
		if len(tbl.pts) != 1 || tbl.pts[0].seq != 3 {
			t.Fatalf("table %v", tbl.pts)
		}
	})
	t.Run("The anchor (first retained message) is used in front of the table.", func(t *testing.T) {
		tbl := newSeqTable(3)
		tbl.add(200, at(100))
		tbl.add(300, at(110))
		got, _ := tbl.timeOf(150, point{100, at(0)}, at(120))
		if !got.Equal(at(50)) {
			t.Fatalf("time of 150: %v, want +50s (between the anchor and the first sample)", got.Sub(t0))
		}
		got, _ = tbl.timeOf(250, point{100, at(0)}, at(120))
		if !got.Equal(at(105)) {
			t.Fatalf("time of 250: %v, want +105s", got.Sub(t0))
		}
	})
}

// TestInterpolationFollowsASteadyProducer is kafka-lag-exporter's case: a
// producer at a steady 10 messages/s sampled every 15 s (the scrape
// interval), a consumer stuck at a sequence; its lag in seconds grows with
// the fake clock exactly.
func TestInterpolationFollowsASteadyProducer(t *testing.T) {
	tbl := newSeqTable(DefaultTableSize)
	seqAt := func(s float64) uint64 { return uint64(1000 + 10*s) }
	const stuck = 1234 // consumed up to here: message 1235 was added at +23.5 s
	for scrape := range 10 {
		now := at(float64(15 * scrape))
		tbl.add(seqAt(float64(15*scrape)), now)
		if scrape < 2 {
			continue // the table has not reached the consumer yet
		}
		got, ok := tbl.timeOf(stuck+1, point{}, now)
		lag := now.Sub(got).Seconds()
		want := float64(15*scrape) - 23.5
		if !ok || lag < want-1e-6 || lag > want+1e-6 {
			t.Fatalf("scrape %d: lag %v, want %v", scrape, lag, want)
		}
	}
}
