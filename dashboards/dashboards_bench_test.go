package dashboards

import "testing"

func BenchmarkGenerate(b *testing.B) {
	s := shippedSpec(b)
	for b.Loop() {
		if _, err := Generate(s); err != nil {
			b.Fatal(err)
		}
	}
}
