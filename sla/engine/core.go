package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Core is the engine's deterministic heart: a state machine stepped on
// (now, Signals) that returns a Decision. It holds every region's breaker,
// the inputs it last saw (to hold them up to engine.staleAfter) and the
// panic and staleness flags; it reads no clock and starts no goroutine, so a
// recorded series of signals always gives the same decisions. A Core is not
// safe for concurrent use (the Engine serialises its steps).
type Core struct {
	s         *spec.Spec
	staleFor  time.Duration
	blackout  time.Duration
	slos      []sloDef         // every SLO of the spec, flattened in spec order
	sloIndex  map[sloKey]int   // (service, slo) -> index in slos
	services  []serviceDef     // services with their slice of slos
	compIndex map[string][]int // measure -> components reading it
	regions   []*regionState   // spec order
	byName    map[string]int   // region name -> index
	panicking bool             // panic mode at the last step
	started   bool             // at least one step taken
	last      time.Time        // the last step's time
	weightsAt time.Time        // when the computed weights were last recomputed
	computed  []float64        // the computed weights (before the breaker)
}

type sloKey struct{ service, slo string }

type sloDef struct {
	service, slo string
	objective    float64 // ratio
	key          bool
}

type serviceDef struct {
	name       string
	weight     float64
	first, end int // slos[first:end]
}

// held is an input's latest fresh value and when it was fresh.
type held struct {
	v  float64
	at time.Time // the tick it was last fresh at
	ok bool
}

// sloHeld is one SLO's held inputs in one region.
type sloHeld struct {
	att, budget held
	burn        map[string]held
}

// regionState is everything the Core remembers about a region.
type regionState struct {
	name                string
	p99, p95, traffic   held
	comps               []held // per spec health component
	slos                []sloHeld
	lastP99, lastP95    time.Time   // last tick each latency input was fresh
	lastComp            []time.Time // last tick each component was fresh
	lastTripKnown       time.Time   // last tick the trip rule was known
	lastRecoverKnown    time.Time   // last tick the recover rule was known
	badSince, goodSince time.Time   // start of the trip / recover rule's run (zero: not holding)

	state     BreakerState
	since     time.Time
	reason    string
	holdUntil time.Time
	repeats   int
	closedAt  time.Time // when the breaker last closed after a trip
	tripped   bool      // it has tripped at least once
	step      int       // ramp step index while recovering
	stepSince time.Time
	blackout  time.Time // latency not trusted for the weight before this
	stale     bool
	denied    bool
}

// NewCore builds a Core for a spec; every region starts closed.
func NewCore(s *spec.Spec) (*Core, error) {
	if err := checkSpec(s); err != nil {
		return nil, err
	}
	c := &Core{
		s:         s,
		staleFor:  spec.D(s.Engine.StaleAfter),
		blackout:  spec.D(s.Engine.RecoveryBlackout),
		sloIndex:  map[sloKey]int{},
		compIndex: map[string][]int{},
		byName:    map[string]int{},
	}
	for _, svc := range s.Services {
		sd := serviceDef{name: svc.Name, weight: svc.Weight, first: len(c.slos)}
		for _, slo := range svc.SLOs {
			c.sloIndex[sloKey{svc.Name, slo.Name}] = len(c.slos)
			c.slos = append(c.slos, sloDef{service: svc.Name, slo: slo.Name, objective: ratio(slo.Objective), key: slo.Key})
		}
		sd.end = len(c.slos)
		c.services = append(c.services, sd)
	}
	for i, hc := range s.Health.Components {
		c.compIndex[hc.Measure] = append(c.compIndex[hc.Measure], i)
	}
	for i, r := range s.Regions {
		c.byName[r.Name] = i
		c.regions = append(c.regions, &regionState{
			name:     r.Name,
			comps:    make([]held, len(s.Health.Components)),
			lastComp: make([]time.Time, len(s.Health.Components)),
			slos:     make([]sloHeld, len(c.slos)),
			state:    Closed,
		})
	}
	return c, nil
}

