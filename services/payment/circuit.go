package payment

import (
	"sync"
	"time"
)

// circuit is one provider's breaker. It opens after threshold consecutive
// failures and skips the provider for cooldown; then it lets one trial call
// through (half-open): a success closes it, a failure opens it for another
// cooldown. It is driven by the time its callers pass in.
type circuit struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	failures  int       // consecutive
	openUntil time.Time // zero when closed
	trial     bool      // a half-open trial call is in flight
}

// allow reports whether a call may go to the provider at now; a true answer
// in the half-open state reserves the one trial call.
func (c *circuit) allow(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.openUntil.IsZero():
		return true
	case now.Before(c.openUntil), c.trial:
		return false
	default:
		c.trial = true
		return true
	}
}

// success records a call that worked; it reports whether that closed an
// open circuit.
func (c *circuit) success() (closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	closed = !c.openUntil.IsZero()
	c.failures, c.openUntil, c.trial = 0, time.Time{}, false
	return closed
}

// failure records a call that failed at now; it reports whether that
// opened the circuit (or kept it open after a failed trial).
func (c *circuit) failure(now time.Time) (opened bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures++
	if c.trial || c.failures >= c.threshold {
		c.openUntil, c.trial = now.Add(c.cooldown), false
		return true
	}
	return false
}
