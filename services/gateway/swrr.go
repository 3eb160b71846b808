package gateway

// swrr is nginx's smooth weighted round robin: on each pick every eligible
// peer's current weight grows by its weight, the peer with the largest
// current weight wins (the first one on a tie) and loses the total of the
// eligible weights. Weights 5, 1, 1 give a a b a c a a: the heavy peer's
// picks are spread out, never bunched. Peers that are not eligible neither
// gain nor lose, as nginx skips a down peer.
//
// The zero value is ready for use; methods are not safe for concurrent use.
type swrr struct {
	current []int64
}

// next picks among the peers i with eligible[i], weighted by weights[i], and
// returns the index picked or -1 when none is eligible. When every eligible
// peer has weight 0 they count as weight 1 each, so that a drained table
// still serves.
func (s *swrr) next(weights []int64, eligible []bool) int {
	if len(s.current) != len(weights) {
		s.current = make([]int64, len(weights))
	}
	total, any := eligibleTotal(weights, eligible)
	if !any {
		return -1
	}
	uniform := total == 0
	best := -1
	total = 0
	for i, w := range weights {
		if !eligible[i] {
			continue
		}
		if uniform {
			w = 1
		}
		s.current[i] += w
		total += w
		if best < 0 || s.current[i] > s.current[best] {
			best = i
		}
	}
	s.current[best] -= total
	return best
}

// eligibleTotal sums the weights of the eligible peers and says whether
// there is any.
func eligibleTotal(weights []int64, eligible []bool) (total int64, any bool) {
	for i, w := range weights {
		if eligible[i] {
			total += w
			any = true
		}
	}
	return total, any
}
