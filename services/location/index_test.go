package location

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

func newTestIndex(t *testing.T, clk *fakeClock, cfg IndexConfig) *Index {
	t.Helper()
	cfg.Now = clk.Now
	ix, err := NewIndex(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func ids(ds []Driver) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func TestIndexNearbyReturnsTheNearestFirst(t *testing.T) {
	clk := newFakeClock()
	ix := newTestIndex(t, clk, IndexConfig{})
	at := LatLng{52.52, 13.405}
	// Drivers 0.5, 1.5, 3 and 20 km north of the point, and one 2 km east.
	for _, d := range []struct {
		id       string
		dLat     float64
		dLng     float64
		distance float64
	}{{"far", 0.18, 0, 20e3}, {"d3", 0.027, 0, 3e3}, {"d05", 0.0045, 0, 500}, {"east2", 0, 0.0295, 2e3}, {"d15", 0.0135, 0, 1.5e3}} {
		ix.Update(Position{DriverID: d.id, Lat: at.Lat + d.dLat, Lng: at.Lng + d.dLng, TS: clk.Now()})
	}
	ctx := context.Background()
	tests := map[string]struct {
		n    int
		want []string
	}{
		"One driver is the nearest.":               {1, []string{"d05"}},
		"Three drivers come in order of distance.": {3, []string{"d05", "d15", "east2"}},
		"Asking for more than exist returns all.":  {10, []string{"d05", "d15", "east2", "d3", "far"}},
		"Asking for none returns none.":            {0, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ix.Nearby(ctx, at, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Fatalf("got %v, want %v", ids(got), tc.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].DistanceMeters < got[i-1].DistanceMeters {
					t.Fatalf("not sorted by distance: %+v", got)
				}
			}
		})
	}
}

// TestIndexNearbyMatchesBruteForce checks the ring search against sorting
// every driver by distance, over random drivers and points (including near
// the antimeridian).
func TestIndexNearbyMatchesBruteForce(t *testing.T) {
	clk := newFakeClock()
	ix := newTestIndex(t, clk, IndexConfig{CellDegrees: 0.05, MaxRings: 2000})
	rng := rand.New(rand.NewPCG(1, 2))
	var all []Position
	for i := range 400 {
		p := Position{DriverID: fmt.Sprintf("d%03d", i), Lat: 10 + rng.Float64()*2, Lng: 179 + rng.Float64()*2, TS: clk.Now()}
		if p.Lng > 180 {
			p.Lng -= 360
		}
		all = append(all, p)
		ix.Update(p)
	}
	for q := range 50 {
		at := LatLng{10 + rng.Float64()*2, 179 + rng.Float64()*2}
		if at.Lng > 180 {
			at.Lng -= 360
		}
		n := 1 + q%7
		got, err := ix.Nearby(context.Background(), at, n)
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(all)
		sort.Slice(want, func(i, j int) bool {
			return haversineMeters(at, want[i].At()) < haversineMeters(at, want[j].At())
		})
		for i := range n {
			if got[i].ID != want[i].DriverID {
				t.Fatalf("query %d at %v: result %d is %s at %.0f m, want %s at %.0f m", q, at, i,
					got[i].ID, got[i].DistanceMeters, want[i].DriverID, haversineMeters(at, want[i].At()))
			}
		}
	}
}

func TestIndexTTL(t *testing.T) {
	clk := newFakeClock()
	ix := newTestIndex(t, clk, IndexConfig{TTL: 30 * time.Second})
	at := LatLng{1, 1}
	ix.Update(Position{DriverID: "old", Lat: 1, Lng: 1, TS: clk.Now()})
	clk.Advance(20 * time.Second)
	ix.Update(Position{DriverID: "new", Lat: 1, Lng: 1.001, TS: clk.Now()})
	ix.Update(Position{DriverID: "stale-on-arrival", Lat: 1, Lng: 1, TS: clk.Now().Add(-31 * time.Second)})
	got, _ := ix.Nearby(context.Background(), at, 5)
	if !slices.Equal(ids(got), []string{"old", "new"}) {
		t.Fatalf("at 20 s: %v", ids(got))
	}
	clk.Advance(11 * time.Second) // old is 31 s old, new 11 s
	got, _ = ix.Nearby(context.Background(), at, 5)
	if !slices.Equal(ids(got), []string{"new"}) {
		t.Fatalf("at 31 s: %v, want only the fresh driver", ids(got))
	}
	if ix.Claim("old", "r1") {
		t.Fatal("a driver with an expired position was claimed")
	}
	if ix.Len() != 2 {
		t.Fatalf("len = %d before the sweep", ix.Len())
	}
	if n := ix.Sweep(); n != 1 || ix.Len() != 1 {
		t.Fatalf("sweep removed %d, len %d", n, ix.Len())
	}
}

func TestIndexUpdateKeepsTheNewest(t *testing.T) {
	clk := newFakeClock()
	ix := newTestIndex(t, clk, IndexConfig{})
	t0 := clk.Now()
	ix.Update(Position{DriverID: "d", Lat: 1, Lng: 1, TS: t0})
	ix.Update(Position{DriverID: "d", Lat: 2, Lng: 2, TS: t0.Add(time.Second)})
	ix.Update(Position{DriverID: "d", Lat: 3, Lng: 3, TS: t0}) // late, out of order
	p, ok := ix.Get("d")
	if !ok || p.Lat != 2 {
		t.Fatalf("got %+v, want the newest position (lat 2)", p)
	}
	// It moved cells: the search finds it at its new place only (1° is
	// beyond the default 50 rings of 0.01°).
	if got, _ := ix.Nearby(context.Background(), LatLng{2, 2}, 1); len(got) != 1 || got[0].Lat != 2 {
		t.Fatalf("nearby the new place %+v", got)
	}
	if got, _ := ix.Nearby(context.Background(), LatLng{1, 1}, 1); len(got) != 0 {
		t.Fatalf("nearby the old place %+v", got)
	}
	if len(ix.cells) != 1 {
		t.Fatalf("%d cells hold drivers, want 1", len(ix.cells))
	}
}

func TestIndexClaim(t *testing.T) {
	clk := newFakeClock()
	ix := newTestIndex(t, clk, IndexConfig{})
	ix.Update(Position{DriverID: "d1", Lat: 1, Lng: 1, TS: clk.Now()})
	ix.Update(Position{DriverID: "d2", Lat: 1, Lng: 1.01, TS: clk.Now()})
	steps := []struct {
		name string
		do   func() bool
		want bool
	}{
		{"A free driver is claimed.", func() bool { return ix.Claim("d1", "r1") }, true},
		{"Claiming again for the same ride succeeds.", func() bool { return ix.Claim("d1", "r1") }, true},
		{"Another ride cannot claim a matched driver.", func() bool { return ix.Claim("d1", "r2") }, false},
		{"An unknown driver cannot be claimed.", func() bool { return ix.Claim("nobody", "r2") }, false},
		{"An empty ride id claims nothing.", func() bool { return ix.Claim("d2", "") }, false},
		{"A claimed driver is not nearby.", func() bool {
			got, _ := ix.Nearby(context.Background(), LatLng{1, 1}, 5)
			return slices.Equal(ids(got), []string{"d2"})
		}, true},
		{"After release another ride may claim the driver.", func() bool { ix.Release("d1"); return ix.Claim("d1", "r2") }, true},
		{"The claim names its ride.", func() bool { r, ok := ix.ClaimedBy("d1"); return ok && r == "r2" }, true},
	}
	for _, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("%s got %v", s.name, got)
		}
	}
}

