package gateway

import (
	"hash/fnv"
	"math"
)

// rendezvous picks among the peers i with eligible[i] by weighted
// rendezvous (highest random weight) hashing of key: each peer draws
// -ln(u)/w with u a hash of (key, its name) in (0, 1), and the smallest
// draw wins. A key therefore goes to the same peer for as long as the
// eligible set and the weights stay the same, and keys spread over the
// peers in proportion to their weights (the draws are exponential races).
// When every eligible peer has weight 0 they count as weight 1 each, as in
// swrr. It returns -1 when none is eligible.
func rendezvous(key string, names []string, weights []int64, eligible []bool) int {
	total, any := eligibleTotal(weights, eligible)
	if !any {
		return -1
	}
	best, bestDraw := -1, math.Inf(1)
	for i, w := range weights {
		if !eligible[i] {
			continue
		}
		if total == 0 {
			w = 1
		}
		if w <= 0 {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(names[i]))
		// FNV's high bits barely change with the last bytes: mix them.
		u := (float64(mix64(h.Sum64())>>11) + 0.5) / (1 << 53) // in (0, 1)
		if draw := -math.Log(u) / float64(w); draw < bestDraw {
			best, bestDraw = i, draw
		}
	}
	return best
}

// mix64 is MurmurHash3's 64-bit finalizer: every input bit flips each
// output bit with probability about one half.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
