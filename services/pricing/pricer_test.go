package pricing

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// testConfig is a defaulted Config for region "eu" on clock.
func testConfig(t *testing.T, clock *fakeClock) *Config {
	t.Helper()
	cfg := Config{Region: "eu", Now: clock.Now}
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// supplyMap is a Supply with fixed counts per cell.
type supplyMap map[string]int

func (s supplyMap) DriversIn(cell string) int { return s[cell] }

func TestFare(t *testing.T) {
	cfg := testConfig(t, newFakeClock())
	tests := map[string]struct {
		distanceM     float64
		surgeMilli    int32
		distanceMinor int64
		totalMinor    int64
	}{
		"A zero-length ride costs the minimum fare.":          {0, 1000, 0, 500},
		"Ten km cost base plus ten times the per-km price.":   {10_000, 1000, 1200, 1450},
		"Surge multiplies the fare.":                          {10_000, 1500, 1200, 2175},
		"A short ride is lifted to the minimum before surge.": {1234, 1700, 148, 850},
		"Distance is rounded to the metre, half up.":          {9999.5, 1000, 1200, 1450},
		"Money rounds half up at the end.":                    {10_008.3, 1500, 1201, 2177}, // 1451 * 1.5 = 2176.5
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q := fare(cfg, tc.distanceM, tc.surgeMilli)
			if q.DistanceMinor != tc.distanceMinor || q.TotalMinor != tc.totalMinor || q.BaseMinor != 250 || q.Currency != "EUR" {
				t.Errorf("got distance %d total %d base %d %s; want distance %d total %d base 250 EUR",
					q.DistanceMinor, q.TotalMinor, q.BaseMinor, q.Currency, tc.distanceMinor, tc.totalMinor)
			}
		})
	}
}

func TestFareHalfUpOnPerKmPrice(t *testing.T) {
	cfg := testConfig(t, newFakeClock())
	cfg.PerKmMinor = 125
	if q := fare(cfg, 4, 1000); q.DistanceMinor != 1 { // 0.5 minor units
		t.Fatalf("4 m at 125/km = %d, want 1", q.DistanceMinor)
	}
}

func TestValidate(t *testing.T) {
	p := newPricer(testConfig(t, newFakeClock()), nil, time.Now)
	berlin, potsdam := &LatLng{52.52, 13.405}, &LatLng{52.39, 13.065}
	tests := map[string]struct {
		in     quoteInput
		fields []string
	}{
		"A complete request is valid.":                    {quoteInput{"r1", berlin, potsdam}, nil},
		"Pickup and dropoff may be the same point.":       {quoteInput{"r1", berlin, berlin}, nil},
		"A missing rider is named.":                       {quoteInput{"", berlin, potsdam}, []string{"rider_id"}},
		"An oversize rider id is named.":                  {quoteInput{strings.Repeat("r", 129), berlin, potsdam}, []string{"rider_id"}},
		"A missing pickup is named.":                      {quoteInput{"r1", nil, potsdam}, []string{"pickup"}},
		"A bad dropoff latitude names the coordinate.":    {quoteInput{"r1", berlin, &LatLng{91, 0}}, []string{"dropoff.lat"}},
		"A NaN pickup longitude names the coordinate.":    {quoteInput{"r1", &LatLng{0, math.NaN()}, potsdam}, []string{"pickup.lng"}},
		"Every bad field is listed, in request order.":    {quoteInput{"", nil, &LatLng{0, 200}}, []string{"rider_id", "pickup", "dropoff.lng"}},
		"A trip longer than the limit names the dropoff.": {quoteInput{"r1", berlin, &LatLng{40.4168, -3.7038}}, []string{"dropoff"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			errs := p.validate(tc.in)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields %v, want %v (%v)", got, tc.fields, errs)
			}
		})
	}
}

