package codegen

import (
	"testing"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// BenchmarkGenerate measures generating every artefact of the shipped spec
// (rules, rule tests with rendered annotations, Alertmanager config checked in
// process, dashboards with every query parsed, runbooks).
func BenchmarkGenerate(b *testing.B) {
	s, err := spec.Load("../deploy/sla.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Generate(s, DefaultOut); err != nil {
			b.Fatal(err)
		}
	}
}
