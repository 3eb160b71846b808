package pricing

import (
	"testing"
	"time"
)

func TestSupplyTracker(t *testing.T) {
	clock := newFakeClock()
	s := NewSupplyTracker(6, 30*time.Second, clock.Now)
	here := LatLng{52.52, 13.405}
	there := LatLng{48.8566, 2.3522}
	cell, other := Geohash(here, 6), Geohash(there, 6)

	s.RecordSupply("d1", here, true)
	s.RecordSupply("d2", here, true)
	s.RecordSupply("d3", here, false)
	if got := s.DriversIn(cell); got != 2 {
		t.Fatalf("two available drivers, counted %d", got)
	}
	s.RecordSupply("d2", there, true) // moves
	if got, gotOther := s.DriversIn(cell), s.DriversIn(other); got != 1 || gotOther != 1 {
		t.Fatalf("after a move: %d here, %d there; want 1 and 1", got, gotOther)
	}
	s.RecordSupply("d1", here, false) // takes a ride
	if got := s.DriversIn(cell); got != 0 {
		t.Fatalf("a busy driver still counts: %d", got)
	}
	clock.Advance(20 * time.Second)
	s.RecordSupply("d4", here, true)
	clock.Advance(15 * time.Second) // d2's report is now 35 s old
	if got := s.DriversIn(other); got != 0 {
		t.Fatalf("a stale report still counts: %d", got)
	}
	if left := s.Sweep(); left != 1 {
		t.Fatalf("sweep kept %d drivers, want 1 (d4)", left)
	}
	s.Remove("d4")
	if got := s.DriversIn(cell); got != 0 {
		t.Fatalf("a removed driver still counts: %d", got)
	}
}
