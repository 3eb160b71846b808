package gateway

import (
	"strings"
	"testing"
)

func TestSWRRSequences(t *testing.T) {
	names := []string{"a", "b", "c"}
	for sentence, tc := range map[string]struct {
		weights  []int64
		eligible []bool
		want     string
	}{
		"Weights 5, 1, 1 give nginx's smooth sequence a a b a c a a.": {
			weights: []int64{5, 1, 1}, eligible: []bool{true, true, true}, want: "a a b a c a a",
		},
		"The sequence repeats with its period.": {
			weights: []int64{5, 1, 1}, eligible: []bool{true, true, true}, want: "a a b a c a a a a b a c a a",
		},
		"Scaled weights give the same sequence.": {
			weights: []int64{5000, 1000, 1000}, eligible: []bool{true, true, true}, want: "a a b a c a a",
		},
		"Equal weights alternate.": {
			weights: []int64{1, 1, 1}, eligible: []bool{true, true, true}, want: "a b c a b c",
		},
		"A region not eligible is skipped and the rest keep their ratio.": {
			weights: []int64{5, 1, 1}, eligible: []bool{false, true, true}, want: "b c b c",
		},
		"Weight zero gets nothing while another region has weight.": {
			weights: []int64{0, 2, 1}, eligible: []bool{true, true, true}, want: "b c b b c b",
		},
		"When every eligible weight is zero they share equally.": {
			weights: []int64{0, 0, 7}, eligible: []bool{true, true, false}, want: "a b a b",
		},
	} {
		t.Run(sentence, func(t *testing.T) {
			var s swrr
			n := len(strings.Fields(tc.want))
			got := make([]string, n)
			for i := range got {
				got[i] = names[s.next(tc.weights, tc.eligible)]
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Fatalf("sequence %q, want %q", g, tc.want)
			}
		})
	}
}

func TestSWRRNoneEligible(t *testing.T) {
	var s swrr
	if got := s.next([]int64{1, 2}, []bool{false, false}); got != -1 {
		t.Fatalf("next = %d with nothing eligible, want -1", got)
	}
}

func TestSWRRSharesMatchWeightsOverAPeriod(t *testing.T) {
	weights := []int64{37, 100, 1, 13}
	var total int64
	for _, w := range weights {
		total += w
	}
	var s swrr
	counts := make([]int64, len(weights))
	all := []bool{true, true, true, true}
	for range 3 * total {
		counts[s.next(weights, all)]++
	}
	for i, w := range weights {
		if counts[i] != 3*w {
			t.Errorf("peer %d picked %d times in 3 periods, want %d", i, counts[i], 3*w)
		}
	}
}

func TestGatewayFollowsPushedWeights(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b", "c"}, nil)
	if code, _ := tg.push(t, `{"version":1,"regions":{"a":{"weight":5,"breaker":"closed"},"b":{"weight":1,"breaker":"closed"},"c":{"weight":1,"breaker":"recovering"}}}`); code != 200 {
		t.Fatalf("push: %d", code)
	}
	var got []string
	for range 7 {
		resp, _ := tg.do(t, "GET", "/v1/rides/1", nil, "")
		got = append(got, resp.Header.Get(HeaderRegion))
	}
	if g := strings.Join(got, " "); g != "a a b a c a a" {
		t.Fatalf("served by %q, want a a b a c a a", g)
	}
}
