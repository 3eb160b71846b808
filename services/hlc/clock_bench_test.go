package hlc

import "testing"

func BenchmarkNow(b *testing.B) {
	c, _ := New(Config{Region: "eu"})
	for b.Loop() {
		c.Now()
	}
}

func BenchmarkUpdate(b *testing.B) {
	c, _ := New(Config{Region: "eu"})
	remote := Timestamp{WallMS: c.Now().WallMS, Region: "us"}
	for b.Loop() {
		_, _ = c.Update(remote)
	}
}
