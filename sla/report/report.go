package report

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Downtime definitions, as SLAReport.DowntimeDefinition names them.
const (
	// DowntimeBreakerOpen: minutes the region's breaker was open (scope region).
	DowntimeBreakerOpen = "breaker_open"
	// DowntimeBelowObjective: minutes whose events fell below the objective
	// (scopes composite and service).
	DowntimeBelowObjective = "below_objective"
)

// SLAReport is the answer of GET /api/v1/sla.
type SLAReport struct {
	Scope   Scope  `json:"scope"`
	Service string `json:"service,omitempty"`
	Region  string `json:"region,omitempty"`
	Window  Window `json:"window"`
	// SLA is the headline: the composite (scopes composite and region) or
	// the service's attainment (scope service), with its credit.
	SLA      Headline        `json:"sla"`
	SLOs     []SLOReport     `json:"slos"`
	Services []ServiceReport `json:"services"`
	// DowntimeMinutes is BreakerOpenMinutes for scope region and
	// BelowObjectiveMinutes otherwise; DowntimeDefinition says which.
	DowntimeMinutes    float64 `json:"downtime_minutes"`
	DowntimeDefinition string  `json:"downtime_definition"`
	// BelowObjectiveMinutes counts the minutes the headline was below its
	// objective (see docs/report-api.md).
	BelowObjectiveMinutes int `json:"below_objective_minutes"`
	// BreakerOpenMinutes is the time breakers of the scope's regions were
	// open in the window, summed over regions, in minutes.
	BreakerOpenMinutes float64 `json:"breaker_open_minutes"`
	// Incidents are breaker-open intervals, oldest first, at most the
	// query's limit; IncidentsTotal counts them all and Truncated says some
	// were left out.
	Incidents      []Incident `json:"incidents"`
	IncidentsTotal int        `json:"incidents_total"`
	Truncated      bool       `json:"truncated"`
	DR             DRReport   `json:"dr"`
	GeneratedAt    time.Time  `json:"generated_at"`
}

// Window is a report's time window [From, To).
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Month is the calendar month (2026-10) when the window is one.
	Month string `json:"month,omitempty"`
	// Complete is false while the window reaches past now.
	Complete bool `json:"complete"`
	// ElapsedMinutes is the window's length up to now.
	ElapsedMinutes float64 `json:"elapsed_minutes"`
}

// Headline is the report's SLA figure.
type Headline struct {
	// Name is "composite" or the service's name.
	Name string `json:"name"`
	// AttainmentPercent is null when the window holds no events.
	AttainmentPercent *float64 `json:"attainment_percent"`
	// ObjectivePercent is the composite objective; null for a service, whose
	// objectives are its SLOs'.
	ObjectivePercent *float64 `json:"objective_percent"`
	// Met: the attainment reaches the objective (composite) or every SLO
	// meets its own (service), and no key SLO is breached.
	Met bool `json:"met"`
	// KeySLOsBreached lists breached key SLOs as service/slo (the veto).
	KeySLOsBreached []string `json:"key_slos_breached"`
	// CreditPercent is the spec's credit for AttainmentPercent.
	CreditPercent float64 `json:"credit_percent"`
}

// SLOReport is one SLO over the window.
type SLOReport struct {
	Service          string  `json:"service"`
	SLO              string  `json:"slo"`
	Kind             string  `json:"kind"`
	Key              bool    `json:"key"`
	ObjectivePercent float64 `json:"objective_percent"`
	Good             uint64  `json:"good"`
	Total            uint64  `json:"total"`
	// AttainmentPercent is 100·good/total, null without events.
	AttainmentPercent *float64 `json:"attainment_percent"`
	// ErrorBudgetUsed is the share of the window's error budget spent: bad
	// events / ((1 - objective)·total). 1 is all of it; null without events.
	ErrorBudgetUsed *float64 `json:"error_budget_used"`
	// BadMinutes counts minutes below objective.
	BadMinutes int `json:"bad_minutes"`
	// Met is true when good/total ≥ objective, or without events.
	Met bool `json:"met"`
}

// ServiceReport is one service over the window.
type ServiceReport struct {
	Service string  `json:"service"`
	Weight  float64 `json:"weight"`
	// AttainmentPercent is the product of its SLOs' attainments (an SLO
	// without events counts as 100 %), null when none has events.
	AttainmentPercent *float64 `json:"attainment_percent"`
	// DowntimeMinutes counts minutes in which any of its SLOs was below
	// objective.
	DowntimeMinutes int  `json:"downtime_minutes"`
	Met             bool `json:"met"`
}

