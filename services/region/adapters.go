package region

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/carpoolsla/carpoolsla/services/location"
	"github.com/carpoolsla/carpoolsla/services/order"
	"github.com/carpoolsla/carpoolsla/services/payment"
	"github.com/carpoolsla/carpoolsla/services/pricing"
	"github.com/carpoolsla/carpoolsla/services/pricing/pricingpb"
	"github.com/carpoolsla/carpoolsla/services/ridecache"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// Tables of the region store used by the order service.
const (
	RidesTable    = "rides"
	RideKeysTable = "ride_keys"
)

// rideStore keeps rides in the region store, so they replicate to every
// other region, and indexes idempotency keys (order.KeyIndex) so a retried
// create finds the same ride in any region it has reached.
type rideStore struct{ st store.Store }

func rideKey(id int64) string { return strconv.FormatInt(id, 10) }

func (r rideStore) GetRide(ctx context.Context, id int64) (order.Ride, bool, error) {
	rec, ok, err := r.st.Get(ctx, RidesTable, rideKey(id))
	if err != nil || !ok || rec.Deleted {
		return order.Ride{}, false, err
	}
	var ride order.Ride
	if err := json.Unmarshal(rec.Value, &ride); err != nil {
		return order.Ride{}, false, fmt.Errorf("decoding ride %d from the store: %w", id, err)
	}
	return ride, true, nil
}

func (r rideStore) PutRide(ctx context.Context, ride order.Ride) error {
	b, err := json.Marshal(ride)
	if err != nil {
		return fmt.Errorf("encoding ride %d: %w", ride.ID, err)
	}
	if ride.IdempotencyKey != "" && ride.Version <= 1 {
		if _, err := r.st.Put(ctx, RideKeysTable, ride.RiderID+"/"+ride.IdempotencyKey, []byte(strconv.Quote(rideKey(ride.ID)))); err != nil {
			return fmt.Errorf("indexing the idempotency key of ride %d: %w", ride.ID, err)
		}
	}
	if _, err := r.st.Put(ctx, RidesTable, rideKey(ride.ID), b); err != nil {
		return fmt.Errorf("storing ride %d: %w", ride.ID, err)
	}
	return nil
}

func (r rideStore) RideByKey(ctx context.Context, riderID, key string) (order.Ride, bool, error) {
	rec, ok, err := r.st.Get(ctx, RideKeysTable, riderID+"/"+key)
	if err != nil || !ok || rec.Deleted {
		return order.Ride{}, false, err
	}
	var s string
	if err := json.Unmarshal(rec.Value, &s); err != nil {
		return order.Ride{}, false, fmt.Errorf("decoding the idempotency index: %w", err)
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return order.Ride{}, false, fmt.Errorf("decoding the idempotency index: %w", err)
	}
	return r.GetRide(ctx, id)
}

// errNoRide tells the cache's loader found nothing.
var errNoRide = errors.New("ride not found")

// cachedRides reads rides through the ride-state cache.
type cachedRides struct{ c *ridecache.Cache[order.Ride] }

func (c cachedRides) GetRide(ctx context.Context, id int64) (order.Ride, bool, error) {
	r, err := c.c.Get(ctx, rideKey(id))
	if errors.Is(err, errNoRide) {
		return order.Ride{}, false, nil
	}
	return r, err == nil, err
}

func (c cachedRides) Invalidate(rideID string) { c.c.Invalidate(rideID) }

// drivers adapts the location index to order.DriverIndex and order.Claimer.
type drivers struct{ ix *location.Index }

func (d drivers) Nearby(ctx context.Context, p order.LatLng, n int) ([]order.Driver, error) {
	ds, err := d.ix.Nearby(ctx, location.LatLng{Lat: p.Lat, Lng: p.Lng}, n)
	if err != nil {
		return nil, err
	}
	out := make([]order.Driver, len(ds))
	for i, x := range ds {
		out[i] = order.Driver{ID: x.ID, Pos: order.LatLng{Lat: x.Lat, Lng: x.Lng}}
	}
	return out, nil
}

func (d drivers) Claim(_ context.Context, driverID string, rideID int64) (bool, error) {
	return d.ix.Claim(driverID, rideKey(rideID)), nil
}

func (d drivers) Release(_ context.Context, driverID string, rideID int64) error {
	if by, ok := d.ix.ClaimedBy(driverID); ok && by == rideKey(rideID) {
		d.ix.Release(driverID)
	}
	return nil
}

// releaseFinished frees this region's claim on a driver when a replicated
// ride that driver was matched to has ended elsewhere: a ride matched here and
// completed through another region's gateway releases its driver only
// there, so without this the claim would stay until the driver reconnects.
func (d drivers) releaseFinished(ctx context.Context, rec store.Record) {
	if rec.Deleted {
		return
	}
	var ride order.Ride
	if err := json.Unmarshal(rec.Value, &ride); err != nil || ride.DriverID == "" || !ride.State.Terminal() {
		return
	}
	_ = d.Release(ctx, ride.DriverID, ride.ID)
}

// quoter adapts the pricing pool to order.Quoter.
type quoter struct{ p *pricing.Pool }

func (q quoter) Quote(ctx context.Context, r order.QuoteRequest) (order.Quote, error) {
	resp, err := q.p.Quote(ctx, &pricingpb.QuoteRequest{RiderId: r.RiderID,
		Pickup:  &pricingpb.LatLng{Lat: r.Pickup.Lat, Lng: r.Pickup.Lng},
		Dropoff: &pricingpb.LatLng{Lat: r.Dropoff.Lat, Lng: r.Dropoff.Lng}})
	if err != nil {
		return order.Quote{}, err
	}
	return order.Quote{PriceMinor: resp.GetTotal().GetMinorUnits(), Currency: resp.GetTotal().GetCurrency(), Surge: float64(resp.GetSurgeMilli()) / 1000}, nil
}

// payer adapts the payment service to order.Payer.
type payer struct{ s *payment.Service }

func (p payer) Charge(ctx context.Context, r order.ChargeRequest) (order.Receipt, error) {
	rc, err := p.s.Charge(ctx, payment.ChargeRequest{RideID: rideKey(r.RideID), RiderID: r.RiderID, Amount: r.AmountMinor, Currency: r.Currency, IdempotencyKey: r.IdempotencyKey})
	if err != nil {
		return order.Receipt{}, err
	}
	return order.Receipt{ID: rc.ID}, nil
}

func (p payer) Refund(ctx context.Context, r order.RefundRequest) error {
	_, err := p.s.Refund(ctx, payment.RefundRequest{PaymentID: r.ReceiptID, ChargeKey: r.ChargeKey, Reason: "ride compensation"})
	return err
}