// TestIndexClaimIsExclusiveUnderRace: many rides race for few drivers;
// every driver ends up with exactly one ride.
func TestIndexClaimIsExclusiveUnderRace(t *testing.T) {
	clk := newFakeClock()
	ix := newTestIndex(t, clk, IndexConfig{})
	for i := range 10 {
		ix.Update(Position{DriverID: fmt.Sprintf("d%d", i), Lat: 1, Lng: 1 + float64(i)*0.001, TS: clk.Now()})
	}
	var mu sync.Mutex
	won := map[string][]string{}
	var wg sync.WaitGroup
	for r := range 50 {
		wg.Go(func() {
			ride := fmt.Sprintf("r%d", r)
			ds, err := ix.Nearby(context.Background(), LatLng{1, 1}, 10)
			if err != nil {
				t.Error(err)
				return
			}
			for _, d := range ds {
				if ix.Claim(d.ID, ride) {
					mu.Lock()
					won[d.ID] = append(won[d.ID], ride)
					mu.Unlock()
					return
				}
			}
		})
		wg.Go(func() { // concurrent updates
			ix.Update(Position{DriverID: fmt.Sprintf("d%d", r%10), Lat: 1, Lng: 1, TS: clk.Now().Add(time.Duration(r) * time.Millisecond)})
		})
	}
	wg.Wait()
	if len(won) != 10 {
		t.Fatalf("%d drivers matched, want all 10", len(won))
	}
	for d, rides := range won {
		if len(rides) != 1 {
			t.Errorf("driver %s matched to %v", d, rides)
		}
	}
}

func TestIndexNearbyHonoursContext(t *testing.T) {
	clk := newFakeClock()
	ix := newTestIndex(t, clk, IndexConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ix.Nearby(ctx, LatLng{1, 1}, 1); err == nil {
		t.Fatal("a cancelled search succeeded")
	}
}

func TestIndexConfigValidation(t *testing.T) {
	for name, cfg := range map[string]IndexConfig{
		"A negative cell is refused.":       {CellDegrees: -1},
		"A cell wider than 10° is refused.": {CellDegrees: 11},
		"A negative TTL is refused.":        {TTL: -time.Second},
	} {
		if _, err := NewIndex(cfg); err == nil {
			t.Errorf("%s It was accepted.", name)
		}
	}
}