// Incident is one breaker-open interval of a region, clipped to the window.
type Incident struct {
	Region string `json:"region"`
	// OpenedAt is when the breaker opened, possibly before the window.
	OpenedAt time.Time `json:"opened_at"`
	// Start is OpenedAt clipped to the window's start.
	Start time.Time `json:"start"`
	// End is when it left open (for recovering or closed), clipped to the
	// window's end; null while it is still open.
	End *time.Time `json:"end"`
	// DurationSeconds is End - Start, or now - Start while ongoing.
	DurationSeconds float64 `json:"duration_seconds"`
	Reason          string  `json:"reason"`
	Ongoing         bool    `json:"ongoing"`
}

// DRReport is the RPO/RTO compliance of the window's drills.
type DRReport struct {
	Drills int `json:"drills"`
	// Passed counts drills that judged themselves passed.
	Passed int `json:"passed"`
	// WithinObjectives counts drills whose RTO and RPO met their scenario's
	// objectives from the spec.
	WithinObjectives int `json:"within_objectives"`
	// Compliant is true when every drill met its objectives (and when there
	// was none).
	Compliant bool `json:"compliant"`
	// WorstRTOSeconds and WorstRPOSeconds are null without drills.
	WorstRTOSeconds     *float64     `json:"worst_rto_seconds"`
	WorstRPOSeconds     *float64     `json:"worst_rpo_seconds"`
	RTOObjectiveSeconds float64      `json:"rto_objective_seconds"`
	RPOObjectiveSeconds float64      `json:"rpo_objective_seconds"`
	Scenarios           []DRScenario `json:"scenarios"`
}

// DRScenario is one scenario's drills.
type DRScenario struct {
	Scenario            string  `json:"scenario"`
	Drills              int     `json:"drills"`
	Passed              int     `json:"passed"`
	WithinObjectives    int     `json:"within_objectives"`
	WorstRTOSeconds     float64 `json:"worst_rto_seconds"`
	WorstRPOSeconds     float64 `json:"worst_rpo_seconds"`
	RTOObjectiveSeconds float64 `json:"rto_objective_seconds"`
	RPOObjectiveSeconds float64 `json:"rpo_objective_seconds"`
	RTOMet              bool    `json:"rto_met"`
	RPOMet              bool    `json:"rpo_met"`
}

// Reporter computes reports from the history and the spec. It holds no
// HTTP; Handler serves it.
type Reporter struct {
	Spec    *spec.Spec
	History History
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// MaxEvents caps the breaker transitions one report reads (default 100000).
	MaxEvents int
}

func (r *Reporter) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// ppb converts an objective in percent to parts per billion.
func ppb(percent float64) uint64 { return uint64(math.Round(percent * 1e7)) }

// meets reports good/total ≥ objective exactly: good·10⁹ ≥ total·ppb in
// 128-bit integers.
func meets(good, total, objPPB uint64) bool {
	gh, gl := bits.Mul64(good, 1e9)
	th, tl := bits.Mul64(total, objPPB)
	return gh > th || (gh == th && gl >= tl)
}

// targets lists the SLOs of the scope (all services, or one).
func targets(s *spec.Spec, service string) []SLOTarget {
	var out []SLOTarget
	for _, svc := range s.Services {
		if service != "" && svc.Name != service {
			continue
		}
		for _, slo := range svc.SLOs {
			out = append(out, SLOTarget{Service: svc.Name, SLO: slo.Name, ObjectivePPB: ppb(slo.Objective), Key: slo.Key})
		}
	}
	return out
}

