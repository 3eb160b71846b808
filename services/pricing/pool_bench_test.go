package pricing

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/carpoolsla/carpoolsla/services/pricing/pricingpb"
)

// benchRides are quote requests spread over 64 pickup cells around Berlin.
func benchRides() []*pricingpb.QuoteRequest {
	out := make([]*pricingpb.QuoteRequest, 64)
	for i := range out {
		lat, lng := 52.45+float64(i/8)*0.02, 13.30+float64(i%8)*0.03
		out[i] = &pricingpb.QuoteRequest{RiderId: "r1",
			Pickup:  &pricingpb.LatLng{Lat: lat, Lng: lng},
			Dropoff: &pricingpb.LatLng{Lat: lat + 0.03, Lng: lng - 0.02}}
	}
	return out
}

// BenchmarkPoolQuote measures quotes per second through the pool to real
// pricing servers on 127.0.0.1 (full server instrumentation: metrics,
// no-op tracing, fault check), with as many callers as GOMAXPROCS x 16.
func BenchmarkPoolQuote(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(map[int]string{1: "targets=1", 2: "targets=2"}[n], func(b *testing.B) {
			var targets []string
			for range n {
				s, err := New(Config{Region: "eu", Registerer: prometheus.NewRegistry()})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- s.Run(ctx) }()
				b.Cleanup(func() { cancel(); <-done })
				targets = append(targets, s.Addr())
			}
			pool, err := NewPool(PoolConfig{Region: "eu", Targets: targets, Timeout: 5 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = pool.Close() })
			rides := benchRides()
			if _, err := pool.Quote(context.Background(), rides[0]); err != nil { // connect
				b.Fatal(err)
			}
			var next atomic.Uint64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := pool.Quote(context.Background(), rides[next.Add(1)%uint64(len(rides))]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "quotes/s")
		})
	}
}

// BenchmarkDirectClientQuote is BenchmarkPoolQuote/targets=1 with a bare
// generated client on one connection, to show what the pool adds.
func BenchmarkDirectClientQuote(b *testing.B) {
	s, err := New(Config{Region: "eu", Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	cc, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	client := pricingpb.NewPricingClient(cc)
	rides := benchRides()
	var next atomic.Uint64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := client.Quote(ctx, rides[next.Add(1)%uint64(len(rides))])
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "quotes/s")
}

// BenchmarkPricerQuote measures the pricing domain alone: validation,
// geohash, demand window, supply lookup, surge and fare.
func BenchmarkPricerQuote(b *testing.B) {
	cfg := Config{Region: "eu"}
	cfg.defaults()
	p := newPricer(&cfg, NewSupplyTracker(cfg.CellPrecision, cfg.SupplyTTL, time.Now), time.Now)
	var ins []quoteInput
	for _, r := range benchRides() {
		ins = append(ins, quoteInput{RiderID: r.RiderId,
			Pickup:  &LatLng{r.Pickup.Lat, r.Pickup.Lng},
			Dropoff: &LatLng{r.Dropoff.Lat, r.Dropoff.Lng}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := p.quote(ins[i%len(ins)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
