package pricing

import (
	"hash/maphash"
	"sync"
	"time"
)

// demandShards spreads cells over independently locked maps so that quotes
// for different cells do not contend on one mutex.
const demandShards = 16

// demandWindow counts ride requests per cell over a sliding window made of
// buckets of width window/buckets. A count covers the current bucket and
// the buckets-1 before it, so an event is counted for between
// window-width and window after it happened. Time comes from the caller, so
// the window is deterministic under a fake clock.
type demandWindow struct {
	width   int64 // bucket width, ns
	buckets int
	seed    maphash.Seed
	shards  [demandShards]demandShard
}

type demandShard struct {
	mu    sync.Mutex
	cells map[string]*cellRing
}

// cellRing holds one cell's counts: slot i counts the events of bucket
// epoch[i] (epoch = unix ns / width), and is stale when epoch[i] has left
// the window.
type cellRing struct {
	counts []int32
	epochs []int64
}

func newDemandWindow(window time.Duration, buckets int) *demandWindow {
	d := &demandWindow{width: int64(window) / int64(buckets), buckets: buckets, seed: maphash.MakeSeed()}
	for i := range d.shards {
		d.shards[i].cells = make(map[string]*cellRing)
	}
	return d
}

func (d *demandWindow) shard(cell string) *demandShard {
	return &d.shards[maphash.String(d.seed, cell)%demandShards]
}

// add records one request in cell at now and returns the cell's count over
// the window, this request included.
func (d *demandWindow) add(cell string, now time.Time) int {
	epoch := now.UnixNano() / d.width
	s := d.shard(cell)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.cells[cell]
	if r == nil {
		r = &cellRing{counts: make([]int32, d.buckets), epochs: make([]int64, d.buckets)}
		for i := range r.epochs {
			r.epochs[i] = -1
		}
		s.cells[cell] = r
	}
	i := int((epoch%int64(d.buckets) + int64(d.buckets)) % int64(d.buckets))
	if r.epochs[i] != epoch {
		r.epochs[i], r.counts[i] = epoch, 0
	}
	r.counts[i]++
	return r.sumLocked(epoch, d.buckets)
}

// count returns the cell's requests over the window ending at now.
func (d *demandWindow) count(cell string, now time.Time) int {
	s := d.shard(cell)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.cells[cell]
	if r == nil {
		return 0
	}
	return r.sumLocked(now.UnixNano()/d.width, d.buckets)
}

func (r *cellRing) sumLocked(epoch int64, buckets int) int {
	n := 0
	oldest := epoch - int64(buckets) + 1
	for i, e := range r.epochs {
		if e >= oldest && e <= epoch {
			n += int(r.counts[i])
		}
	}
	return n
}

// sweep forgets the cells with no request left in the window and returns
// how many cells remain.
func (d *demandWindow) sweep(now time.Time) int {
	epoch := now.UnixNano() / d.width
	left := 0
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		for cell, r := range s.cells {
			if r.sumLocked(epoch, d.buckets) == 0 {
				delete(s.cells, cell)
			}
		}
		left += len(s.cells)
		s.mu.Unlock()
	}
	return left
}
