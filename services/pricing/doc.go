// Package pricing is the carpool pricing service: a gRPC server
// (carpool.pricing.v1.Pricing/Quote, generated code in pricingpb) that
// quotes the price of a ride with surge from supply and demand per geo cell,
// and Pool, the client connection pool callers such as the order service
// use, whose targets can be swapped at run time without dropping calls in
// flight.
//
// A quote is deterministic given the clock, the demand seen and the supply:
//
//	cell          = geohash(pickup, CellPrecision)
//	demand        = valid quote requests with a pickup in cell over DemandWindow, this one included
//	supply        = Supply.DriversIn(cell)
//	surge         = SurgeCurve.Milli(demand, supply) / 1000, in [1, Surge.Max]
//	distance_m    = round(haversine(pickup, dropoff))
//	distance_fare = round(PerKmMinor * distance_m / 1000)
//	total         = round(max(BaseFareMinor + distance_fare, MinimumFareMinor) * surge)
//
// All money is int64 minor units of Config.Currency, computed with integer
// arithmetic (half-up rounding), so the same inputs give the same cents on
// every machine.
package pricing
