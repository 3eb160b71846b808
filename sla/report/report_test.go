package report

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestMeetsDecidesTheObjectiveExactly(t *testing.T) {
	f := func(good, total uint64, objective float64, want bool) {
		t.Helper()
		if got := meets(good, total, ppb(objective)); got != want {
			t.Errorf("meets(%d, %d, %g %%) = %v, want %v", good, total, objective, got, want)
		}
	}
	f(9999, 10000, 99.99, true) // exactly at the objective
	f(9998, 10000, 99.99, false)
	f(999, 1000, 99.9, true)
	f(1999, 2000, 99.95, true)
	f(1998, 2000, 99.95, false)
	f(math.MaxUint64, math.MaxUint64, 99.99999, true) // no overflow
	f(0, 0, 99.9, true)
}

func TestAKeySLOBelowItsObjectiveVetoesTheComposite(t *testing.T) {
	s := testSpec(t)
	// order/availability (key, 99.99 %, weight 0.35): 999,800 good of 1,000,000 = 99.98 %, 200 bad.
	// Every other SLO: 1,000 of 1,000. Composite = 1 - 0.35·(1 - 0.9998) = 0.99993 → 99.993 % ≥ 99.9,
	// yet the key SLO is below 99.99 %: not met. Credit for 99.993 %: none (above 99.9).
	// Budget of order/availability: 0.01 % of 1,000,000 = 100 events; used 200/100 = 2.
	c := windowCounts{SLOs: []SLOCount{{Service: "order", SLO: "availability", Good: 999_800, Total: 1_000_000, BadMinutes: 3}}}
	for _, t := range targets(s, "") {
		if t.Service != "order" || t.SLO != "availability" {
			c.SLOs = append(c.SLOs, SLOCount{Service: t.Service, SLO: t.SLO, Good: 1000, Total: 1000})
		}
	}
	slos, services, head := attainments(s, "", c)
	if len(slos) != 8 || len(services) != 5 {
		t.Fatalf("got %d SLOs and %d services, want 8 and 5", len(slos), len(services))
	}
	o := slos[0]
	if o.Service != "order" || o.SLO != "availability" || o.Met || !near(*o.AttainmentPercent, 99.98) || !near(*o.ErrorBudgetUsed, 2) || o.BadMinutes != 3 {
		t.Errorf("order/availability = %+v (att %v, budget %v)", o, *o.AttainmentPercent, *o.ErrorBudgetUsed)
	}
	if !near(*head.AttainmentPercent, 99.993) || head.Met || head.CreditPercent != 0 || len(head.KeySLOsBreached) != 1 || head.KeySLOsBreached[0] != "order/availability" {
		t.Errorf("headline = %+v (att %v)", head, *head.AttainmentPercent)
	}
	if services[0].Met || !services[1].Met || !near(*services[0].AttainmentPercent, 99.98) {
		t.Errorf("services = %+v", services)
	}
}

func TestSLOsWithoutEventsAreNullAndCountAsMet(t *testing.T) {
	s := testSpec(t)
	slos, services, head := attainments(s, "", windowCounts{})
	for _, o := range slos {
		if o.AttainmentPercent != nil || o.ErrorBudgetUsed != nil || !o.Met {
			t.Errorf("%s/%s without events = %+v", o.Service, o.SLO, o)
		}
	}
	for _, sv := range services {
		if sv.AttainmentPercent != nil || !sv.Met {
			t.Errorf("%s without events = %+v", sv.Service, sv)
		}
	}
	if head.AttainmentPercent != nil || head.CreditPercent != 0 {
		t.Errorf("headline without events = %+v", head)
	}
}

func TestAServiceReportIsTheProductOfItsSLOsWithItsCredit(t *testing.T) {
	s := testSpec(t)
	// pricing: availability 99.95 %: 9,990 of 10,000 = 99.9 % (not met); latency 99 %: 9,800 of
	// 10,000 = 98 % (not met). Service = 0.999 · 0.98 = 0.97902 → 97.902 %; credit: below 99.9 → 10,
	// below 99 → 25, not below 95 → 25.
	c := windowCounts{SLOs: []SLOCount{
		{Service: "pricing", SLO: "availability", Good: 9990, Total: 10000},
		{Service: "pricing", SLO: "latency", Good: 9800, Total: 10000},
	}}
	slos, services, head := attainments(s, "pricing", c)
	if len(slos) != 2 || len(services) != 1 {
		t.Fatalf("got %d SLOs, %d services", len(slos), len(services))
	}
	if head.Name != "pricing" || head.ObjectivePercent != nil || head.Met || !near(*head.AttainmentPercent, 97.902) || head.CreditPercent != 25 {
		t.Errorf("headline = %+v", head)
	}
	if len(head.KeySLOsBreached) != 0 {
		t.Errorf("pricing has no key SLO, got breaches %v", head.KeySLOsBreached)
	}
}

