package location

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// IndexConfig configures an Index.
type IndexConfig struct {
	// CellDegrees is the side of a grid cell in degrees of latitude and
	// longitude; default 0.01 (about 1.1 km north-south).
	CellDegrees float64
	// TTL is how long a position counts: a driver whose newest position is
	// older is not returned, not claimable, and removed by Sweep. Default
	// 30 s.
	TTL time.Duration
	// MaxRings bounds Nearby's search: it looks at most MaxRings cells away
	// from the point in every direction. Default 50 (about 55 km with the
	// default cell).
	MaxRings int
	// SweepInterval is how often Run removes expired drivers; default TTL.
	SweepInterval time.Duration
	// Now is the clock TTLs are measured on; default time.Now.
	Now func() time.Time
}

func (c *IndexConfig) defaults() {
	if c.CellDegrees == 0 {
		c.CellDegrees = 0.01
	}
	if c.TTL == 0 {
		c.TTL = 30 * time.Second
	}
	if c.MaxRings == 0 {
		c.MaxRings = 50
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = c.TTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks the configuration after defaults are applied.
func (c IndexConfig) Validate() error {
	switch {
	case !(c.CellDegrees > 0 && c.CellDegrees <= 10):
		return fmt.Errorf("index cell size is %g degrees; it must be in (0, 10]", c.CellDegrees)
	case c.TTL <= 0:
		return fmt.Errorf("index TTL is %s; it must be positive", c.TTL)
	case c.MaxRings < 1:
		return fmt.Errorf("index max rings is %d; it must be at least 1", c.MaxRings)
	case c.SweepInterval <= 0:
		return fmt.Errorf("index sweep interval is %s; it must be positive", c.SweepInterval)
	}
	return nil
}

// Driver is a driver found by Nearby.
type Driver struct {
	ID string `json:"id"`
	LatLng
	// TS is the time of the driver's position.
	TS time.Time `json:"ts"`
	// DistanceMeters is the great-circle distance from the searched point.
	DistanceMeters float64 `json:"distance_m"`
}

// Index is the dispatch index: the newest position of every driver in a
// grid of cells, searched outwards from a point. Positions older than the
// TTL do not count. A driver is matched to one ride at a time through Claim
// and Release; Nearby skips claimed drivers. Safe for concurrent use.
type Index struct {
	cfg IndexConfig
	nx  int32 // cells around a parallel
	ny  int32 // cells from pole to pole

	mu      sync.RWMutex
	drivers map[string]*indexEntry
	cells   map[cell]map[string]*indexEntry
	claims  map[string]string // driver id → ride id
}

type cell struct{ y, x int32 }

type indexEntry struct {
	id   string
	at   LatLng
	ts   time.Time
	cell cell
}

// NewIndex returns an empty index.
func NewIndex(cfg IndexConfig) (*Index, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Index{
		cfg:     cfg,
		nx:      int32(math.Ceil(360 / cfg.CellDegrees)),
		ny:      int32(math.Ceil(180 / cfg.CellDegrees)),
		drivers: make(map[string]*indexEntry),
		cells:   make(map[cell]map[string]*indexEntry),
		claims:  make(map[string]string),
	}, nil
}

func (ix *Index) cellOf(p LatLng) cell {
	y := int32(math.Floor((p.Lat + 90) / ix.cfg.CellDegrees))
	x := int32(math.Floor((p.Lng + 180) / ix.cfg.CellDegrees))
	return cell{y: min(max(y, 0), ix.ny-1), x: ((x % ix.nx) + ix.nx) % ix.nx}
}

// Update records a driver's position. A position older than the one held
// (out of order, or a redelivery) or older than the TTL is ignored.
func (ix *Index) Update(p Position) {
	now := ix.cfg.Now()
	if now.Sub(p.TS) > ix.cfg.TTL {
		return
	}
	c := ix.cellOf(p.At())
	ix.mu.Lock()
	defer ix.mu.Unlock()
	e, ok := ix.drivers[p.DriverID]
	if ok && !p.TS.After(e.ts) {
		return
	}
	if !ok {
		e = &indexEntry{id: p.DriverID}
		ix.drivers[p.DriverID] = e
	} else if e.cell != c {
		ix.removeFromCellLocked(e)
	}
	if !ok || e.cell != c {
		m := ix.cells[c]
		if m == nil {
			m = make(map[string]*indexEntry)
			ix.cells[c] = m
		}
		m[p.DriverID] = e
	}
	e.at, e.ts, e.cell = p.At(), p.TS, c
}

func (ix *Index) removeFromCellLocked(e *indexEntry) {
	if m := ix.cells[e.cell]; m != nil {
		delete(m, e.id)
		if len(m) == 0 {
			delete(ix.cells, e.cell)
		}
	}
}

// metersPerDegree is the length of a degree of latitude.
const metersPerDegree = 6371008.8 * math.Pi / 180

// Nearby returns up to n unclaimed drivers with a fresh position, nearest
// first, searching at most MaxRings cells away from at. It fails only when
// ctx ends.
func (ix *Index) Nearby(ctx context.Context, at LatLng, n int) ([]Driver, error) {
	if n < 1 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("searching drivers near %v: %w", at, err)
	}
	cutoff := ix.cfg.Now().Add(-ix.cfg.TTL)
	center := ix.cellOf(at)
	best := nearest{max: n}
	var done map[cell]bool // set once rings may wrap onto visited cells
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for r := int32(0); r <= int32(ix.cfg.MaxRings); r++ {
		if r > 0 && r%8 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("searching drivers near %v: %w", at, err)
			}
		}
		if done == nil && 2*r+1 > ix.nx {
			done = ix.visitedLocked(center, r-1)
		}
		ix.visitRingLocked(center, r, done, func(m map[string]*indexEntry) {
			for _, e := range m {
				if e.ts.Before(cutoff) {
					continue
				}
				if _, claimed := ix.claims[e.id]; claimed {
					continue
				}
				best.offer(e, haversineMeters(at, e.at))
			}
		})
		// Every driver outside rings 0..r is at least r cells away in
		// latitude or longitude, so at least this far: once the n nearest
		// found are all closer, no other driver can displace them.
		lat := math.Min(90, math.Abs(at.Lat)+float64(r+1)*ix.cfg.CellDegrees)
		safe := float64(r) * ix.cfg.CellDegrees * metersPerDegree * math.Cos(lat*math.Pi/180)
		if len(best.h) == n && best.h[0].DistanceMeters <= safe || 2*r+1 >= ix.nx && 2*r+1 >= ix.ny {
			break
		}
	}
	slices.SortFunc(best.h, compareDrivers)
	return best.h, nil
}

