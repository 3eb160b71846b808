package spec

import (
	"os"
	"testing"
)

// BenchmarkParse measures parsing, defaulting and validating the shipped spec.
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("../../deploy/sla.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("sla.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
