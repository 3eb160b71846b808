package memhistory_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/report/memhistory"
	"github.com/carpoolsla/carpoolsla/sla/rollup"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// The report's fixture (sla/report/fixture_test.go), as the records the
// platform writes: rollup.Minute, engine.Event and chsink.DrillResult. The
// same values go to memhistory and, converted as cmd/carpoolsla does, to
// ClickHouse (conformance_test.go).

// fixtureSpec is the shipped spec cut down so that the fixture's numbers
// can be worked out by hand: two regions r1 and r2; order (weight 0.6) with
// availability 99.9 % (key) and latency 99 %; payment (weight 0.4) with
// availability 99.5 %; composite objective 99 %; credits below 99.9 → 10 %,
// below 99 → 25 %, below 95 → 100 %; DR rto 90 s, rpo 5 s, region_down rto
// 60 s.
func fixtureSpec(t testing.TB) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.Regions = []spec.Region{{Name: "r1", City: "a"}, {Name: "r2", City: "b"}}
	s.Services = []spec.Service{
		{Name: "order", Weight: 0.6, Operations: []string{"create_ride"}, SLOs: []spec.SLO{
			{Name: "availability", Kind: spec.KindAvailability, Objective: 99.9, Key: true, Window: spec.Duration(30 * 24 * time.Hour)},
			{Name: "latency", Kind: spec.KindLatency, Objective: 99, Threshold: spec.Duration(300 * time.Millisecond), Window: spec.Duration(30 * 24 * time.Hour)},
		}},
		{Name: "payment", Weight: 0.4, Operations: []string{"charge"}, SLOs: []spec.SLO{
			{Name: "availability", Kind: spec.KindAvailability, Objective: 99.5, Window: spec.Duration(30 * 24 * time.Hour)},
		}},
	}
	s.Composite.Objective = 99
	s.DR = spec.DR{RPO: spec.Duration(5 * time.Second), RTO: spec.Duration(90 * time.Second),
		Drills: []spec.DRDrill{{Scenario: spec.ScenarioRegionDown, RTO: spec.Duration(60 * time.Second), RPO: spec.Duration(5 * time.Second)}}}
	s.Credits = []spec.Credit{{Below: 99.9, Percent: 10}, {Below: 99, Percent: 25}, {Below: 95, Percent: 100}}
	if err := s.Validate(); err != nil {
		t.Fatalf("the fixture spec is invalid: %v", err)
	}
	return s
}

var oct1 = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

func at(month time.Month, day, h, m, s int) time.Time {
	return time.Date(2026, month, day, h, m, s, 0, time.UTC)
}

// dataset is what one test loads into a store: the records and the
// replays (the same event ids written again, as after a lost
// acknowledgement) that must count once.
type dataset struct {
	minutes, minuteReplay []rollup.Minute
	events, eventReplay   []engine.Event
	drills, drillReplay   []chsink.DrillResult
}

func minuteRow(minute time.Time, service, slo, region string, good, total uint64) rollup.Minute {
	return rollup.Minute{EventID: rollup.EventID(minute, service, slo, region), Minute: minute,
		Service: service, SLO: slo, Region: region, Good: good, Total: total}
}

func breaker(t time.Time, region, from, to, reason string) engine.Event {
	return engine.Event{ID: fmt.Sprintf("ev|%d|%s|%s|%s", t.UnixNano(), region, from, to), At: t, Kind: "breaker",
		Region: region, From: from, To: to, Reason: reason, Values: map[string]float64{"p99_seconds": 0.42}}
}

func drillRow(t time.Time, scenario, region string, passed bool, rto, rpo float64, name string) chsink.DrillResult {
	return chsink.DrillResult{EventID: chsink.IDFrom("drill", name), Time: t, Scenario: scenario, Region: region, Passed: passed,
		RTOSeconds: rto, RPOSeconds: rpo, DetectSeconds: 1, DecideSeconds: 2, ShiftSeconds: 3, SuccessRatio: 0.999, Report: "{}"}
}

