package loadgen

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MixEntry is one scenario of a mix and its weight.
type MixEntry struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
}

// Mix is a weighted list of scenarios: iterations go to them in proportion
// to their weights, interleaved by smooth weighted round robin (exact shares
// over every period of the weights' sum, no randomness).
type Mix []MixEntry

var scenarioName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// ParseMix parses "ride=70,quote=20,drivers=10"; a name without a weight
// ("ride") weighs 1.
func ParseMix(spec string) (Mix, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf(`scenario is empty; give a name or a mix such as "ride=70,quote=20,drivers=10"`)
	}
	var m Mix
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		name, w, hasW := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		weight := 1
		if hasW {
			n, err := strconv.Atoi(strings.TrimSpace(w))
			if err != nil || n < 1 || n > 1_000_000 {
				return nil, fmt.Errorf("scenario %q: weight %q must be a whole number from 1 to 1000000", part, w)
			}
			weight = n
		}
		if !scenarioName.MatchString(name) {
			return nil, fmt.Errorf("scenario %q: the name must be lower-case letters, digits and _ (e.g. ride)", part)
		}
		if seen[name] {
			return nil, fmt.Errorf("scenario %q is given twice", name)
		}
		seen[name] = true
		m = append(m, MixEntry{Name: name, Weight: weight})
	}
	return m, nil
}

// String formats the mix as ParseMix reads it.
func (m Mix) String() string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = e.Name + "=" + strconv.Itoa(e.Weight)
	}
	return strings.Join(parts, ",")
}

// Names lists the mix's scenario names in order.
func (m Mix) Names() []string {
	out := make([]string, len(m))
	for i, e := range m {
		out[i] = e.Name
	}
	return out
}

// swrr is nginx's smooth weighted round robin over fixed weights.
type swrr struct {
	weights []int
	current []int
	total   int
}

func newSWRR(weights []int) *swrr {
	s := &swrr{weights: weights, current: make([]int, len(weights))}
	for _, w := range weights {
		s.total += w
	}
	return s
}

func (s *swrr) next() int {
	best := 0
	for i, w := range s.weights {
		s.current[i] += w
		if s.current[i] > s.current[best] {
			best = i
		}
	}
	s.current[best] -= s.total
	return best
}