// checkSpec validates a spec for the engine.
func checkSpec(s *spec.Spec) error {
	if s == nil {
		return fmt.Errorf("engine: no spec; load one with spec.Load")
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("engine: the spec is not valid; fix it (carpoolsla validate --spec F shows where): %w", err)
	}
	return nil
}

// tri is a three-valued truth: a rule may be unknown when its inputs are.
type tri int8

const (
	unknown tri = iota
	yes
	no
)

func truth(b bool) tri {
	if b {
		return yes
	}
	return no
}

func or(a, b tri) tri {
	switch {
	case a == yes || b == yes:
		return yes
	case a == no && b == no:
		return no
	}
	return unknown
}

func and(a, b tri) tri {
	switch {
	case a == no || b == no:
		return no
	case a == yes && b == yes:
		return yes
	}
	return unknown
}

// observation is what one step saw of one region: which inputs were fresh
// at this tick and the rules' truth over them.
type observation struct {
	p99      float64
	p99Fresh bool
	// healthLo and healthHi bound the health score over this tick's fresh
	// components: a component without a fresh value counts 0 in Lo and 100 in Hi.
	healthLo, healthHi float64
	healthFresh        bool // every component fresh (Lo == Hi)
	trip, recover      tri
	tripLat, tripHlth  tri
}

// fresh reports whether m is a usable value at now: present, a number, and
// not older than engine.staleAfter. A zero At is taken as the tick's time.
func (c *Core) fresh(m Measured, now time.Time) bool {
	if !m.OK || math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
		return false
	}
	return m.At.IsZero() || now.Sub(m.At) <= c.staleFor
}

// value returns a held input's value when it was fresh within staleAfter.
func (c *Core) value(h held, now time.Time) (float64, bool) {
	if !h.ok || now.Sub(h.at) > c.staleFor {
		return math.NaN(), false
	}
	return h.v, true
}

func num(v float64, ok bool) Number {
	if !ok {
		return Unknown
	}
	return Number(v)
}

// Step advances the Core to now with one tick's signals and returns the
// decision. now must not go backwards (a step at an earlier time is taken
// at the last step's time).
func (c *Core) Step(now time.Time, sig Signals) Decision {
	if c.started && now.Before(c.last) {
		now = c.last
	}
	c.last = now
	if !c.started {
		c.started = true
		for _, r := range c.regions {
			// Inputs count as missing from the first step on, so a region
			// that never reports goes stale after staleAfter.
			r.lastP99, r.lastP95, r.lastTripKnown, r.lastRecoverKnown = now, now, now, now
			for i := range r.lastComp {
				r.lastComp[i] = now
			}
			if r.since.IsZero() { // not restored
				r.since = now
				r.reason = "engine started"
			}
		}
	}
	d := Decision{At: now, DryRun: c.s.Breaker.DryRun, Regions: make([]RegionDecision, len(c.regions))}
	obs := make([]observation, len(c.regions))
	seen := make([]bool, len(c.regions))
	for i := range sig.Regions {
		rs := &sig.Regions[i]
		idx, ok := c.byName[rs.Region]
		if !ok || seen[idx] {
			continue
		}
		seen[idx] = true
		obs[idx] = c.ingest(c.regions[idx], rs, now)
	}
	for i, r := range c.regions {
		if !seen[i] {
			obs[i] = c.ingest(r, &RegionSignals{Region: r.name}, now)
		}
	}

	var events []Event
	// Staleness, then the rules' timers.
	for i, r := range c.regions {
		events = c.stepStale(r, now, events)
		c.stepTimers(r, &obs[i], now)
	}
	// Transitions that do not open a closed region come first, so that the
	// broken-region budget below counts the regions as they now are.
	for i, r := range c.regions {
		events = c.stepBreaker(r, &obs[i], now, events)
	}
	events = c.stepTrips(obs, now, events)

	// Route weights (every routing.weights.period, and at once when a
	// breaker moved), scores and the composite.
	if c.computed == nil || now.Sub(c.weightsAt) >= spec.D(c.s.Routing.Weights.Period) || hasKind(events, catalog.EventKindBreaker) {
		c.computed, c.weightsAt = c.weights(now, d.DryRun), now
	}
	computed := c.computed
	d.Table = RouteTable{Regions: make(map[string]RouteEntry, len(c.regions))}
	for i, r := range c.regions {
		rd := c.regionDecision(r, now)
		rd.ComputedWeight = computed[i]
		rd.Weight = round3(computed[i] * rd.RampPercent / 100)
		rd.TripDenied = r.denied
		d.Regions[i] = rd
		if d.DryRun {
			d.Table.Regions[r.name] = RouteEntry{Weight: computed[i], Breaker: Closed}
		} else {
			d.Table.Regions[r.name] = RouteEntry{Weight: rd.Weight, Breaker: r.state}
		}
	}
	d.Global = c.global(d.Regions)
	for _, r := range c.regions {
		if r.denied {
			d.PanicRegions = append(d.PanicRegions, r.name)
		}
	}
	d.Panic = len(d.PanicRegions) > 0
	if d.Panic != c.panicking {
		events = append(events, c.panicEvent(now, d.Panic, d.PanicRegions))
		c.panicking = d.Panic
	}
	d.Events = events
	return d
}

// ingest records a region's signals of this tick and returns what the
// breaker can see of them.
func (c *Core) ingest(r *regionState, rs *RegionSignals, now time.Time) observation {
	var o observation
	if c.fresh(rs.LatencyP99, now) {
		r.p99 = held{v: rs.LatencyP99.Value, at: now, ok: true}
		r.lastP99 = now
		o.p99, o.p99Fresh = rs.LatencyP99.Value, true
	}
	if c.fresh(rs.LatencyP95, now) {
		r.p95 = held{v: rs.LatencyP95.Value, at: now, ok: true}
		r.lastP95 = now
	}
	if c.fresh(rs.Traffic, now) {
		r.traffic = held{v: rs.Traffic.Value, at: now, ok: true}
	}
	comps := c.s.Health.Components
	freshComp := make([]bool, len(comps))
	for measure, m := range rs.Components {
		if !c.fresh(m, now) {
			continue
		}
		for _, ci := range c.compIndex[measure] {
			r.comps[ci] = held{v: m.Value, at: now, ok: true}
			r.lastComp[ci] = now
			freshComp[ci] = true
		}
	}
	o.healthFresh = true
	for ci, hc := range comps {
		if freshComp[ci] {
			sc := hc.Curve.Score(r.comps[ci].v)
			o.healthLo += hc.Weight * sc
			o.healthHi += hc.Weight * sc
		} else {
			o.healthHi += hc.Weight * 100
			o.healthFresh = false
		}
	}
	for i := range rs.SLOs {
		ss := &rs.SLOs[i]
		k, ok := c.sloIndex[sloKey{ss.Service, ss.SLO}]
		if !ok {
			continue
		}
		h := &r.slos[k]
		if c.fresh(ss.Attainment, now) {
			h.att = held{v: ss.Attainment.Value, at: now, ok: true}
		}
		if c.fresh(ss.BudgetRemaining, now) {
			h.budget = held{v: ss.BudgetRemaining.Value, at: now, ok: true}
		}
		for w, m := range ss.BurnRates {
			if c.fresh(m, now) {
				if h.burn == nil {
					h.burn = make(map[string]held, len(ss.BurnRates))
				}
				h.burn[w] = held{v: m.Value, at: now, ok: true}
			}
		}
	}

	b := c.s.Breaker
	o.tripLat, o.tripHlth = no, no
	recLat, recHlth := yes, yes
	if b.Trip.LatencyP99 > 0 {
		o.tripLat = unknown
		if o.p99Fresh {
			o.tripLat = truth(o.p99 > b.Trip.LatencyP99.Seconds())
		}
	}
	if b.Recover.LatencyP99 > 0 {
		recLat = unknown
		if o.p99Fresh {
			recLat = truth(o.p99 <= b.Recover.LatencyP99.Seconds())
		}
	}
	const eps = 1e-9
	if b.Trip.Health > 0 {
		switch {
		case o.healthHi < b.Trip.Health-eps:
			o.tripHlth = yes
		case o.healthLo >= b.Trip.Health-eps:
			o.tripHlth = no
		default:
			o.tripHlth = unknown
		}
	}
	if b.Recover.Health > 0 {
		switch {
		case o.healthLo >= b.Recover.Health-eps:
			recHlth = yes
		case o.healthHi < b.Recover.Health-eps:
			recHlth = no
		default:
			recHlth = unknown
		}
	}
	o.trip = or(o.tripLat, o.tripHlth)
	o.recover = and(recLat, recHlth)
	return o
}

// staleInputs names the breaker inputs of r without a fresh value for
// longer than staleAfter.
func (c *Core) staleInputs(r *regionState, now time.Time) []string {
	var names []string
	if now.Sub(r.lastP99) > c.staleFor {
		names = append(names, "latency_p99")
	}
	if now.Sub(r.lastP95) > c.staleFor {
		names = append(names, "latency_p95")
	}
	for i, hc := range c.s.Health.Components {
		if now.Sub(r.lastComp[i]) > c.staleFor {
			names = append(names, hc.Name)
		}
	}
	return names
}

func (c *Core) stepStale(r *regionState, now time.Time, events []Event) []Event {
	names := c.staleInputs(r, now)
	stale := len(names) > 0
	if stale == r.stale {
		return events
	}
	r.stale = stale
	ev := Event{At: now, Kind: catalog.EventKindStale, Region: r.name, From: "fresh", To: "stale",
		Values: map[string]float64{"stale_after_seconds": c.staleFor.Seconds(), "stale_inputs": float64(len(names))}}
	if stale {
		ev.Reason = fmt.Sprintf("no fresh %s for more than %s; the breaker holds %s (absence never trips it)",
			strings.Join(names, ", "), c.staleFor, r.state)
	} else {
		ev.From, ev.To = "stale", "fresh"
		ev.Reason = "every breaker input is fresh again"
	}
	return append(events, withID(ev))
}

// stepTimers starts and resets the runs of the trip and recover rules. An
// unknown rule neither starts nor ends a run, unless it stays unknown for
// longer than staleAfter: then the run is forgotten, since nothing says it
// went on.
func (c *Core) stepTimers(r *regionState, o *observation, now time.Time) {
	switch o.trip {
	case yes:
		r.lastTripKnown = now
		if r.badSince.IsZero() {
			r.badSince = now
		}
	case no:
		r.lastTripKnown = now
		r.badSince = time.Time{}
	default:
		if now.Sub(r.lastTripKnown) > c.staleFor {
			r.badSince = time.Time{}
		}
	}
	switch o.recover {
	case yes:
		r.lastRecoverKnown = now
		if r.goodSince.IsZero() {
			r.goodSince = now
		}
	case no:
		r.lastRecoverKnown = now
		r.goodSince = time.Time{}
	default:
		if now.Sub(r.lastRecoverKnown) > c.staleFor {
			r.goodSince = time.Time{}
		}
	}
}

// holdFor is the hold-open time after repeats earlier trips.
func (c *Core) holdFor(repeats int) time.Duration {
	h := c.s.Breaker.Hold
	d := float64(h.Initial) * math.Pow(h.Multiplier, float64(repeats))
	if d > float64(h.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		return spec.D(h.Max)
	}
	return time.Duration(d)
}

