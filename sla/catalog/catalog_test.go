package catalog

import (
	"regexp"
	"testing"
)

var nameRe = regexp.MustCompile(`^carpool_[a-z0-9_]+$`)

func TestProducedMetricsAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Produced() {
		if !nameRe.MatchString(m.Name) {
			t.Errorf("%s: names start with carpool_ and use [a-z0-9_]", m.Name)
		}
		if seen[m.Name] {
			t.Errorf("%s is declared twice", m.Name)
		}
		seen[m.Name] = true
		if m.Help == "" || m.Unit == "" || m.Producer == "" {
			t.Errorf("%s lacks help, unit or producer", m.Name)
		}
		if (m.Type == Histogram) != (len(m.Buckets) > 0) {
			t.Errorf("%s: only histograms have buckets", m.Name)
		}
		for i := 1; i < len(m.Buckets); i++ {
			if m.Buckets[i] <= m.Buckets[i-1] {
				t.Errorf("%s: buckets must ascend", m.Name)
			}
		}
	}
}

func TestRequestDurationHasTheSeedBuckets(t *testing.T) {
	for _, le := range []float64{0.2, 0.3, 0.8} {
		if !RequestDuration.HasBucket(le) {
			t.Errorf("no %v s bucket", le)
		}
	}
	below, okB, above, okA := RequestDuration.NearestBuckets(0.25)
	if !okB || !okA || below != 0.2 || above != 0.3 {
		t.Errorf("nearest to 0.25 = %v %v", below, above)
	}
}
