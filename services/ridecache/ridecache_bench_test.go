package ridecache

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func benchCache(b *testing.B, keys int) *Cache[rideState] {
	b.Helper()
	st := newStore()
	for i := range keys {
		st.set(strconv.Itoa(i), "in_progress")
	}
	c, err := New(Config{Region: "sh-a"}, st.load, nil, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range keys {
		if _, err := c.Get(context.Background(), strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// BenchmarkGetHit reads one cached ride over and over.
func BenchmarkGetHit(b *testing.B) {
	c := benchCache(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, "0"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetHitParallel reads 1024 cached rides from every processor.
func BenchmarkGetHitParallel(b *testing.B) {
	const keys = 1024
	c := benchCache(b, keys)
	names := make([]string, keys)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := int(seed.Add(7919))
		for pb.Next() {
			i++
			if _, err := c.Get(ctx, names[i%keys]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkInvalidateThenGet measures a transition followed by a read: an
// invalidation, a miss, the lock, a load and the fill.
func BenchmarkInvalidateThenGet(b *testing.B) {
	c := benchCache(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c.Invalidate("0")
		if _, err := c.Get(ctx, "0"); err != nil {
			b.Fatal(err)
		}
	}
}
