package payment

import (
	"context"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkCharge measures the adapter's own cost per new charge: simulated
// providers without latency or failures, so no provider time is included.
func BenchmarkCharge(b *testing.B) {
	s, err := New(Config{Region: "sh-a", Providers: []ProviderConfig{{Name: "a"}, {Name: "b"}}}, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	r := ChargeRequest{RiderID: "rider-1", Amount: 2350, Currency: "CNY"}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		r.RideID = strconv.Itoa(i)
		r.IdempotencyKey = "k" + r.RideID
		if _, err := s.Charge(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChargeReplay measures a retry answered from the idempotency
// ledger.
func BenchmarkChargeReplay(b *testing.B) {
	s, err := New(Config{Region: "sh-a", Providers: []ProviderConfig{{Name: "a"}}}, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	r := ChargeRequest{RideID: "1", RiderID: "rider-1", Amount: 2350, Currency: "CNY", IdempotencyKey: "k"}
	if _, err := s.Charge(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Charge(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}