// sliCounts reads the window's minutes and sums them: per SLO the good and
// total events and the minutes below objective; per service the minutes in
// which any of its SLOs was below objective; and the minutes whose
// composite, computed from that minute's events alone (an SLO or service
// without events losing nothing), was below the composite objective or had
// a key SLO below its own. Memory stays constant whatever the window.
func (r *Reporter) sliCounts(ctx context.Context, q SLIQuery) (windowCounts, error) {
	weight := map[string]float64{}
	for _, svc := range r.Spec.Services {
		weight[svc.Name] = svc.Weight
	}
	idx := make(map[[2]string]int, len(q.SLOs))
	sums := make([]SLOCount, len(q.SLOs))
	var services []string
	svcOf := make([]int, len(q.SLOs))
	for i, t := range q.SLOs {
		idx[[2]string{t.Service, t.SLO}] = i
		sums[i] = SLOCount{Service: t.Service, SLO: t.SLO}
		j := slices.Index(services, t.Service)
		if j < 0 {
			j = len(services)
			services = append(services, t.Service)
		}
		svcOf[i] = j
	}
	out := windowCounts{ServiceDownMinutes: make(map[string]int, len(services))}
	compObjective := float64(ppb(r.Spec.Composite.Objective)) / 1e9
	prod := make([]float64, len(services))
	down := make([]bool, len(services))
	err := r.History.SLIMinutes(ctx, q, func(mc MinuteCounts) error {
		for j := range services {
			prod[j], down[j] = 1, false
		}
		keyDown := false
		for _, c := range mc.SLOs {
			i, ok := idx[[2]string{c.Service, c.SLO}]
			if !ok || c.Total == 0 {
				continue
			}
			sums[i].Good += c.Good
			sums[i].Total += c.Total
			good := min(c.Good, c.Total)
			if !meets(good, c.Total, q.SLOs[i].ObjectivePPB) {
				sums[i].BadMinutes++
				down[svcOf[i]] = true
				keyDown = keyDown || q.SLOs[i].Key
			}
			prod[svcOf[i]] *= float64(good) / float64(c.Total)
		}
		composite := 1.0
		for j, svc := range services {
			composite -= weight[svc] * (1 - prod[j])
			if down[j] {
				out.ServiceDownMinutes[svc]++
			}
		}
		if composite < compObjective || keyDown {
			out.CompositeDownMinutes++
		}
		out.Minutes++
		return nil
	})
	out.SLOs = sums
	return out, err
}

// SLA computes the report of q.
func (r *Reporter) SLA(ctx context.Context, q Query) (*SLAReport, error) {
	now := r.now()
	s := r.Spec
	rep := &SLAReport{
		Scope: q.Scope, Service: q.Service, Region: q.Region,
		Window:      window(q.From, q.To, q.Month, now),
		GeneratedAt: now,
	}
	counts, err := r.sliCounts(ctx, SLIQuery{From: q.From, To: q.To, Region: q.Region, SLOs: targets(s, q.Service)})
	if err != nil {
		return nil, fmt.Errorf("reading SLI minutes: %w", err)
	}
	rep.SLOs, rep.Services, rep.SLA = attainments(s, q.Service, counts)
	maxEvents := r.MaxEvents
	if maxEvents <= 0 {
		maxEvents = 100_000
	}
	hist, err := r.History.BreakerEvents(ctx, EventQuery{From: q.From, To: q.To, Region: q.Region, Limit: maxEvents})
	if err != nil {
		return nil, fmt.Errorf("reading breaker events: %w", err)
	}
	incidents := Incidents(hist, q.From, q.To, now)
	rep.IncidentsTotal = len(incidents)
	for _, in := range incidents {
		rep.BreakerOpenMinutes += in.DurationSeconds / 60
	}
	rep.BreakerOpenMinutes = round6(rep.BreakerOpenMinutes)
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultMaxIncidents
	}
	if len(incidents) > limit {
		incidents = incidents[:limit]
	}
	rep.Incidents = append([]Incident{}, incidents...)
	rep.Truncated = hist.Truncated || rep.IncidentsTotal > len(incidents)

	if q.Scope == ScopeService {
		rep.BelowObjectiveMinutes = counts.ServiceDownMinutes[q.Service]
	} else {
		rep.BelowObjectiveMinutes = counts.CompositeDownMinutes
	}
	if q.Scope == ScopeRegion {
		rep.DowntimeMinutes, rep.DowntimeDefinition = rep.BreakerOpenMinutes, DowntimeBreakerOpen
	} else {
		rep.DowntimeMinutes, rep.DowntimeDefinition = float64(rep.BelowObjectiveMinutes), DowntimeBelowObjective
	}

	dq := DrillQuery{
		From: q.From, To: q.To, Region: q.Region,
		Objectives: map[string]DrillObjective{},
		Default:    DrillObjective{RTO: spec.D(s.DR.RTO), RPO: spec.D(s.DR.RPO)},
	}
	for _, d := range s.DR.Drills {
		dq.Objectives[d.Scenario] = DrillObjective{RTO: spec.D(d.RTO), RPO: spec.D(d.RPO)}
	}
	stats, err := r.History.DrillStats(ctx, dq)
	if err != nil {
		return nil, fmt.Errorf("reading drill results: %w", err)
	}
	rep.DR = drReport(s, stats)
	return rep, nil
}

func window(from, to time.Time, month string, now time.Time) Window {
	end := to
	if now.Before(end) {
		end = now
	}
	elapsed := 0.0
	if end.After(from) {
		elapsed = end.Sub(from).Minutes()
	}
	return Window{From: from, To: to, Month: month, Complete: !now.Before(to), ElapsedMinutes: elapsed}
}

