package pricing

import (
	"fmt"
	"math"
)

// SurgeCurve maps a cell's demand and supply to a surge multiplier. With
// ratio = demand / max(supply, 1):
//
//	surge = clamp(1 + Slope * (ratio - Threshold), 1, Max), rounded down to a multiple of Step above 1
//
// A cell without drivers counts as one driver, so a lone request in an
// empty cell is not surged; sustained demand there is. The arithmetic is
// integer (thousandths), so the result is exact and the same everywhere.
type SurgeCurve struct {
	// Threshold is the demand/supply ratio up to which there is no surge
	// (default 1: as many requests as drivers).
	Threshold float64
	// Slope is the surge added per unit of ratio above Threshold (default 0.5).
	Slope float64
	// Max caps the multiplier (default 3).
	Max float64
	// Step is the granularity of the multiplier (default 0.1); surge is
	// rounded down to 1 + k*Step.
	Step float64
}

// DefaultSurgeCurve is the curve a zero SurgeCurve in Config gets.
var DefaultSurgeCurve = SurgeCurve{Threshold: 1, Slope: 0.5, Max: 3, Step: 0.1}

func (c *SurgeCurve) defaults() {
	if *c == (SurgeCurve{}) {
		*c = DefaultSurgeCurve
	}
}

// Validate checks the curve's fields against each other.
func (c SurgeCurve) Validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"threshold", c.Threshold}, {"slope", c.Slope}, {"max", c.Max}, {"step", c.Step}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("surge.%s is %v; it must be a finite number >= 0", f.name, f.v)
		}
	}
	switch {
	case c.Max < 1 || c.Max > 10:
		return fmt.Errorf("surge.max is %v; it must be in [1, 10]", c.Max)
	case c.Step < 0.001 || c.Step > c.Max:
		return fmt.Errorf("surge.step is %v; it must be in [0.001, surge.max]", c.Step)
	case c.Threshold > 1000:
		return fmt.Errorf("surge.threshold is %v; it must be at most 1000", c.Threshold)
	case c.Slope > 100:
		return fmt.Errorf("surge.slope is %v; it must be at most 100", c.Slope)
	}
	return nil
}

// Milli returns the surge multiplier times 1000 (1000 = no surge) for a
// cell with demand requests and supply drivers. c must be valid.
func (c SurgeCurve) Milli(demand, supply int) int32 {
	const one = 1000
	threshold := int64(math.Round(c.Threshold * one))
	slope := int64(math.Round(c.Slope * one))
	maxM := int64(math.Round(c.Max * one))
	step := max(1, int64(math.Round(c.Step*one)))
	ratio := int64(max(demand, 0)) * one / int64(max(supply, 1))
	excess := ratio - threshold
	if excess <= 0 {
		return one
	}
	// excess and slope are bounded (demand is an int32-ish count, slope
	// <= 100), but cap excess so the product cannot overflow.
	excess = min(excess, maxM*one)
	s := one + slope*excess/one
	s = one + (s-one)/step*step
	return int32(min(s, maxM))
}
