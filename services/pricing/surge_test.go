package pricing

import (
	"math"
	"testing"
)

func TestSurgeCurveMilli(t *testing.T) {
	tests := map[string]struct {
		curve          SurgeCurve
		demand, supply int
		want           int32
	}{
		"No demand is no surge.":                                 {DefaultSurgeCurve, 0, 0, 1000},
		"Demand equal to supply is no surge.":                    {DefaultSurgeCurve, 5, 5, 1000},
		"Demand below supply is no surge.":                       {DefaultSurgeCurve, 2, 10, 1000},
		"A lone request in a cell without drivers is not surged": {DefaultSurgeCurve, 1, 0, 1000},
		"Two requests per driver surge by half.":                 {DefaultSurgeCurve, 4, 2, 1500},
		"Three requests per driver double the price.":            {DefaultSurgeCurve, 6, 2, 2000},
		"The multiplier is rounded down to a step of 0.1.":       {DefaultSurgeCurve, 5, 2, 1700}, // 1.75 -> 1.7
		"Seven requests for three drivers give 1.6.":             {DefaultSurgeCurve, 7, 3, 1600}, // 1.666 -> 1.6
		"Three requests in an empty cell count as three to one.": {DefaultSurgeCurve, 3, 0, 2000},
		"Huge demand is capped at the maximum.":                  {DefaultSurgeCurve, 1_000_000, 1, 3000},
		"Negative counts are treated as zero.":                   {DefaultSurgeCurve, -5, -1, 1000},
		"A higher threshold delays the surge.":                   {SurgeCurve{Threshold: 2, Slope: 0.5, Max: 3, Step: 0.1}, 4, 2, 1000},
		"A fine step keeps thousandths.":                         {SurgeCurve{Threshold: 1, Slope: 0.5, Max: 3, Step: 0.001}, 7, 3, 1666},
		"A cap that is not a step is honoured.":                  {SurgeCurve{Threshold: 1, Slope: 1, Max: 2.25, Step: 0.1}, 100, 1, 2250},
		"A maximum of one turns surge off.":                      {SurgeCurve{Threshold: 1, Slope: 1, Max: 1, Step: 0.1}, 100, 1, 1000},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.curve.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tc.curve.Milli(tc.demand, tc.supply); got != tc.want {
				t.Errorf("Milli(%d, %d) = %d, want %d", tc.demand, tc.supply, got, tc.want)
			}
		})
	}
}

func TestSurgeIsMonotonicInDemandAndBounded(t *testing.T) {
	c := DefaultSurgeCurve
	for supply := 0; supply <= 20; supply++ {
		prev := int32(0)
		for demand := 0; demand <= 200; demand++ {
			got := c.Milli(demand, supply)
			if got < prev || got < 1000 || got > 3000 {
				t.Fatalf("Milli(%d, %d) = %d after %d: not monotonic in [1000, 3000]", demand, supply, got, prev)
			}
			prev = got
		}
	}
}

func TestSurgeCurveValidate(t *testing.T) {
	tests := map[string]SurgeCurve{
		"A maximum below one is rejected.":  {Threshold: 1, Slope: 1, Max: 0.5, Step: 0.1},
		"A negative slope is rejected.":     {Threshold: 1, Slope: -1, Max: 3, Step: 0.1},
		"A NaN threshold is rejected.":      {Threshold: math.NaN(), Slope: 1, Max: 3, Step: 0.1},
		"A zero step is rejected.":          {Threshold: 1, Slope: 1, Max: 3, Step: 0},
		"A step above the max is rejected.": {Threshold: 1, Slope: 1, Max: 3, Step: 4},
		"An absurd maximum is rejected.":    {Threshold: 1, Slope: 1, Max: 50, Step: 0.1},
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			if err := c.Validate(); err == nil {
				t.Errorf("%+v validated", c)
			}
		})
	}
}
