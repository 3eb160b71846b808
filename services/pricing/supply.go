package pricing

import (
	"sync"
	"time"
)

// Supply counts the drivers available to take a ride in a geo cell (a
// Geohash of the pricing server's CellPrecision). The location service
// satisfies it from its driver index; SupplyTracker satisfies it from
// explicit RecordSupply calls.
type Supply interface {
	DriversIn(cell string) int
}

// SupplyTracker is a Supply fed by explicit driver positions: a driver
// counts in the cell of its last reported position while it is available
// and its report is younger than the TTL. It is safe for concurrent use.
type SupplyTracker struct {
	precision int
	ttl       time.Duration
	now       func() time.Time

	mu      sync.Mutex
	drivers map[string]string               // driver id -> cell it is counted in
	cells   map[string]map[string]time.Time // cell -> available driver id -> last report
}

// NewSupplyTracker returns an empty tracker whose cells are geohashes of
// precision characters and whose reports expire after ttl on the clock now
// (nil means time.Now).
func NewSupplyTracker(precision int, ttl time.Duration, now func() time.Time) *SupplyTracker {
	if now == nil {
		now = time.Now
	}
	return &SupplyTracker{
		precision: precision, ttl: ttl, now: now,
		drivers: make(map[string]string), cells: make(map[string]map[string]time.Time),
	}
}

// RecordSupply reports a driver's position and whether it can take a ride.
// A later report replaces an earlier one.
func (s *SupplyTracker) RecordSupply(driverID string, at LatLng, available bool) {
	cell := Geohash(at, s.precision)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(driverID)
	if !available {
		return
	}
	ids := s.cells[cell]
	if ids == nil {
		ids = make(map[string]time.Time)
		s.cells[cell] = ids
	}
	ids[driverID] = now
	s.drivers[driverID] = cell
}

// Remove forgets a driver (gone offline).
func (s *SupplyTracker) Remove(driverID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(driverID)
}

func (s *SupplyTracker) removeLocked(driverID string) {
	cell, ok := s.drivers[driverID]
	if !ok {
		return
	}
	delete(s.drivers, driverID)
	if ids := s.cells[cell]; ids != nil {
		delete(ids, driverID)
		if len(ids) == 0 {
			delete(s.cells, cell)
		}
	}
}

// DriversIn returns the available drivers reported in cell within the TTL.
// It implements Supply.
func (s *SupplyTracker) DriversIn(cell string) int {
	cutoff := s.now().Add(-s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, seen := range s.cells[cell] {
		if seen.After(cutoff) {
			n++
		}
	}
	return n
}

// Sweep forgets drivers whose last report is older than the TTL and
// returns how many drivers remain.
func (s *SupplyTracker) Sweep() int {
	cutoff := s.now().Add(-s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, cell := range s.drivers {
		if !s.cells[cell][id].After(cutoff) {
			s.removeLocked(id)
		}
	}
	return len(s.drivers)
}
