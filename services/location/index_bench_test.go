package location

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// cityIndex holds n drivers spread over a 20 km square around Berlin.
func cityIndex(b *testing.B, n int) (*Index, []Position) {
	ix, err := NewIndex(IndexConfig{TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	ps := make([]Position, n)
	now := time.Now()
	for i := range ps {
		ps[i] = Position{DriverID: fmt.Sprintf("d%05d", i), Lat: 52.43 + rng.Float64()*0.18, Lng: 13.25 + rng.Float64()*0.3, TS: now}
		ix.Update(ps[i])
	}
	return ix, ps
}

func BenchmarkIndexUpdate(b *testing.B) {
	ix, ps := cityIndex(b, 10000)
	base := time.Now()
	b.ResetTimer()
	for i := range b.N {
		p := ps[i%len(ps)]
		p.Lng += 0.0001
		p.TS = base.Add(time.Duration(i) * time.Nanosecond)
		ix.Update(p)
	}
}

func BenchmarkIndexNearby(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("drivers=%d/k=5", n), func(b *testing.B) {
			ix, _ := cityIndex(b, n)
			rng := rand.New(rand.NewPCG(2, 2))
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				at := LatLng{52.43 + rng.Float64()*0.18, 13.25 + rng.Float64()*0.3}
				if _, err := ix.Nearby(ctx, at, 5); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