func TestDrillComplianceUsesEachScenariosObjectives(t *testing.T) {
	s := testSpec(t)
	// The shipped spec: dr rto 90s, rpo 5s; same_city_loss rto 90s; the others inherit.
	d := drReport(s, []DrillStats{
		{Scenario: "region_down", Drills: 2, Passed: 2, WithinObjectives: 2, WorstRTOSeconds: 40, WorstRPOSeconds: 1},
		{Scenario: "replication_stall", Drills: 1, Passed: 0, WithinObjectives: 0, WorstRTOSeconds: 30, WorstRPOSeconds: 9},
	})
	if d.Drills != 3 || d.Passed != 2 || d.WithinObjectives != 2 || d.Compliant || *d.WorstRTOSeconds != 40 || *d.WorstRPOSeconds != 9 {
		t.Errorf("DR = %+v", d)
	}
	if d.RTOObjectiveSeconds != 90 || d.RPOObjectiveSeconds != 5 {
		t.Errorf("objectives %v/%v, want 90/5", d.RTOObjectiveSeconds, d.RPOObjectiveSeconds)
	}
	if sc := d.Scenarios[1]; !sc.RTOMet || sc.RPOMet {
		t.Errorf("replication_stall = %+v; want RTO met, RPO not", sc)
	}
	if none := drReport(s, nil); !none.Compliant || none.WorstRTOSeconds != nil {
		t.Errorf("without drills = %+v; want compliant with null worst values", none)
	}
}

func TestReporterPassesTheScopeToTheHistory(t *testing.T) {
	s := testSpec(t)
	h := &fakeHistory{}
	r := &Reporter{Spec: s, History: h, Now: func() time.Time { return testNow }}
	q := Query{Scope: ScopeService, Service: "payment", Region: "bj-a", From: testNow.Add(-time.Hour), To: testNow, Limit: 10}
	if _, err := r.SLA(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	sq := h.sliQs[0]
	if sq.Region != "bj-a" || len(sq.SLOs) != 1 || sq.SLOs[0].Service != "payment" || sq.SLOs[0].ObjectivePPB != 999_500_000 || !sq.SLOs[0].Key {
		t.Errorf("SLI query = %+v", sq)
	}
	if eq := h.eventQs[0]; eq.Region != "bj-a" || !eq.From.Equal(q.From) || !eq.To.Equal(q.To) || eq.Limit != 100_000 {
		t.Errorf("event query = %+v", eq)
	}
	dq := h.drillQs[0]
	if dq.Region != "bj-a" || dq.Default.RTO != 90*time.Second || dq.Objectives["same_city_loss"].RTO != 90*time.Second || len(dq.Objectives) != 5 {
		t.Errorf("drill query = %+v", dq)
	}
}

func TestMinutesAreSummedAndJudgedOneByOne(t *testing.T) {
	s := testSpec(t)
	m0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	minute := func(i int, counts ...SLOCount) MinuteCounts {
		return MinuteCounts{Minute: m0.Add(time.Duration(i) * time.Minute), SLOs: counts}
	}
	c := func(svc, slo string, good, total uint64) SLOCount {
		return SLOCount{Service: svc, SLO: slo, Good: good, Total: total}
	}
	h := &fakeHistory{minutes: []MinuteCounts{
		// Minute 0: order/latency 990 of 1000 = 99 %, exactly its objective: no SLO below. Yet the composite is
		// 1 - 0.35 × (1 - 0.99) = 0.9965 < 0.999: a composite downtime minute.
		minute(0, c("order", "latency", 990, 1000), c("order", "availability", 1000, 1000)),
		// Minute 1: order/availability 9998 of 10000 = 99.98 % < 99.99 % (key): order down, composite down
		// (veto) although 1 - 0.35 × 0.0002 = 0.99993 ≥ 0.999.
		minute(1, c("order", "availability", 9998, 10000)),
		// Minute 2: dispatch/availability 9990 of 10000 = 99.9 % < 99.95 %: dispatch down; composite
		// 1 - 0.25 × 0.001 = 0.99975 ≥ 0.999 and no key SLO: up.
		minute(2, c("dispatch", "availability", 9990, 10000)),
		// Minute 3: all good; an SLO the spec does not list and an empty row are ignored.
		minute(3, c("payment", "availability", 500, 500), c("payment", "legacy", 0, 500), c("pricing", "latency", 0, 0)),
	}}
	r := &Reporter{Spec: s, History: h}
	got, err := r.sliCounts(context.Background(), SLIQuery{SLOs: targets(s, "")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Minutes != 4 || got.CompositeDownMinutes != 2 {
		t.Errorf("minutes %d, composite down %d; want 4 and 2", got.Minutes, got.CompositeDownMinutes)
	}
	if want := map[string]int{"order": 1, "dispatch": 1}; len(got.ServiceDownMinutes) != 2 || got.ServiceDownMinutes["order"] != 1 || got.ServiceDownMinutes["dispatch"] != 1 {
		t.Errorf("service down minutes %v, want %v", got.ServiceDownMinutes, want)
	}
	want := map[string]SLOCount{
		"order/availability":    {Good: 10998, Total: 11000, BadMinutes: 1},
		"order/latency":         {Good: 990, Total: 1000},
		"dispatch/availability": {Good: 9990, Total: 10000, BadMinutes: 1},
		"payment/availability":  {Good: 500, Total: 500},
	}
	for _, sc := range got.SLOs {
		w := want[sc.Service+"/"+sc.SLO]
		if sc.Good != w.Good || sc.Total != w.Total || sc.BadMinutes != w.BadMinutes {
			t.Errorf("%s/%s = %+v, want %+v", sc.Service, sc.SLO, sc, w)
		}
	}
	h.err = errors.New("connection refused")
	if _, err := r.SLA(context.Background(), Query{Scope: ScopeComposite, Limit: 1}); err == nil || !errors.Is(err, h.err) {
		t.Errorf("a failing history = %v, want its error wrapped", err)
	}
}
