package spec

import "math"

// Score maps a measurement to a score from 0 to 100 through the curve.
// NaN (no measurement) scores 0.
//
// Linear: 100 at or better than Good, 0 at or worse than Bad, linear in
// between; "better" means lower when Good < Bad and higher when Good > Bad.
// Step: 100 at or better than Good, else 0; the direction comes from Bad as
// for linear, and is "higher is better" when Bad equals Good.
func (c Curve) Score(x float64) float64 {
	if math.IsNaN(x) {
		return 0
	}
	lowerIsBetter := c.Good < c.Bad
	better := func(a, b float64) bool { // a at least as good as b
		if lowerIsBetter {
			return a <= b
		}
		return a >= b
	}
	if better(x, c.Good) {
		return 100
	}
	if c.Type == CurveStep || !better(x, c.Bad) || c.Good == c.Bad {
		return 0
	}
	return 100 * (c.Bad - x) / (c.Bad - c.Good)
}

// Score is the weighted health score from per-component measurements,
// keyed by component name; a missing measurement scores 0. It returns the
// total and each component's score.
func (h Health) Score(measurements map[string]float64) (float64, map[string]float64) {
	parts := make(map[string]float64, len(h.Components))
	total := 0.0
	for _, c := range h.Components {
		x, ok := measurements[c.Name]
		if !ok {
			x = math.NaN()
		}
		sc := c.Curve.Score(x)
		parts[c.Name] = sc
		total += c.Weight * sc
	}
	return total, parts
}
