package order

import (
	"time"

	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
)

// LatLng is a point in WGS84 degrees.
type LatLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// Price is what the rider pays, quoted by pricing when the ride is created.
type Price struct {
	// AmountMinor is the amount in the currency's minor unit (fen, cents).
	AmountMinor int64   `json:"amount_minor"`
	Currency    string  `json:"currency"`
	Surge       float64 `json:"surge"`
}

// Ride is one ride as stored and as answered by the API (the id is a JSON
// string, because JavaScript cannot hold a 63-bit integer). It holds no
// pointers, so a copy is a snapshot.
type Ride struct {
	ID      int64           `json:"id,string"`
	Region  string          `json:"region"` // where it was created
	RiderID string          `json:"rider_id"`
	Pickup  LatLng          `json:"pickup"`
	Dropoff LatLng          `json:"dropoff"`
	State   lifecycle.State `json:"state"`
	Price   Price           `json:"price"`
	// DriverID is set once the ride is matched.
	DriverID string `json:"driver_id,omitempty"`
	// ReceiptID is the payment receipt of a paid ride.
	ReceiptID string `json:"receipt_id,omitempty"`
	// Reason says why a ride was cancelled or its payment failed.
	Reason string `json:"reason,omitempty"`
	// IdempotencyKey is the creating request's Idempotency-Key, if any; a
	// store that indexes it (KeyIndex) makes a retry in any region that
	// holds the ride return it.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Version counts the writes of the ride: 1 when created, +1 per
	// transition.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}
