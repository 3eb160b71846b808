package pricing

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// FieldError is a rejected request field: Field is its path in the request
// ("pickup.lat", "rider_id") and Reason says what is wrong and what is
// expected.
type FieldError struct {
	Field  string
	Reason string
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError lists every rejected field of a request, in request
// order.
type ValidationError []*FieldError

// Error implements error.
func (v ValidationError) Error() string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = f.Error()
	}
	return "invalid quote request: " + strings.Join(parts, "; ")
}

// maxRiderIDLen bounds rider_id, in bytes.
const maxRiderIDLen = 128

// quoteInput is a quote request in domain terms; a nil position is absent.
type quoteInput struct {
	RiderID string
	Pickup  *LatLng
	Dropoff *LatLng
}

// quote is a priced ride.
type quote struct {
	ID            string
	Cell          string
	Demand        int
	Supply        int
	SurgeMilli    int32
	DistanceM     int64
	BaseMinor     int64
	DistanceMinor int64
	TotalMinor    int64
	Currency      string
	QuotedAt      time.Time
	ExpiresAt     time.Time
}

// pricer is the pricing domain: validation, the cell's demand and supply,
// the surge curve and the fare. It is deterministic given its clock, except
// for quote ids.
type pricer struct {
	cfg    *Config
	demand *demandWindow
	supply Supply
	now    func() time.Time
}

func newPricer(cfg *Config, supply Supply, now func() time.Time) *pricer {
	return &pricer{cfg: cfg, demand: newDemandWindow(cfg.DemandWindow, cfg.DemandBuckets), supply: supply, now: now}
}

// validate returns every rejected field of in, or nil.
func (p *pricer) validate(in quoteInput) ValidationError {
	var errs ValidationError
	switch {
	case in.RiderID == "":
		errs = append(errs, &FieldError{Field: "rider_id", Reason: "required"})
	case len(in.RiderID) > maxRiderIDLen:
		errs = append(errs, &FieldError{Field: "rider_id", Reason: fmt.Sprintf("at most %d bytes, got %d", maxRiderIDLen, len(in.RiderID))})
	}
	for _, pos := range []struct {
		name string
		p    *LatLng
	}{{"pickup", in.Pickup}, {"dropoff", in.Dropoff}} {
		if pos.p == nil {
			errs = append(errs, &FieldError{Field: pos.name, Reason: "required"})
			continue
		}
		if fe := pos.p.Validate(); fe != nil {
			errs = append(errs, &FieldError{Field: pos.name + "." + fe.Field, Reason: fe.Reason})
		}
	}
	if len(errs) == 0 {
		if km := HaversineMeters(*in.Pickup, *in.Dropoff) / 1000; km > p.cfg.MaxTripKm {
			errs = append(errs, &FieldError{Field: "dropoff", Reason: fmt.Sprintf("trip of %.1f km is longer than the %g km limit", km, p.cfg.MaxTripKm)})
		}
	}
	return errs
}

// quote prices a ride. A valid request counts as demand in its pickup's
// cell, before the surge is computed.
func (p *pricer) quote(in quoteInput) (quote, error) {
	if errs := p.validate(in); errs != nil {
		return quote{}, errs
	}
	now := p.now()
	cell := Geohash(*in.Pickup, p.cfg.CellPrecision)
	demand := p.demand.add(cell, now)
	supply := 0
	if p.supply != nil {
		supply = max(0, p.supply.DriversIn(cell))
	}
	q := fare(p.cfg, HaversineMeters(*in.Pickup, *in.Dropoff), p.cfg.Surge.Milli(demand, supply))
	q.ID = "q-" + p.cfg.Region + "-" + strconv.FormatUint(rand.Uint64(), 36)
	q.Cell, q.Demand, q.Supply = cell, demand, supply
	q.QuotedAt, q.ExpiresAt = now, now.Add(p.cfg.QuoteTTL)
	return q, nil
}

// fare is the money part of a quote, in integer minor units with half-up
// rounding:
//
//	distance_fare = round(PerKmMinor * distance_m / 1000)
//	total         = round(max(BaseFareMinor + distance_fare, MinimumFareMinor) * surge_milli / 1000)
func fare(cfg *Config, distanceM float64, surgeMilli int32) quote {
	m := int64(math.Round(distanceM))
	distance := (cfg.PerKmMinor*m + 500) / 1000
	subtotal := max(cfg.BaseFareMinor+distance, cfg.MinimumFareMinor)
	return quote{
		DistanceM:     m,
		SurgeMilli:    surgeMilli,
		BaseMinor:     cfg.BaseFareMinor,
		DistanceMinor: distance,
		TotalMinor:    (subtotal*int64(surgeMilli) + 500) / 1000,
		Currency:      cfg.Currency,
	}
}
