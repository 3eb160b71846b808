package ids

import (
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/snowflake"
)

// The benchmarks below run against the real clock, so both generators are
// capped by the layout at 4096 ids per millisecond per node (244 ns an id):
// they measure whether the generator reaches that cap, alone and with every
// processor asking at once. BenchmarkNextUncapped removes the cap with a
// clock that runs 1000 times fast (fastClock), to show the cost of Next
// itself.

func BenchmarkNext(b *testing.B) {
	g, err := New(Config{Node: 1}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}

func BenchmarkNextParallel(b *testing.B) {
	g, err := New(Config{Node: 1}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.Next(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}

func BenchmarkBwmarrinSnowflake(b *testing.B) {
	n, err := snowflake.NewNode(1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = n.Generate()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}

func BenchmarkBwmarrinSnowflakeParallel(b *testing.B) {
	n, err := snowflake.NewNode(1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = n.Generate()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}

// BenchmarkNextUncapped measures Next without the 4096-per-millisecond
// cap (see fastClock).
func BenchmarkNextUncapped(b *testing.B) {
	g, err := New(Config{Node: 1, Now: fastClock()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// mutexGenerator is the tight-mutex alternative to Next's compare-and-swap,
// kept here only to measure the choice.
type mutexGenerator struct {
	mu     sync.Mutex
	lastMs int64
	seq    int64
	node   int64
	now    func() time.Time
}

func (g *mutexGenerator) next() ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		now := g.now()
		ms := now.UnixMilli() - epochMs
		if ms > g.lastMs {
			g.lastMs, g.seq = ms, 0
		} else if g.seq < MaxSeq {
			g.seq++
		} else {
			spinSleep(time.UnixMilli(epochMs + ms + 1).Sub(now))
			continue
		}
		return ID(g.lastMs<<timeShift | g.node<<nodeShift | g.seq)
	}
}

func BenchmarkMutexGeneratorParallel(b *testing.B) {
	g := &mutexGenerator{node: 1, now: time.Now}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = g.next()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}

// fastClock reads the real clock but runs it 1000 times faster (one id
// millisecond per real microsecond), so the 4096-per-millisecond cap is out
// of reach while each read costs what time.Now costs.
func fastClock() func() time.Time {
	base := time.Now()
	return func() time.Time { return time.UnixMilli(epochMs + 1 + time.Since(base).Microseconds()) }
}

// BenchmarkNextUncappedParallel and BenchmarkMutexGeneratorUncappedParallel
// compare compare-and-swap with a mutex under contention, without the cap.
func BenchmarkNextUncappedParallel(b *testing.B) {
	g, err := New(Config{Node: 1, Now: fastClock()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.Next(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkMutexGeneratorUncappedParallel(b *testing.B) {
	g := &mutexGenerator{node: 1, now: fastClock()}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = g.next()
		}
	})
}