// compareDrivers orders by distance, then id.
func compareDrivers(a, b Driver) int {
	switch {
	case a.DistanceMeters < b.DistanceMeters:
		return -1
	case a.DistanceMeters > b.DistanceMeters:
		return 1
	}
	return strings.Compare(a.ID, b.ID)
}

// nearest keeps the max nearest drivers offered, in a max-heap on
// compareDrivers (the farthest at h[0]).
type nearest struct {
	max int
	h   []Driver
}

func (b *nearest) offer(e *indexEntry, d float64) {
	cand := Driver{ID: e.id, LatLng: e.at, TS: e.ts, DistanceMeters: d}
	if len(b.h) < b.max {
		b.h = append(b.h, cand)
		for i := len(b.h) - 1; i > 0; { // sift up
			parent := (i - 1) / 2
			if compareDrivers(b.h[i], b.h[parent]) <= 0 {
				break
			}
			b.h[i], b.h[parent] = b.h[parent], b.h[i]
			i = parent
		}
		return
	}
	if compareDrivers(cand, b.h[0]) >= 0 {
		return
	}
	b.h[0] = cand
	for i := 0; ; { // sift down
		l, r, top := 2*i+1, 2*i+2, i
		if l < len(b.h) && compareDrivers(b.h[l], b.h[top]) > 0 {
			top = l
		}
		if r < len(b.h) && compareDrivers(b.h[r], b.h[top]) > 0 {
			top = r
		}
		if top == i {
			return
		}
		b.h[i], b.h[top] = b.h[top], b.h[i]
		i = top
	}
}

