package pricing

import (
	"fmt"
	"math"
)

// LatLng is a WGS84 position in degrees.
type LatLng struct {
	Lat, Lng float64
}

// Validate checks that the position is a finite latitude in [-90, 90] and
// longitude in [-180, 180]. The error names the offending coordinate
// ("lat" or "lng") as its Field.
func (p LatLng) Validate() *FieldError {
	switch {
	case math.IsNaN(p.Lat) || p.Lat < -90 || p.Lat > 90:
		return &FieldError{Field: "lat", Reason: fmt.Sprintf("must be a latitude in [-90, 90], got %v", p.Lat)}
	case math.IsNaN(p.Lng) || p.Lng < -180 || p.Lng > 180:
		return &FieldError{Field: "lng", Reason: fmt.Sprintf("must be a longitude in [-180, 180], got %v", p.Lng)}
	}
	return nil
}

// earthRadiusM is the IUGG mean Earth radius in metres.
const earthRadiusM = 6371008.8

// HaversineMeters is the great-circle distance between a and b, in metres,
// on a sphere of the Earth's mean radius.
func HaversineMeters(a, b LatLng) float64 {
	const rad = math.Pi / 180
	lat1, lat2 := a.Lat*rad, b.Lat*rad
	dLat := (b.Lat - a.Lat) * rad
	dLng := (b.Lng - a.Lng) * rad
	s1, s2 := math.Sin(dLat/2), math.Sin(dLng/2)
	h := s1*s1 + math.Cos(lat1)*math.Cos(lat2)*s2*s2
	return 2 * earthRadiusM * math.Asin(math.Sqrt(min(1, h)))
}

// Geohash precisions a cell may use. 5 is a cell of about 4.9 km x 4.9 km,
// 6 (the default) about 1.2 km x 0.6 km at the equator.
const (
	MinCellPrecision     = 4
	MaxCellPrecision     = 8
	DefaultCellPrecision = 6
)

const geohashAlphabet = "0123456789bcdefghjkmnpqrstuvwxyz"

// Geohash encodes a position as a geohash of precision characters: the geo
// cell that surge is computed over. The location service computes the same
// cells with the same function, so that Supply.DriversIn and the pricing
// server agree on what a cell is. precision is clamped to [1, 12].
func Geohash(p LatLng, precision int) string {
	precision = max(1, min(12, precision))
	var buf [12]byte
	latLo, latHi := -90.0, 90.0
	lngLo, lngHi := -180.0, 180.0
	even := true // longitude first
	bit, ch := 0, 0
	for i := 0; i < precision; {
		if even {
			mid := (lngLo + lngHi) / 2
			if p.Lng >= mid {
				ch = ch<<1 | 1
				lngLo = mid
			} else {
				ch <<= 1
				lngHi = mid
			}
		} else {
			mid := (latLo + latHi) / 2
			if p.Lat >= mid {
				ch = ch<<1 | 1
				latLo = mid
			} else {
				ch <<= 1
				latHi = mid
			}
		}
		even = !even
		if bit++; bit == 5 {
			buf[i] = geohashAlphabet[ch]
			i++
			bit, ch = 0, 0
		}
	}
	return string(buf[:precision])
}
