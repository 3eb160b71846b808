package loadgen

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func randomLatencies(r *rand.Rand, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		// Mostly fast, a long tail, a few outliers.
		d := time.Duration(r.ExpFloat64() * float64(2*time.Millisecond))
		if r.IntN(100) == 0 {
			d += time.Duration(r.IntN(2000)) * time.Millisecond
		}
		out[i] = d
	}
	return out
}

// TestMergeEqualsTheHistogramOfTheUnion: histograms of two runs, merged
// (also after a round trip through their encoded form, as `loadgen merge`
// does), hold exactly the counts of one histogram of both runs' values.
func TestMergeEqualsTheHistogramOfTheUnion(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	a, b := randomLatencies(r, 20000), randomLatencies(r, 7000)
	ha, hb, union := NewHistogram(), NewHistogram(), NewHistogram()
	for _, d := range a {
		ha.Record(d)
		union.Record(d)
	}
	for _, d := range b {
		hb.Record(d)
		union.Record(d)
	}
	merged := ha.Clone()
	merged.Merge(hb)
	if !merged.Equal(union) {
		t.Fatal("the merged histogram differs from the histogram of the union")
	}
	ea, _ := ha.MarshalText()
	eb, _ := hb.MarshalText()
	var da, db Histogram
	if err := da.UnmarshalText(ea); err != nil {
		t.Fatal(err)
	}
	if err := db.UnmarshalText(eb); err != nil {
		t.Fatal(err)
	}
	da.Merge(&db)
	if !da.Equal(union) {
		t.Fatal("merging decoded histograms differs from the histogram of the union")
	}
	for _, p := range []float64{50, 90, 99, 99.9, 100} {
		if da.Quantile(p) != union.Quantile(p) {
			t.Errorf("p%v: merged %v, union %v", p, da.Quantile(p), union.Quantile(p))
		}
	}
	if merged.Count() != int64(len(a)+len(b)) {
		t.Errorf("count %d", merged.Count())
	}
}

// TestQuantilesAreWithinThePrecision compares percentiles with the exact
// order statistics of the recorded values: 3 significant digits, so within
// 0.1 % (plus the 1 µs resolution).
func TestQuantilesAreWithinThePrecision(t *testing.T) {
	vals := randomLatencies(rand.New(rand.NewPCG(3, 4)), 50000)
	h := NewHistogram()
	for _, d := range vals {
		h.Record(d)
	}
	slices.Sort(vals)
	for _, p := range []float64{50, 90, 99, 99.9} {
		exact := vals[int(float64(len(vals))*p/100+0.5)-1]
		got := h.Quantile(p)
		if diff := (got - exact).Abs(); diff > exact/1000+time.Microsecond {
			t.Errorf("p%v = %v, exact %v (diff %v)", p, got, exact, diff)
		}
	}
}

func TestHistogramClampsAndRoundTripsInJSON(t *testing.T) {
	h := NewHistogram()
	h.Record(-time.Second)
	h.Record(time.Hour)
	h.Record(3 * time.Millisecond)
	if h.Clamped() != 1 || h.Count() != 3 || h.Max() < HistogramMax || h.Min() != 0 {
		t.Errorf("clamped %d count %d max %v min %v", h.Clamped(), h.Count(), h.Max(), h.Min())
	}
	b, err := json.Marshal(struct{ H *Histogram }{h})
	if err != nil {
		t.Fatal(err)
	}
	var back struct{ H *Histogram }
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.H.Count() != 3 || back.H.Quantile(50) != h.Quantile(50) {
		t.Errorf("round trip: count %d p50 %v", back.H.Count(), back.H.Quantile(50))
	}
}

func TestCorruptEncodingsAreErrors(t *testing.T) {
	for name, in := range map[string]string{
		"Empty input is an error.":           "",
		"Text that is not base64 fails.":     "not base64!",
		"Base64 of too few bytes fails.":     "AAAA",
		"A wrong cookie is named a version.": "AAAAAAAAAAAAAAAA",
	} {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			err := h.UnmarshalText([]byte(in))
			if err == nil || !strings.Contains(err.Error(), "decoding a latency histogram") {
				t.Errorf("got %v", err)
			}
		})
	}
}