// visitRingLocked calls fn with every non-empty cell exactly r cells from
// center (the square ring), wrapping around the antimeridian and stopping
// at the poles. When a ring is wider than the globe, cells already in done
// are skipped (done is nil until then).
func (ix *Index) visitRingLocked(center cell, r int32, done map[cell]bool, fn func(map[string]*indexEntry)) {
	visit := func(y, x int32) {
		if y < 0 || y >= ix.ny {
			return
		}
		c := cell{y: y, x: ((x % ix.nx) + ix.nx) % ix.nx}
		if done != nil {
			if done[c] {
				return
			}
			done[c] = true
		}
		if m := ix.cells[c]; len(m) > 0 {
			fn(m)
		}
	}
	if r == 0 {
		visit(center.y, center.x)
		return
	}
	for dx := -r; dx <= r; dx++ {
		visit(center.y-r, center.x+dx)
		visit(center.y+r, center.x+dx)
	}
	for dy := -r + 1; dy <= r-1; dy++ {
		visit(center.y+dy, center.x-r)
		visit(center.y+dy, center.x+r)
	}
}

// visitedLocked returns the cells of rings 0..r around center, the cells a
// search has seen before its rings start to wrap.
func (ix *Index) visitedLocked(center cell, r int32) map[cell]bool {
	done := make(map[cell]bool)
	for i := int32(0); i <= r; i++ {
		ix.visitRingLocked(center, i, done, func(map[string]*indexEntry) {})
	}
	return done
}

// Claim matches driver to ride: it succeeds when the driver has a fresh
// position and is not matched to another ride. Claiming again for the same
// ride succeeds (idempotent).
func (ix *Index) Claim(driverID, rideID string) bool {
	if driverID == "" || rideID == "" {
		return false
	}
	cutoff := ix.cfg.Now().Add(-ix.cfg.TTL)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if cur, ok := ix.claims[driverID]; ok {
		return cur == rideID
	}
	e, ok := ix.drivers[driverID]
	if !ok || e.ts.Before(cutoff) {
		return false
	}
	ix.claims[driverID] = rideID
	return true
}

// Release ends driver's match so that Nearby returns the driver again. A
// claim lasts until released, whatever its driver's positions do.
func (ix *Index) Release(driverID string) {
	ix.mu.Lock()
	delete(ix.claims, driverID)
	ix.mu.Unlock()
}

// ClaimedBy returns the ride a driver is matched to.
func (ix *Index) ClaimedBy(driverID string) (rideID string, ok bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	rideID, ok = ix.claims[driverID]
	return rideID, ok
}

// Get returns a driver's newest position, fresh or not.
func (ix *Index) Get(driverID string) (Position, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	e, ok := ix.drivers[driverID]
	if !ok {
		return Position{}, false
	}
	return Position{DriverID: e.id, Lat: e.at.Lat, Lng: e.at.Lng, TS: e.ts}, true
}

// Len returns how many drivers the index holds, including expired ones not
// yet swept.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.drivers)
}

// Sweep removes drivers whose newest position is older than the TTL and
// returns how many it removed. Claims are kept.
func (ix *Index) Sweep() int {
	cutoff := ix.cfg.Now().Add(-ix.cfg.TTL)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n := 0
	for id, e := range ix.drivers {
		if e.ts.Before(cutoff) {
			ix.removeFromCellLocked(e)
			delete(ix.drivers, id)
			n++
		}
	}
	return n
}

// Run sweeps expired drivers every SweepInterval until ctx ends.
func (ix *Index) Run(ctx context.Context) error {
	t := time.NewTicker(ix.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			ix.Sweep()
		}
	}
}
