package order

import (
	"context"
)

// The order service's dependencies, declared here where they are consumed.
// The region wiring adapts the real services (ids, pricing, location,
// payment, the region store, the ride cache) to them; the tests use fakes.

// IDs hands out unique ride ids (the snowflake generator satisfies it).
type IDs interface {
	Next() (int64, error)
}

// QuoteRequest asks pricing for the price of a ride.
type QuoteRequest struct {
	RiderID         string
	Pickup, Dropoff LatLng
}

// Quote is pricing's answer.
type Quote struct {
	PriceMinor int64
	Currency   string
	Surge      float64
}

// Quoter prices a ride (the pricing gRPC client satisfies it through an
// adapter). It must honour ctx's deadline.
type Quoter interface {
	Quote(ctx context.Context, req QuoteRequest) (Quote, error)
}

// Driver is a driver position from the location index.
type Driver struct {
	ID  string
	Pos LatLng
}

// DriverIndex finds up to n drivers near a point, nearest first (the
// location service's index satisfies it).
type DriverIndex interface {
	Nearby(ctx context.Context, p LatLng, n int) ([]Driver, error)
}

// Claimer makes sure one driver serves one ride at a time. Claim returns
// true when the driver is now held for rideID (or already was); false when
// another ride holds it. Release frees the driver if rideID holds it.
// MemClaims is the in-process implementation used by default.
type Claimer interface {
	Claim(ctx context.Context, driverID string, rideID int64) (bool, error)
	Release(ctx context.Context, driverID string, rideID int64) error
}

// ChargeRequest charges a rider for a ride. The IdempotencyKey is the same
// on every retry of the same charge, so a provider charges at most once.
type ChargeRequest struct {
	RideID         int64
	RiderID        string
	AmountMinor    int64
	Currency       string
	IdempotencyKey string
}

// Receipt is a successful charge.
type Receipt struct{ ID string }

// RefundRequest undoes a charge. ReceiptID names it when known; when it is
// empty, the refund targets whatever charge was made under ChargeKey (a
// charge whose answer was lost may still have gone through). Refunding
// nothing is not an error.
type RefundRequest struct {
	RideID         int64
	ReceiptID      string
	ChargeKey      string
	IdempotencyKey string
}

// Payer charges and refunds (the payment service's adapter satisfies it).
type Payer interface {
	Charge(ctx context.Context, req ChargeRequest) (Receipt, error)
	Refund(ctx context.Context, req RefundRequest) error
}

// RideGetter reads a ride; found is false when it does not exist.
type RideGetter interface {
	GetRide(ctx context.Context, id int64) (r Ride, found bool, err error)
}

// Store keeps rides. The region store (with its outbox and replication)
// satisfies it through an adapter; MemStore is the in-process default.
// Transitions read and write it directly (never through a cache), one ride
// at a time.
type Store interface {
	RideGetter
	PutRide(ctx context.Context, r Ride) error
}

// KeyIndex is optional on a Store: it finds a ride by the rider and the
// Idempotency-Key that created it, so a retry that reaches the region after
// a restart (or a region the ride was replicated to) returns the same ride.
type KeyIndex interface {
	RideByKey(ctx context.Context, riderID, key string) (r Ride, found bool, err error)
}

// Invalidator drops a ride from the ride-state cache; it is called after
// every write of the ride.
type Invalidator interface {
	Invalidate(rideID string)
}

type nopInvalidator struct{}

func (nopInvalidator) Invalidate(string) {}
