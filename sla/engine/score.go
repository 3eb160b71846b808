package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
)

// minP95 bounds a P95 from below (1 ms) so that a region with (nearly) no
// latency does not get an infinite score.
const minP95 = 0.001

// weights computes every region's route weight from its P95 latency and
// health, before the breaker:
//
//	s(r) = health(r)/100 / p95(r)
//	w(r) = clamp(max · s(r) / max_j s(j), min, max)
//
// over the regions that serve in the pushed table (not open; every region
// in dry-run mode). A region whose P95 is missing or in its recovery
// blackout gets the median P95 of the regions whose P95 is trusted; when no
// region's is, latency drops out and the weights follow health alone.
func (c *Core) weights(now time.Time, dryRun bool) []float64 {
	n := len(c.regions)
	out := make([]float64, n)
	p95 := make([]float64, n)
	trusted := make([]float64, 0, n)
	serving := make([]bool, n)
	for i, r := range c.regions {
		serving[i] = dryRun || r.state != Open
		p95[i] = math.NaN()
		if v, ok := c.value(r.p95, now); ok && !now.Before(r.blackout) {
			p95[i] = max(v, minP95)
			if serving[i] {
				trusted = append(trusted, p95[i])
			}
		}
	}
	fill := 1.0 // no trusted latency: every region the same
	if len(trusted) > 0 {
		fill = median(trusted)
	}
	score := make([]float64, n)
	best := 0.0
	for i, r := range c.regions {
		lat := p95[i]
		if math.IsNaN(lat) {
			lat = fill
		}
		if len(trusted) == 0 {
			lat = 1
		}
		h, _ := c.health(r, now)
		score[i] = h / 100 / lat
		if serving[i] && score[i] > best {
			best = score[i]
		}
	}
	w := c.s.Routing.Weights
	for i := range c.regions {
		x := w.Min
		if best > 0 {
			x = w.Max * score[i] / best
		}
		out[i] = round3(min(max(x, w.Min), w.Max))
	}
	return out
}

// median of xs (which it sorts).
func median(xs []float64) float64 {
	slices.Sort(xs)
	m := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[m]
	}
	return (xs[m-1] + xs[m]) / 2
}

// health is the spec's health score of r from its held components (a
// component without a value within staleAfter scores 0), with the scores.
func (c *Core) health(r *regionState, now time.Time) (float64, []ComponentStatus) {
	total := 0.0
	comps := make([]ComponentStatus, len(c.s.Health.Components))
	for i, hc := range c.s.Health.Components {
		v, ok := c.value(r.comps[i], now)
		sc := hc.Curve.Score(v) // NaN scores 0
		total += hc.Weight * sc
		comps[i] = ComponentStatus{Name: hc.Name, Measure: hc.Measure, Value: num(v, ok), Score: sc}
	}
	return total, comps
}

// regionDecision reports r's scores, breaker and composite (the weight is
// filled in by Step).
func (c *Core) regionDecision(r *regionState, now time.Time) RegionDecision {
	h, comps := c.health(r, now)
	rd := RegionDecision{
		Region:      r.name,
		Health:      Number(h),
		Components:  comps,
		LatencyP99:  num(c.value(r.p99, now)),
		LatencyP95:  num(c.value(r.p95, now)),
		Traffic:     num(c.value(r.traffic, now)),
		Breaker:     r.state,
		Since:       r.since,
		Reason:      r.reason,
		RampPercent: c.rampPercent(r),
		HoldUntil:   r.holdUntil,
		Trips:       r.repeats,
		Blackout:    now.Before(r.blackout),
		Stale:       r.stale,
	}
	if r.stale {
		rd.StaleInputs = c.staleInputs(r, now)
	}
	rd.SLOs = make([]SLOStatus, len(c.slos))
	for k, def := range c.slos {
		h := &r.slos[k]
		st := SLOStatus{Service: def.service, SLO: def.slo, Objective: def.objective, Key: def.key,
			Attainment: num(c.value(h.att, now)), BudgetRemaining: num(c.value(h.budget, now))}
		if len(h.burn) > 0 {
			st.BurnRates = make(map[string]Number, len(h.burn))
			for w, b := range h.burn {
				if v, ok := c.value(b, now); ok {
					st.BurnRates[w] = Number(v)
				}
			}
		}
		rd.SLOs[k] = st
	}
	rd.Composite, rd.CompositeMet, rd.KeySLOsBreached = c.composite(rd.SLOs)
	return rd
}