// attainments turns SLI counts into SLO, service and headline figures, per
// docs/spec.md: service attainment = ∏ SLO attainments; composite =
// Σ weight·service attainment; a breached key SLO vetoes.
func attainments(s *spec.Spec, service string, c windowCounts) ([]SLOReport, []ServiceReport, Headline) {
	byKey := make(map[string]SLOCount, len(c.SLOs))
	for _, sc := range c.SLOs {
		byKey[sc.Service+"/"+sc.SLO] = sc
	}
	var slos []SLOReport
	var services []ServiceReport
	composite, anyEvents := 0.0, false
	head := Headline{Name: "composite", KeySLOsBreached: []string{}}
	allMet := true
	for _, svc := range s.Services {
		if service != "" && svc.Name != service {
			continue
		}
		prod, svcEvents, svcMet := 1.0, false, true
		for _, slo := range svc.SLOs {
			sc := byKey[svc.Name+"/"+slo.Name]
			obj := ppb(slo.Objective)
			sr := SLOReport{
				Service: svc.Name, SLO: slo.Name, Kind: slo.Kind, Key: slo.Key, ObjectivePercent: slo.Objective,
				Good: sc.Good, Total: sc.Total, BadMinutes: sc.BadMinutes, Met: true,
			}
			if sc.Total > 0 {
				good := min(sc.Good, sc.Total)
				att := float64(good) / float64(sc.Total)
				sr.AttainmentPercent = ptr(100 * att)
				sr.ErrorBudgetUsed = ptr(float64(sc.Total-good) * 1e9 / (float64(sc.Total) * float64(1e9-obj)))
				sr.Met = meets(good, sc.Total, obj)
				prod *= att
				svcEvents = true
			}
			if !sr.Met {
				svcMet = false
				if slo.Key {
					head.KeySLOsBreached = append(head.KeySLOsBreached, svc.Name+"/"+slo.Name)
				}
			}
			slos = append(slos, sr)
		}
		sv := ServiceReport{Service: svc.Name, Weight: svc.Weight, DowntimeMinutes: c.ServiceDownMinutes[svc.Name], Met: svcMet}
		if svcEvents {
			sv.AttainmentPercent = ptr(100 * prod)
			anyEvents = true
		}
		allMet = allMet && svcMet
		composite += svc.Weight * prod
		services = append(services, sv)
	}
	if service != "" {
		head.Name = service
		head.Met = allMet
		if anyEvents {
			head.AttainmentPercent = services[0].AttainmentPercent
		}
	} else {
		obj := s.Composite.Objective
		head.ObjectivePercent = &obj
		if anyEvents {
			head.AttainmentPercent = ptr(100 * composite)
		}
		head.Met = 100*composite >= obj && len(head.KeySLOsBreached) == 0
	}
	if head.AttainmentPercent != nil {
		head.CreditPercent = s.CreditFor(*head.AttainmentPercent)
	}
	return slos, services, head
}

func drReport(s *spec.Spec, stats []DrillStats) DRReport {
	d := DRReport{RTOObjectiveSeconds: s.DR.RTO.Seconds(), RPOObjectiveSeconds: s.DR.RPO.Seconds(), Scenarios: []DRScenario{}}
	for _, st := range stats {
		rpo, rto := s.DrillObjectives(st.Scenario)
		sc := DRScenario{
			Scenario: st.Scenario, Drills: st.Drills, Passed: st.Passed, WithinObjectives: st.WithinObjectives,
			WorstRTOSeconds: st.WorstRTOSeconds, WorstRPOSeconds: st.WorstRPOSeconds,
			RTOObjectiveSeconds: rto.Seconds(), RPOObjectiveSeconds: rpo.Seconds(),
		}
		sc.RTOMet = sc.WorstRTOSeconds <= sc.RTOObjectiveSeconds
		sc.RPOMet = sc.WorstRPOSeconds <= sc.RPOObjectiveSeconds
		d.Scenarios = append(d.Scenarios, sc)
		d.Drills += st.Drills
		d.Passed += st.Passed
		d.WithinObjectives += st.WithinObjectives
		if st.Drills > 0 {
			if d.WorstRTOSeconds == nil || st.WorstRTOSeconds > *d.WorstRTOSeconds {
				d.WorstRTOSeconds = ptr(st.WorstRTOSeconds)
			}
			if d.WorstRPOSeconds == nil || st.WorstRPOSeconds > *d.WorstRPOSeconds {
				d.WorstRPOSeconds = ptr(st.WorstRPOSeconds)
			}
		}
	}
	d.Compliant = d.WithinObjectives == d.Drills
	return d
}

func ptr[T any](v T) *T { return &v }

// round6 rounds to 6 decimals, so sums of seconds/60 read cleanly.
func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }
