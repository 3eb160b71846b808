package drill

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// DefaultSuccessObjective is the order-creation success the seed asks for
// under faults, used when the spec has no availability SLO on create_ride.
const DefaultSuccessObjective = 0.9999

// Objectives are what a drill must meet, each with where it came from.
type Objectives struct {
	RPOSeconds float64 `json:"rpo_seconds"`
	RPOFrom    string  `json:"rpo_from"`
	RTOSeconds float64 `json:"rto_seconds"`
	RTOFrom    string  `json:"rto_from"`
	// Success is the share of ride creations that must succeed.
	Success     float64 `json:"success"`
	SuccessFrom string  `json:"success_from"`
}

// plan is a scenario resolved against the spec: which regions fail, how,
// and what is expected of the others.
type plan struct {
	scenario  string
	faulted   []string // spec order
	survivors []string // spec order
	// down: the faulted regions drop every connection, their gateways too.
	down bool
	// failover: traffic is expected to leave the faulted regions; RTO is
	// measured to the riders being served elsewhere. Otherwise (replication
	// stall, clock skew) the regions keep serving, and RTO is the time
	// replication takes to catch up once the fault is cleared.
	failover    bool
	needsEngine bool
	fault       Fault
	objectives  Objectives
	// pairRPO is the RPO objective of each source→target pair, the bar the
	// sync lag and RPO exposure are held to.
	pairRPO map[pairKey]float64
	// tripP99 (seconds) and tripHealth are the breaker's trip bars: an
	// engine reading a faulted region past one has noticed the fault.
	tripP99, tripHealth float64
}

// pairKey is a replication pair.
type pairKey struct{ Source, Target string }

func (p pairKey) String() string { return p.Source + "→" + p.Target }

// involves reports whether the pair has a faulted region at either end.
func (p plan) involves(k pairKey) bool {
	return slices.Contains(p.faulted, k.Source) || slices.Contains(p.faulted, k.Target)
}

func newPlan(cfg *Config) (plan, error) {
	s := cfg.Spec
	p := plan{scenario: cfg.Scenario}
	switch cfg.Scenario {
	case spec.ScenarioRegionDown:
		p.faulted, p.down, p.failover = []string{cfg.Region}, true, true
		p.fault = Fault{Kind: KindDown}
	case spec.ScenarioSameCityLoss:
		city := cfg.City
		if city == "" {
			city = cityOf(s, cfg.Region)
		}
		p.faulted, p.down, p.failover = regionsOfCity(s, city), true, true
		p.fault = Fault{Kind: KindDown}
	case spec.ScenarioReplicationStall:
		p.faulted = []string{cfg.Region}
		p.fault = Fault{Kind: KindStall}
	case spec.ScenarioLatencySpike:
		p.faulted, p.failover, p.needsEngine = []string{cfg.Region}, true, true
		p.fault = Fault{Kind: KindLatency, Value: cfg.Value, Service: DefaultService}
	case spec.ScenarioClockSkew:
		p.faulted = []string{cfg.Region}
		p.fault = Fault{Kind: KindSkew, Value: cfg.Value}
	default:
		return plan{}, fmt.Errorf("scenario %q: use one of %s", cfg.Scenario, strings.Join(spec.Scenarios, ", "))
	}
	if err := p.fault.Validate(); err != nil {
		return plan{}, fmt.Errorf("scenario %s: %w", cfg.Scenario, err)
	}
	for _, n := range s.RegionNames() {
		if !slices.Contains(p.faulted, n) {
			p.survivors = append(p.survivors, n)
		}
	}
	if len(p.survivors) == 0 {
		return plan{}, fmt.Errorf("scenario %s: every region of the spec would fail (%s); nothing is left to fail over to", cfg.Scenario, strings.Join(p.faulted, ", "))
	}
	p.objectives, p.pairRPO = objectives(s, p)
	p.tripP99, p.tripHealth = spec.D(s.Breaker.Trip.LatencyP99).Seconds(), s.Breaker.Trip.Health
	return p, nil
}

// objectives resolves the drill's objectives: the scenario's own RPO and
// RTO (dr.drills, else the dr defaults), tightened by the pair objectives
// (dr.pairs) of every faulted→surviving pair (and, for the scenarios that
// do not fail over, every pair in either direction): the strictest applies.
func objectives(s *spec.Spec, p plan) (Objectives, map[pairKey]float64) {
	rpo, rto := s.DrillObjectives(p.scenario)
	o := Objectives{RPOSeconds: rpo.Seconds(), RTOSeconds: rto.Seconds()}
	from := "dr (default)"
	if slices.ContainsFunc(s.DR.Drills, func(d spec.DRDrill) bool { return d.Scenario == p.scenario }) {
		from = "dr.drills[" + p.scenario + "]"
	}
	o.RPOFrom, o.RTOFrom = from, from
	pairRPO := map[pairKey]float64{}
	for _, a := range s.RegionNames() {
		for _, b := range s.RegionNames() {
			if a != b {
				r, _ := s.PairObjectives(a, b)
				pairRPO[pairKey{a, b}] = r.Seconds()
			}
		}
	}
	var pairs []pairKey
	for _, f := range p.faulted {
		for _, sv := range p.survivors {
			pairs = append(pairs, pairKey{f, sv})
			if !p.failover {
				pairs = append(pairs, pairKey{sv, f})
			}
		}
	}
	for _, k := range pairs {
		r, t := s.PairObjectives(k.Source, k.Target)
		if r.Seconds() < o.RPOSeconds {
			o.RPOSeconds, o.RPOFrom = r.Seconds(), "dr.pairs["+k.String()+"]"
		}
		if t.Seconds() < o.RTOSeconds {
			o.RTOSeconds, o.RTOFrom = t.Seconds(), "dr.pairs["+k.String()+"]"
		}
	}
	o.Success, o.SuccessFrom = DefaultSuccessObjective, "the seed (no availability SLO on order create_ride in the spec)"
	for _, svc := range s.Services {
		if svc.Name != "order" {
			continue
		}
		for _, slo := range svc.SLOs {
			if slo.Kind == spec.KindAvailability && (len(slo.Operations) == 0 || slices.Contains(slo.Operations, "create_ride")) {
				o.Success, o.SuccessFrom = math.Round(slo.Objective*1e7)/1e9, "services[order].slos["+slo.Name+"]"
			}
		}
	}
	return o, pairRPO
}