// objectiveMet compares an attainment with an objective, forgiving float
// rounding (99.9/100 is not exactly 0.999).
func objectiveMet(att, objective float64) bool { return att >= objective-1e-12 }

// composite is Σ weight(s)·A(s) / Σ weight(s) over the services whose
// attainment A(s) = ∏ attainment(slo) is known, and whether it is met: at
// least composite.objective with no key SLO below its own objective.
func (c *Core) composite(slos []SLOStatus) (Number, bool, []string) {
	var breached []string
	sum, wsum := 0.0, 0.0
	for _, svc := range c.services {
		a, known := 1.0, true
		for k := svc.first; k < svc.end; k++ {
			att := slos[k].Attainment
			if !att.Known() {
				known = false
				continue
			}
			a *= float64(att)
			if c.slos[k].key && !objectiveMet(float64(att), c.slos[k].objective) {
				breached = append(breached, c.slos[k].service+"/"+c.slos[k].slo)
			}
		}
		if known {
			sum += svc.weight * a
			wsum += svc.weight
		}
	}
	if wsum == 0 {
		return Unknown, false, breached
	}
	comp := sum / wsum
	return Number(comp), objectiveMet(comp, ratio(c.s.Composite.Objective)) && len(breached) == 0, breached
}

// global is the traffic-weighted composite: every region's composite, and
// every SLO's attainment, budget and burn rates, weighted by the region's
// traffic (equally when no region's traffic is known).
func (c *Core) global(regions []RegionDecision) GlobalDecision {
	wt := make([]float64, len(regions))
	total := 0.0
	for i, rd := range regions {
		if rd.Traffic.Known() && rd.Traffic > 0 {
			wt[i] = float64(rd.Traffic)
			total += wt[i]
		}
	}
	if total == 0 {
		for i := range wt {
			wt[i] = 1
		}
	}
	mean := func(get func(RegionDecision) Number) Number {
		s, w := 0.0, 0.0
		for i, rd := range regions {
			if v := get(rd); v.Known() && wt[i] > 0 {
				s += wt[i] * float64(v)
				w += wt[i]
			}
		}
		if w == 0 {
			return Unknown
		}
		return Number(s / w)
	}
	var g GlobalDecision
	g.SLOs = make([]SLOStatus, len(c.slos))
	for k, def := range c.slos {
		st := SLOStatus{Service: def.service, SLO: def.slo, Objective: def.objective, Key: def.key}
		st.Attainment = mean(func(rd RegionDecision) Number { return rd.SLOs[k].Attainment })
		st.BudgetRemaining = Unknown
		if st.Attainment.Known() && def.objective < 1 {
			st.BudgetRemaining = Number(1 - (1-float64(st.Attainment))/(1-def.objective))
		}
		windows := map[string]bool{}
		for _, rd := range regions {
			for w := range rd.SLOs[k].BurnRates {
				windows[w] = true
			}
		}
		if len(windows) > 0 {
			st.BurnRates = make(map[string]Number, len(windows))
			for _, w := range slices.Sorted(maps.Keys(windows)) {
				st.BurnRates[w] = mean(func(rd RegionDecision) Number {
					if v, ok := rd.SLOs[k].BurnRates[w]; ok {
						return v
					}
					return Unknown
				})
			}
		}
		g.SLOs[k] = st
	}
	g.Composite = mean(func(rd RegionDecision) Number { return rd.Composite })
	_, _, g.KeySLOsBreached = c.composite(g.SLOs)
	g.CompositeMet = g.Composite.Known() && objectiveMet(float64(g.Composite), ratio(c.s.Composite.Objective)) && len(g.KeySLOsBreached) == 0
	return g
}

// withID gives an event its ID: a hash of what it is (time, kind, region,
// states and reason), so the same decision replayed, or taken by a second
// engine over the same signals, has the same ID and is stored once.
func withID(ev Event) Event {
	h := sha256.New()
	for _, s := range []string{strconv.FormatInt(ev.At.UnixNano(), 10), ev.Kind, ev.Region, ev.From, ev.To, ev.Reason} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	ev.ID = hex.EncodeToString(h.Sum(nil)[:16])
	return ev
}
