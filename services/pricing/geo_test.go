package pricing

import (
	"math"
	"testing"
)

func TestHaversineMeters(t *testing.T) {
	tests := map[string]struct {
		a, b LatLng
		want float64 // metres
		tol  float64
	}{
		"The distance from a point to itself is zero.":  {LatLng{48.8566, 2.3522}, LatLng{48.8566, 2.3522}, 0, 0},
		"One degree of latitude is about 111.2 km.":     {LatLng{0, 0}, LatLng{1, 0}, 111195, 1},
		"Paris to London is about 343.9 km.":            {LatLng{48.8566, 2.3522}, LatLng{51.5074, -0.1278}, 343900, 500},
		"Antipodes are half the circumference apart.":   {LatLng{0, 0}, LatLng{0, 180}, math.Pi * earthRadiusM, 1},
		"Crossing the antimeridian takes the short way": {LatLng{0, 179.5}, LatLng{0, -179.5}, 111195, 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := HaversineMeters(tc.a, tc.b)
			if math.Abs(got-tc.want) > tc.tol {
				t.Errorf("got %.1f m, want %.1f ± %.1f", got, tc.want, tc.tol)
			}
			if back := HaversineMeters(tc.b, tc.a); math.Abs(back-got) > 1e-6 {
				t.Errorf("not symmetric: %v vs %v", got, back)
			}
		})
	}
}

func TestGeohash(t *testing.T) {
	f := func(p LatLng, precision int, want string) {
		t.Helper()
		if got := Geohash(p, precision); got != want {
			t.Errorf("Geohash(%v, %d) = %q, want %q", p, precision, got, want)
		}
	}
	// Reference values from the geohash definition (Niemeyer's examples).
	f(LatLng{57.64911, 10.40744}, 11, "u4pruydqqvj")
	f(LatLng{42.6, -5.6}, 5, "ezs42")
	f(LatLng{57.64911, 10.40744}, 6, "u4pruy")
	f(LatLng{0, 0}, 6, "s00000")
	f(LatLng{-90, -180}, 4, "0000")
	f(LatLng{90, 180}, 4, "zzzz")
	f(LatLng{1, 1}, 0, "s")             // clamped to 1
	f(LatLng{1, 1}, 99, "s00twy01mtw0") // clamped to 12
}

func TestGeohashCellsNest(t *testing.T) {
	p := LatLng{52.52, 13.405}
	for prec := 2; prec <= 12; prec++ {
		long, short := Geohash(p, prec), Geohash(p, prec-1)
		if long[:prec-1] != short {
			t.Fatalf("precision %d cell %q does not nest in %q", prec, long, short)
		}
	}
}

func TestLatLngValidate(t *testing.T) {
	tests := map[string]struct {
		p     LatLng
		field string // "" = valid
	}{
		"Zero is a valid position.":           {LatLng{0, 0}, ""},
		"The poles and antimeridian are ok.":  {LatLng{90, -180}, ""},
		"A latitude above 90 is rejected.":    {LatLng{90.0001, 0}, "lat"},
		"A NaN latitude is rejected.":         {LatLng{math.NaN(), 0}, "lat"},
		"A longitude below -180 is rejected.": {LatLng{0, -180.5}, "lng"},
		"An infinite longitude is rejected.":  {LatLng{0, math.Inf(1)}, "lng"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fe := tc.p.Validate()
			switch {
			case tc.field == "" && fe != nil:
				t.Errorf("unexpected error %v", fe)
			case tc.field != "" && (fe == nil || fe.Field != tc.field):
				t.Errorf("got %v, want an error on %s", fe, tc.field)
			}
		})
	}
}