// stepBreaker moves an open or recovering breaker. Closed breakers are
// opened by stepTrips, which enforces the broken-region budget.
func (c *Core) stepBreaker(r *regionState, o *observation, now time.Time, events []Event) []Event {
	b := c.s.Breaker
	switch r.state {
	case Open:
		if now.Before(r.holdUntil) || o.recover != yes || r.goodSince.IsZero() || now.Sub(r.goodSince) < spec.D(b.Recover.For) {
			return events
		}
		r.blackout = now.Add(c.blackout)
		return c.transition(r, now, Recovering, 0, fmt.Sprintf("%s for %s after a %s hold; ramp to %s%%",
			c.recoverSentence(o), spec.D(b.Recover.For), r.holdUntil.Sub(r.since), fmtPct(b.Ramp.Steps[0])), o, events)
	case Recovering:
		if o.trip == yes {
			r.repeats++
			hold := c.holdFor(r.repeats)
			r.holdUntil = now.Add(hold)
			return c.transition(r, now, Open, 0, fmt.Sprintf("%s during the ramp at %s%%; open for %s (repeat %d)",
				c.tripSentence(o), fmtPct(b.Ramp.Steps[r.step]), hold, r.repeats), o, events)
		}
		if o.recover != yes || r.goodSince.IsZero() {
			return events
		}
		from := r.stepSince
		if r.goodSince.After(from) {
			from = r.goodSince
		}
		if now.Sub(from) < spec.D(b.Ramp.StepDuration) {
			return events
		}
		if r.step+1 < len(b.Ramp.Steps) {
			prev := b.Ramp.Steps[r.step]
			r.step++
			r.stepSince = now
			return c.event(r, now, Recovering, Recovering, fmt.Sprintf("ramp %s%% -> %s%%: %s for %s",
				fmtPct(prev), fmtPct(b.Ramp.Steps[r.step]), c.recoverSentence(o), spec.D(b.Ramp.StepDuration)), o, events)
		}
		r.closedAt = now
		return c.transition(r, now, Closed, 0, fmt.Sprintf("ramp complete: %s through every step", c.recoverSentence(o)), o, events)
	}
	return events
}

// stepTrips opens the closed regions whose trip rule held for trip.for,
// oldest run first (then by name), as long as no more than
// maxBrokenFraction of the regions are broken (open, or recovering below
// full weight) and one region keeps serving. A region denied that is in
// panic mode: it keeps serving.
func (c *Core) stepTrips(obs []observation, now time.Time, events []Event) []Event {
	b := c.s.Breaker
	var cands []int
	broken, serving := 0, 0
	for i, r := range c.regions {
		r.denied = false
		switch r.state {
		case Open:
			broken++
		case Recovering:
			serving++
			if b.Ramp.Steps[r.step] < 100 {
				broken++
			}
		default:
			serving++
			if obs[i].trip == yes && !r.badSince.IsZero() && now.Sub(r.badSince) >= spec.D(b.Trip.For) {
				cands = append(cands, i)
			}
		}
	}
	slices.SortFunc(cands, func(x, y int) int {
		if c := c.regions[x].badSince.Compare(c.regions[y].badSince); c != 0 {
			return c
		}
		return strings.Compare(c.regions[x].name, c.regions[y].name)
	})
	allowed := c.allowedBroken()
	for _, i := range cands {
		r := c.regions[i]
		if broken+1 > allowed || serving-1 < 1 {
			r.denied = true
			continue
		}
		broken++
		serving--
		if r.tripped && now.Sub(r.closedAt) < spec.D(b.Hold.ResetAfter) {
			r.repeats++
		} else {
			r.repeats = 0
		}
		r.tripped = true
		hold := c.holdFor(r.repeats)
		r.holdUntil = now.Add(hold)
		reason := fmt.Sprintf("%s for %s; open for %s", c.tripSentence(&obs[i]), spec.D(b.Trip.For), hold)
		if r.repeats > 0 {
			reason += fmt.Sprintf(" (repeat %d)", r.repeats)
		}
		events = c.transition(r, now, Open, 0, reason, &obs[i], events)
	}
	return events
}

// allowedBroken is how many regions may be broken at once.
func (c *Core) allowedBroken() int {
	return int(math.Floor(c.s.Breaker.MaxBrokenFraction*float64(len(c.regions)) + 1e-9))
}

// transition moves r to state `to` and records the event.
func (c *Core) transition(r *regionState, now time.Time, to BreakerState, step int, reason string, o *observation, events []Event) []Event {
	from := r.state
	r.state, r.since, r.reason = to, now, reason
	r.step, r.stepSince = step, now
	if to != Open {
		r.holdUntil = time.Time{}
	}
	return c.event(r, now, from, to, reason, o, events)
}

func (c *Core) event(r *regionState, now time.Time, from, to BreakerState, reason string, o *observation, events []Event) []Event {
	r.reason = reason
	b := c.s.Breaker
	vals := map[string]float64{
		"health":              o.healthLo,
		"trip_health":         b.Trip.Health,
		"trip_p99_seconds":    b.Trip.LatencyP99.Seconds(),
		"trip_for_seconds":    b.Trip.For.Seconds(),
		"recover_health":      b.Recover.Health,
		"recover_p99_seconds": b.Recover.LatencyP99.Seconds(),
		"repeat_trips":        float64(r.repeats),
		"ramp_percent":        c.rampPercent(r),
	}
	if o.p99Fresh {
		vals["p99_seconds"] = o.p99
	}
	if !o.healthFresh {
		vals["health_max"] = o.healthHi
	}
	if r.state == Open {
		vals["hold_seconds"] = r.holdUntil.Sub(now).Seconds()
	}
	return append(events, withID(Event{At: now, Kind: catalog.EventKindBreaker, Region: r.name,
		From: string(from), To: string(to), Reason: reason, Values: vals}))
}

// tripSentence says which part of the trip rule held: "p99 0.512s > 0.300s".
func (c *Core) tripSentence(o *observation) string {
	b := c.s.Breaker
	var parts []string
	if o.tripLat == yes {
		parts = append(parts, fmt.Sprintf("p99 %.3fs > %.3fs", o.p99, b.Trip.LatencyP99.Seconds()))
	}
	if o.tripHlth == yes {
		parts = append(parts, fmt.Sprintf("health %.1f < %.1f", o.healthHi, b.Trip.Health))
	}
	return strings.Join(parts, " and ")
}

// recoverSentence says that the recover rule held: "p99 0.150s <= 0.200s and health 92.0 >= 70.0".
func (c *Core) recoverSentence(o *observation) string {
	b := c.s.Breaker
	var parts []string
	if b.Recover.LatencyP99 > 0 {
		parts = append(parts, fmt.Sprintf("p99 %.3fs <= %.3fs", o.p99, b.Recover.LatencyP99.Seconds()))
	}
	if b.Recover.Health > 0 {
		parts = append(parts, fmt.Sprintf("health %.1f >= %.1f", o.healthLo, b.Recover.Health))
	}
	return strings.Join(parts, " and ")
}

func (c *Core) panicEvent(now time.Time, on bool, denied []string) Event {
	ev := Event{At: now, Kind: catalog.EventKindPanic, Region: catalog.GlobalRegion, From: "normal", To: "panic",
		Values: map[string]float64{
			"regions":             float64(len(c.regions)),
			"allowed_broken":      float64(c.allowedBroken()),
			"max_broken_fraction": c.s.Breaker.MaxBrokenFraction,
			"denied":              float64(len(denied)),
		}}
	broken := 0
	for _, r := range c.regions {
		if r.state == Open || (r.state == Recovering && c.s.Breaker.Ramp.Steps[r.step] < 100) {
			broken++
		}
	}
	ev.Values["broken"] = float64(broken)
	if on {
		ev.Reason = fmt.Sprintf("%s met the trip rule but opening would break more than %s of the regions (%d of %d already open or ramping) or the last serving one; serving from all",
			strings.Join(denied, ", "), fmtPct(100*c.s.Breaker.MaxBrokenFraction)+"%", broken, len(c.regions))
	} else {
		ev.From, ev.To = "panic", "normal"
		ev.Reason = "no region is denied a trip any more"
	}
	return withID(ev)
}

func (c *Core) rampPercent(r *regionState) float64 {
	switch r.state {
	case Open:
		return 0
	case Recovering:
		return c.s.Breaker.Ramp.Steps[r.step]
	}
	return 100
}

func hasKind(events []Event, kind string) bool {
	for _, ev := range events {
		if ev.Kind == kind {
			return true
		}
	}
	return false
}

// ratio turns a percentage into a ratio without float noise (99.9 % is
// 0.999, not 0.9990000000000001).
func ratio(pct float64) float64 { return math.Round(pct*1e10) / 1e12 }

func fmtPct(p float64) string { return fmt.Sprintf("%g", p) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