// reportFixture is sla/report's fixture; its comments there work out the
// numbers. Minutes 0..99 of 2026-10-01, for each SLO and region, 1000 good
// of 1000, except:
//
//	(a) order/availability  r1 minute 10:  990 good
//	(b) order/availability  r1 minute 20:  999 good (exactly the objective)
//	(c) order/availability  r2 minute 50:  800 good
//	(d) order/latency       r2 minute 30:  950 good
//	(e) payment/availability r1 minute 40:   0 good
//	(f) payment/availability r2 minute 10: 996 good
//
// plus rows outside October and of an SLO the spec does not list; the
// breaker transitions make 7 October incidents (46.5 min); 4 October drills.
func reportFixture() dataset {
	bad := map[[4]any]uint64{
		{"order", "availability", "r1", 10}:   990,
		{"order", "availability", "r1", 20}:   999,
		{"order", "availability", "r2", 50}:   800,
		{"order", "latency", "r2", 30}:        950,
		{"payment", "availability", "r1", 40}: 0,
		{"payment", "availability", "r2", 10}: 996,
	}
	var ds dataset
	for _, slo := range [][2]string{{"order", "availability"}, {"order", "latency"}, {"payment", "availability"}} {
		for _, r := range []string{"r1", "r2"} {
			for m := range 100 {
				good, ok := bad[[4]any{slo[0], slo[1], r, m}]
				if !ok {
					good = 1000
				}
				ds.minutes = append(ds.minutes, minuteRow(oct1.Add(time.Duration(m)*time.Minute), slo[0], slo[1], r, good, 1000))
			}
		}
	}
	ds.minutes = append(ds.minutes,
		minuteRow(oct1.Add(-time.Minute), "order", "availability", "r1", 0, 1000),
		minuteRow(oct1.AddDate(0, 1, 0), "payment", "availability", "r2", 0, 1000),
		minuteRow(oct1.Add(5*time.Minute), "order", "legacy", "r1", 0, 1000),
	)
	for i, r := range ds.minutes {
		if r.Good < r.Total || i%7 == 0 {
			ds.minuteReplay = append(ds.minuteReplay, r)
		}
	}
	ds.events = []engine.Event{
		breaker(at(9, 30, 23, 50, 0), "r2", "closed", "open", "p99 above 300ms for 2m"),
		breaker(at(10, 1, 0, 20, 0), "r2", "open", "recovering", "recovered"),
		breaker(at(10, 1, 0, 22, 0), "r2", "recovering", "closed", "ramp done"),
		breaker(at(10, 5, 10, 0, 0), "r1", "closed", "open", "health 42 below 50"),
		breaker(at(10, 5, 10, 7, 30), "r1", "open", "recovering", "recovered"),
		breaker(at(10, 5, 10, 8, 0), "r1", "recovering", "open", "p99 above 300ms again"),
		breaker(at(10, 5, 10, 15, 0), "r1", "open", "recovering", "recovered"),
		breaker(at(10, 5, 10, 17, 0), "r1", "recovering", "closed", "ramp done"),
		breaker(at(10, 10, 12, 0, 0), "r2", "closed", "open", "probe failures"),
		breaker(at(10, 10, 12, 1, 0), "r2", "recovering", "closed", "ramp done"),
		breaker(at(10, 10, 12, 1, 0), "r2", "open", "recovering", "recovered"),
		breaker(at(10, 20, 8, 0, 0), "r2", "closed", "open", "p99 above 300ms"),
		breaker(at(10, 20, 8, 5, 0), "r2", "recovering", "open", "p99 above 300ms again"),
		breaker(at(10, 20, 8, 5, 0), "r2", "open", "recovering", "recovered"),
		breaker(at(10, 20, 8, 6, 0), "r2", "open", "recovering", "recovered"),
		breaker(at(10, 20, 8, 8, 0), "r2", "recovering", "closed", "ramp done"),
		{ID: "panic-1", At: at(10, 12, 0, 0, 0), Kind: "panic", Region: "r1", Reason: "two regions broken"},
		breaker(at(10, 31, 23, 55, 0), "r1", "closed", "open", "probe failures"),
		breaker(at(11, 1, 0, 10, 0), "r1", "open", "closed", "recovered"),
	}
	ds.eventReplay = []engine.Event{ds.events[0], ds.events[3], ds.events[12]}
	ds.drills = []chsink.DrillResult{
		drillRow(at(10, 3, 9, 0, 0), "region_down", "r1", true, 45, 1.5, "a"),
		drillRow(at(10, 12, 9, 0, 0), "region_down", "r2", true, 75, 2, "b"),
		drillRow(at(10, 15, 9, 0, 0), "replication_stall", "r1", false, 30, 7, "c"),
		drillRow(at(10, 25, 9, 0, 0), "latency_spike", "r2", true, 20, 0.5, "d"),
		drillRow(at(9, 20, 9, 0, 0), "region_down", "r1", false, 500, 500, "e"),
	}
	ds.drillReplay = []chsink.DrillResult{ds.drills[1]}
	return ds
}