func TestQuoteSurgesWithDemandOverSupply(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(t, clock)
	pickup, dropoff := LatLng{52.52, 13.405}, LatLng{52.53, 13.415}
	cell := Geohash(pickup, 6)
	p := newPricer(cfg, supplyMap{cell: 2}, clock.Now)
	in := quoteInput{RiderID: "r1", Pickup: &pickup, Dropoff: &dropoff}

	wantSurge := []int32{1000, 1000, 1200, 1500, 1700, 2000} // demand 1..6 over 2 drivers
	for i, want := range wantSurge {
		q, err := p.quote(in)
		if err != nil {
			t.Fatal(err)
		}
		if q.Demand != i+1 || q.Supply != 2 || q.Cell != cell || q.SurgeMilli != want {
			t.Fatalf("quote %d: demand %d supply %d cell %s surge %d; want %d 2 %s %d", i+1, q.Demand, q.Supply, q.Cell, q.SurgeMilli, i+1, cell, want)
		}
		base := fare(cfg, HaversineMeters(pickup, dropoff), 1000)
		if wantTotal := (max(base.BaseMinor+base.DistanceMinor, cfg.MinimumFareMinor)*int64(want) + 500) / 1000; q.TotalMinor != wantTotal {
			t.Fatalf("quote %d total %d, want %d", i+1, q.TotalMinor, wantTotal)
		}
		if !q.QuotedAt.Equal(clock.Now()) || q.ExpiresAt.Sub(q.QuotedAt) != 2*time.Minute || !strings.HasPrefix(q.ID, "q-eu-") {
			t.Fatalf("quote %d: id %s quoted %v expires %v", i+1, q.ID, q.QuotedAt, q.ExpiresAt)
		}
	}
	// Another cell has its own demand; drivers there are none, and one
	// request is not surged.
	far := LatLng{48.8566, 2.3522}
	q, err := p.quote(quoteInput{RiderID: "r2", Pickup: &far, Dropoff: &far})
	if err != nil || q.Demand != 1 || q.Supply != 0 || q.SurgeMilli != 1000 || q.TotalMinor != cfg.MinimumFareMinor {
		t.Fatalf("other cell: %+v %v", q, err)
	}
	// Once the window has passed, the first cell's surge is gone.
	clock.Advance(cfg.DemandWindow)
	if q, _ := p.quote(in); q.Demand != 1 || q.SurgeMilli != 1000 {
		t.Fatalf("after the window: demand %d surge %d", q.Demand, q.SurgeMilli)
	}
}

func TestInvalidQuotesAreNotDemand(t *testing.T) {
	clock := newFakeClock()
	p := newPricer(testConfig(t, clock), nil, clock.Now)
	pickup := LatLng{52.52, 13.405}
	_, err := p.quote(quoteInput{Pickup: &pickup, Dropoff: &pickup})
	var verr ValidationError
	if !errors.As(err, &verr) || verr[0].Field != "rider_id" {
		t.Fatalf("got %v", err)
	}
	if n := p.demand.count(Geohash(pickup, 6), clock.Now()); n != 0 {
		t.Fatalf("a rejected request counted as demand: %d", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]func(*Config){
		"A config without a region is rejected.":            func(c *Config) { c.Region = "" },
		"A lower-case currency is rejected.":                func(c *Config) { c.Currency = "eur" },
		"A negative base fare is rejected.":                 func(c *Config) { c.BaseFareMinor = -1 },
		"An absurd per-km price is rejected.":               func(c *Config) { c.PerKmMinor = 1e9 },
		"A cell precision outside 4..8 is rejected.":        func(c *Config) { c.CellPrecision = 9 },
		"A window shorter than a ms per bucket is rejected": func(c *Config) { c.DemandWindow = time.Millisecond },
		"A bad surge curve is rejected.":                    func(c *Config) { c.Surge.Max = 0.5 },
		"A negative max trip is rejected.":                  func(c *Config) { c.MaxTripKm = -1 },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := *testConfig(t, newFakeClock())
			mutate(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Error("validated")
			}
		})
	}
}
