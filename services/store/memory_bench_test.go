package store

import (
	"fmt"
	"testing"
)

// BenchmarkPut measures a local write: HLC tick, row install, outbox
// append.
func BenchmarkPut(b *testing.B) {
	m, _ := NewMemory(Config{Region: "eu"})
	value := []byte(`{"rider":"u-123","state":"matched","pickup":[52.52,13.405],"dropoff":[52.5,13.39]}`)
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprint("ride-", i)
	}
	i := 0
	for b.Loop() {
		if _, err := m.Put(ctx, "rides", keys[i%len(keys)], value); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkScanRange measures a verifier page of 1,000 rows out of 100,000.
func BenchmarkScanRange(b *testing.B) {
	m, _ := NewMemory(Config{Region: "eu"})
	for i := range 100_000 {
		_, _ = m.Put(ctx, "rides", fmt.Sprintf("ride-%06d", i), []byte(`1`))
	}
	for b.Loop() {
		if rs, err := m.ScanRange(ctx, "rides", "ride-050000", "", 1000); err != nil || len(rs) != 1000 {
			b.Fatal(len(rs), err)
		}
	}
}