// randomFixture is seeded random history over the fixture spec's regions
// and SLOs, for windows no one works out by hand: five days of October from
// 2026-10-08 with gaps, minutes missing for some SLOs, bad minutes of every
// size, rows of an unknown SLO and region, replays; breaker transitions at
// sub-second times (the history keeps seconds), several regions in one
// second, chains that span windows; drills. Within one region a second
// holds at most one transition, so that no answer depends on an order
// ClickHouse leaves unspecified.
func randomFixture(seed uint64) dataset {
	rng := rand.New(rand.NewPCG(seed, 7))
	var ds dataset
	start := at(10, 8, 0, 0, 0)
	series := [][3]string{
		{"order", "availability", "r1"}, {"order", "availability", "r2"},
		{"order", "latency", "r1"}, {"order", "latency", "r2"},
		{"payment", "availability", "r1"}, {"payment", "availability", "r2"},
		{"order", "legacy", "r1"}, {"payment", "availability", "r9"},
	}
	for m := range 5 * 24 * 60 {
		minute := start.Add(time.Duration(m) * time.Minute)
		if (m/300)%5 == 3 { // a gap of 5 hours in every 25
			continue
		}
		for _, sr := range series {
			if rng.IntN(10) == 0 {
				continue
			}
			total := uint64(rng.IntN(2000))
			good := total
			switch rng.IntN(40) {
			case 0:
				good = 0
			case 1, 2, 3:
				good = total - uint64(rng.IntN(int(total)/50+1))
			case 4:
				good = total * 999 / 1000
			}
			ds.minutes = append(ds.minutes, minuteRow(minute, sr[0], sr[1], sr[2], good, total))
		}
	}
	for _, r := range ds.minutes {
		if rng.IntN(20) == 0 {
			ds.minuteReplay = append(ds.minuteReplay, r)
		}
	}
	next := map[string]string{"closed": "open", "open": "recovering", "recovering": "closed"}
	for _, region := range []string{"r1", "r2", "r9"} {
		state := "closed"
		t := start.Add(-3 * 24 * time.Hour)
		for t.Before(start.Add(6 * 24 * time.Hour)) {
			prev := t
			t = t.Add(time.Duration(rng.IntN(3*3600)+1) * time.Second)
			if h := t.Truncate(time.Hour); rng.IntN(3) == 0 && h.After(prev) { // the same second as other regions
				t = h
			}
			to := next[state]
			if state == "recovering" && rng.IntN(3) == 0 {
				to = "open" // a re-trip during the ramp
			}
			at := t.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
			ds.events = append(ds.events, breaker(at, region, state, to, fmt.Sprintf("reason %d", rng.IntN(1000))))
			state = to
		}
	}
	for _, e := range ds.events {
		if rng.IntN(4) == 0 {
			ds.eventReplay = append(ds.eventReplay, e)
		}
	}
	scenarios := []string{"region_down", "replication_stall", "latency_spike", "clock_skew"}
	for i := range 60 {
		t := start.Add(time.Duration(rng.IntN(5*24*3600)) * time.Second).Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		rto, rpo := float64(rng.IntN(12000))/100, float64(rng.IntN(1000))/100
		if rng.IntN(3) == 0 { // exactly at an objective
			rto, rpo = []float64{30, 60, 90}[rng.IntN(3)], []float64{2, 5}[rng.IntN(2)]
		}
		ds.drills = append(ds.drills, drillRow(t, scenarios[rng.IntN(len(scenarios))], []string{"r1", "r2"}[rng.IntN(2)],
			rng.IntN(4) != 0, rto, rpo, fmt.Sprint("random-", i)))
	}
	for _, d := range ds.drills {
		if rng.IntN(5) == 0 {
			ds.drillReplay = append(ds.drillReplay, d)
		}
	}
	return ds
}

// loadMem writes ds into st, the replays after the records.
func loadMem(t testing.TB, st *memhistory.Store, ds dataset) {
	t.Helper()
	ctx := context.Background()
	for _, rows := range [][]rollup.Minute{ds.minutes, ds.minuteReplay} {
		if err := st.WriteMinutes(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	for _, evs := range [][]engine.Event{ds.events, ds.eventReplay} {
		if err := st.Emit(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	for _, drills := range [][]chsink.DrillResult{ds.drills, ds.drillReplay} {
		for _, d := range drills {
			if err := st.RecordDrill(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// newStore returns a store whose clock is fixed at now, with a retention
// long enough for the fixtures.
func newStore(t testing.TB, now time.Time) *memhistory.Store {
	t.Helper()
	st, err := memhistory.New(memhistory.Config{Retention: 180 * 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return st
}
