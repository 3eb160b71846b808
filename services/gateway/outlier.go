package gateway

import "time"

// outlier is the passive-ejection state of one target region, as Envoy's
// consecutive-5xx outlier detector keeps it: how long the region is ejected
// for and how many times it was ejected lately (the multiplier of the next
// ejection). The consecutive-failure count lives in region.consecutive so
// that a success does not take the gateway's lock.
//
// The zero value is a region never ejected. Guarded by Gateway.mu.
type outlier struct {
	ejections    int
	ejectedUntil time.Time
}

// ejected reports whether the region is out of rotation at now.
func (o *outlier) ejected(now time.Time) bool { return now.Before(o.ejectedUntil) }

// eject takes the region out of rotation from now for BaseEjection × (times
// ejected), capped at MaxEjection, and returns that length. Each
// DecayInterval spent back in service since the last ejection ended forgets
// one past ejection.
func (o *outlier) eject(now time.Time, c EjectionConfig) time.Duration {
	if o.ejections > 0 && !o.ejectedUntil.IsZero() && now.After(o.ejectedUntil) {
		o.ejections -= int(now.Sub(o.ejectedUntil) / c.DecayInterval)
		o.ejections = max(o.ejections, 0)
	}
	o.ejections++
	d := c.MaxEjection
	if maxTimes := int(c.MaxEjection / c.BaseEjection); o.ejections <= maxTimes {
		d = c.BaseEjection * time.Duration(o.ejections)
	} else {
		o.ejections = maxTimes + 1 // keep the multiplier bounded while capped
	}
	o.ejectedUntil = now.Add(d)
	return d
}
