package pricing_test

import (
	"context"
	"fmt"

	"github.com/carpoolsla/carpoolsla/services/pricing"
	"github.com/carpoolsla/carpoolsla/services/pricing/pricingpb"
)

// A region runs a pricing server; callers quote through a Pool, whose
// targets can later be swapped with SetTargets.
func Example() {
	srv, err := pricing.New(pricing.Config{Region: "eu"})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- srv.Run(ctx) }()
	defer func() { cancel(); <-stopped }()

	// Two drivers near the pickup, reported by the location service.
	berlin := pricing.LatLng{Lat: 52.5200, Lng: 13.4050}
	srv.Tracker().RecordSupply("driver-1", berlin, true)
	srv.Tracker().RecordSupply("driver-2", berlin, true)

	pool, err := pricing.NewPool(pricing.PoolConfig{Region: "eu", Targets: []string{srv.Addr()}})
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	req := &pricingpb.QuoteRequest{
		RiderId: "rider-42",
		Pickup:  &pricingpb.LatLng{Lat: berlin.Lat, Lng: berlin.Lng},
		Dropoff: &pricingpb.LatLng{Lat: 52.5070, Lng: 13.3320},
	}
	for range 4 {
		q, err := pool.Quote(ctx, req)
		if err != nil {
			panic(err)
		}
		fmt.Printf("demand %d supply %d surge %.1fx: %d.%02d %s\n", q.GetDemand(), q.GetSupply(),
			float64(q.GetSurgeMilli())/1000, q.GetTotal().GetMinorUnits()/100, q.GetTotal().GetMinorUnits()%100, q.GetTotal().GetCurrency())
	}
	// Output:
	// demand 1 supply 2 surge 1.0x: 8.68 EUR
	// demand 2 supply 2 surge 1.0x: 8.68 EUR
	// demand 3 supply 2 surge 1.2x: 10.42 EUR
	// demand 4 supply 2 surge 1.5x: 13.02 EUR
}
