package memhistory_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/report/memhistory"
	"github.com/carpoolsla/carpoolsla/sla/rollup"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

var ctx = context.Background()

var octSLOs = []report.SLOTarget{
	{Service: "order", SLO: "availability", ObjectivePPB: 999_000_000, Key: true},
	{Service: "order", SLO: "latency", ObjectivePPB: 990_000_000},
	{Service: "payment", SLO: "availability", ObjectivePPB: 995_000_000},
}

// minutesOf reads q's minutes into a slice (copying each minute's counts).
func minutesOf(t *testing.T, st report.SLIHistory, q report.SLIQuery) []report.MinuteCounts {
	t.Helper()
	var out []report.MinuteCounts
	err := st.SLIMinutes(ctx, q, func(mc report.MinuteCounts) error {
		out = append(out, report.MinuteCounts{Minute: mc.Minute, SLOs: slices.Clone(mc.SLOs)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConfig(t *testing.T) {
	for name, c := range map[string]struct {
		cfg  memhistory.Config
		want string // "" for valid
	}{
		"The zero config is valid: every field has a default.":    {memhistory.Config{}, ""},
		"A retention of a day is the shortest allowed.":           {memhistory.Config{Retention: 24 * time.Hour}, ""},
		"A retention under a day says to give at least one day.":  {memhistory.Config{Retention: time.Hour}, "Retention is 1h0m0s; give at least one day"},
		"A negative retention is refused.":                        {memhistory.Config{Retention: -time.Hour}, "Retention is -1h0m0s"},
		"A negative row bound says what to give instead.":         {memhistory.Config{MaxRows: -1}, "MaxRows is -1; give a positive bound"},
		"Both mistakes are reported together, naming each field.": {memhistory.Config{Retention: time.Minute, MaxRows: -5}, "MaxRows is -5"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := memhistory.New(c.cfg)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("New = %v, want no error", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("New = %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestTheFixtureMonthFromMemoryEqualsTheNumbersWorkedOutByHand(t *testing.T) {
	now := at(11, 5, 12, 0, 0)
	st := newStore(t, now)
	loadMem(t, st, reportFixture())
	r := &report.Reporter{Spec: fixtureSpec(t), History: st, Now: func() time.Time { return now }}

	rep, err := r.SLA(ctx, report.Query{Scope: report.ScopeComposite, From: oct1, To: oct1.AddDate(0, 1, 0), Month: "2026-10", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]uint64{ // good, total, bad minutes
		"order/availability":   {199_789, 200_000, 2},
		"order/latency":        {199_950, 200_000, 1},
		"payment/availability": {198_996, 200_000, 1},
	}
	for _, s := range rep.SLOs {
		w := want[s.Service+"/"+s.SLO]
		if s.Good != w[0] || s.Total != w[1] || uint64(s.BadMinutes) != w[2] {
			t.Errorf("%s/%s = %d of %d, %d bad minutes; want %v", s.Service, s.SLO, s.Good, s.Total, s.BadMinutes, w)
		}
	}
	if !near(*rep.SLA.AttainmentPercent, 99.720915825) || rep.SLA.Met || rep.SLA.CreditPercent != 10 {
		t.Errorf("headline = %+v (att %v); want 99.720915825 %%, not met (key SLO), credit 10", rep.SLA, *rep.SLA.AttainmentPercent)
	}
	if rep.IncidentsTotal != 7 || rep.BreakerOpenMinutes != 46.5 || !rep.Incidents[0].OpenedAt.Equal(at(9, 30, 23, 50, 0)) {
		t.Errorf("%d incidents, %v min, first opened %s; want 7, 46.5, 09-30 23:50", rep.IncidentsTotal, rep.BreakerOpenMinutes, rep.Incidents[0].OpenedAt)
	}
	if dr := rep.DR; dr.Drills != 4 || dr.Passed != 3 || dr.WithinObjectives != 2 || *dr.WorstRTOSeconds != 75 || *dr.WorstRPOSeconds != 7 {
		t.Errorf("DR = %+v", dr)
	}

	// One region: r1's incidents 2, 3 and 7 are 1170 s.
	rep, err = r.SLA(ctx, report.Query{Scope: report.ScopeRegion, Region: "r1", From: oct1, To: oct1.AddDate(0, 1, 0), Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if !near(*rep.SLA.AttainmentPercent, 99.5934) || rep.DowntimeMinutes != 19.5 || rep.IncidentsTotal != 3 || rep.BelowObjectiveMinutes != 2 {
		t.Errorf("r1: att %v, downtime %v, incidents %d, below %d; want 99.5934, 19.5, 3, 2",
			*rep.SLA.AttainmentPercent, rep.DowntimeMinutes, rep.IncidentsTotal, rep.BelowObjectiveMinutes)
	}
}

func TestAReplayedMinuteTransitionOrDrillCountsOnce(t *testing.T) {
	now := at(11, 5, 12, 0, 0)
	once, twice := newStore(t, now), newStore(t, now)
	ds := reportFixture()
	loadMem(t, once, dataset{minutes: ds.minutes, events: ds.events, drills: ds.drills})
	loadMem(t, twice, ds)
	loadMem(t, twice, ds) // and everything again

	q := report.SLIQuery{From: oct1.Add(-time.Hour), To: oct1.AddDate(0, 1, 1), SLOs: octSLOs}
	if a, b := minutesOf(t, once, q), minutesOf(t, twice, q); !reflect.DeepEqual(a, b) || len(a) != 102 {
		t.Errorf("minutes differ after replays: %d minutes once, %d replayed (want 102 each)", len(a), len(b))
	}
	eq := report.EventQuery{From: oct1, To: oct1.AddDate(0, 1, 0), Limit: 1000}
	if a, b := mustEvents(t, once, eq), mustEvents(t, twice, eq); !reflect.DeepEqual(a, b) || len(a.Events) != 16 {
		t.Errorf("breaker events differ after replays: %d once, %d replayed (want 16)", len(a.Events), len(b.Events))
	}
	dq := report.DrillQuery{From: oct1, To: oct1.AddDate(0, 1, 0)}
	if a, b := mustDrills(t, once, dq), mustDrills(t, twice, dq); !reflect.DeepEqual(a, b) || len(a) != 3 {
		t.Errorf("drills differ after replays: %+v vs %+v", a, b)
	}
	so, st := once.Stats(), twice.Stats()
	if so.Minutes != st.Minutes || so.Events != st.Events || so.Drills != st.Drills || so.Minutes != len(ds.minutes) || so.Events != 18 || so.Drills != 5 {
		t.Errorf("rows held: once %+v, replayed %+v; want %d minutes, 18 transitions, 5 drills each", so, st, len(ds.minutes))
	}
	wantDup := uint64(2*len(ds.minuteReplay) + len(ds.minutes) + 2*len(ds.eventReplay) + 18 + 2*len(ds.drillReplay) + len(ds.drills))
	if so.Duplicates != 0 || st.Duplicates != wantDup || st.Ignored != 2 {
		t.Errorf("duplicates: once %d, replayed %d (want 0 and %d); ignored %d (want the 2 panic events)", so.Duplicates, st.Duplicates, wantDup, st.Ignored)
	}
}

func TestAReplayWithOtherValuesReplacesTheRowHeld(t *testing.T) {
	st := newStore(t, at(10, 2, 0, 0, 0))
	m := oct1.Add(10 * time.Minute)
	id := rollup.EventID(m, "order", "availability", "r1")
	write := func(rows ...rollup.Minute) {
		t.Helper()
		if err := st.WriteMinutes(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	write(rollup.Minute{EventID: id, Minute: m, Service: "order", SLO: "availability", Region: "r1", Good: 5, Total: 10})
	write(rollup.Minute{EventID: id, Minute: m, Service: "order", SLO: "availability", Region: "r1", Good: 9, Total: 10})
	q := report.SLIQuery{From: oct1, To: oct1.Add(time.Hour), SLOs: octSLOs}
	got := minutesOf(t, st, q)
	if len(got) != 1 || got[0].SLOs[0].Good != 9 || got[0].SLOs[0].Total != 10 {
		t.Errorf("after a replay with new counts = %+v; want the last write, 9 of 10", got)
	}
	// The same id at another minute and for another SLO: ClickHouse keeps one row for an id.
	write(rollup.Minute{EventID: id, Minute: m.Add(24 * time.Hour), Service: "order", SLO: "latency", Region: "r2", Good: 1, Total: 2})
	got = minutesOf(t, st, report.SLIQuery{From: oct1, To: oct1.AddDate(0, 0, 2), SLOs: octSLOs})
	if len(got) != 1 || !got[0].Minute.Equal(m.Add(24*time.Hour)) || got[0].SLOs[0] != (report.SLOCount{Service: "order", SLO: "latency", Good: 1, Total: 2}) {
		t.Errorf("after moving the id = %+v; want only the moved row", got)
	}
	if s := st.Stats(); s.Minutes != 1 || s.Duplicates != 2 {
		t.Errorf("stats = %+v; want 1 row, 2 duplicates", s)
	}

	// A transition re-sent with another reason replaces the one held.
	ev := breaker(at(10, 1, 1, 0, 0), "r1", "closed", "open", "first")
	ev2 := ev
	ev2.Reason = "second"
	if err := st.Emit(ctx, []engine.Event{ev, ev2}); err != nil {
		t.Fatal(err)
	}
	h := mustEvents(t, st, report.EventQuery{From: oct1, To: oct1.AddDate(0, 0, 2), Limit: 10})
	if len(h.Events) != 1 || h.Events[0].Reason != "second" {
		t.Errorf("events = %+v; want the one with reason second", h.Events)
	}
}

func TestZeroIDsAndTimesAreFilledAsChsinkFillsThem(t *testing.T) {
	now := at(10, 2, 3, 4, 5)
	st := newStore(t, now)
	// A minute without an id gets chsink's id of (minute, service, SLO,
	// region): written twice it is one row; without a time it is now's minute.
	row := rollup.Minute{Service: "order", SLO: "availability", Region: "r1", Good: 1, Total: 1}
	for range 2 {
		if err := st.WriteMinutes(ctx, []rollup.Minute{row}); err != nil {
			t.Fatal(err)
		}
	}
	got := minutesOf(t, st, report.SLIQuery{From: oct1, To: oct1.AddDate(0, 0, 3), SLOs: octSLOs})
	if len(got) != 1 || !got[0].Minute.Equal(at(10, 2, 3, 4, 0)) || got[0].SLOs[0].Total != 1 {
		t.Errorf("minutes = %+v; want one row at 03:04", got)
	}
	// A drill without an id gets a random one, as chsink gives it: written
	// twice it is two drills.
	d := chsink.DrillResult{Scenario: "region_down", Region: "r1", Passed: true, RTOSeconds: 10}
	for range 2 {
		if err := st.RecordDrill(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// A transition without an id gets one from its content: sent twice it is one.
	ev := engine.Event{At: at(10, 2, 1, 0, 0), Kind: "breaker", Region: "r1", From: "closed", To: "open"}
	if err := st.Emit(ctx, []engine.Event{ev, ev}); err != nil {
		t.Fatal(err)
	}
	// A transition without a time is now's.
	if err := st.Emit(ctx, []engine.Event{{ID: "x", Kind: "breaker", Region: "r2", From: "closed", To: "open"}}); err != nil {
		t.Fatal(err)
	}
	ds := mustDrills(t, st, report.DrillQuery{From: oct1, To: oct1.AddDate(0, 0, 3)})
	h := mustEvents(t, st, report.EventQuery{From: oct1, To: oct1.AddDate(0, 0, 3), Limit: 10})
	if len(ds) != 1 || ds[0].Drills != 2 || len(h.Events) != 2 || !h.Events[1].At.Equal(now) {
		t.Errorf("drills %+v, events %+v; want 2 drills and 2 transitions, the last at %s", ds, h.Events, now)
	}
}

func mustEvents(t *testing.T, st report.EventHistory, q report.EventQuery) report.BreakerHistory {
	t.Helper()
	h, err := st.BreakerEvents(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustDrills(t *testing.T, st report.DrillHistory, q report.DrillQuery) []report.DrillStats {
	t.Helper()
	d, err := st.DrillStats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMinutesComeInTimeOrderWhateverTheWriteOrder(t *testing.T) {
	st := newStore(t, at(10, 10, 0, 0, 0))
	var rows []rollup.Minute
	// Three days, backwards, the SLOs in reverse order, regions interleaved.
	for m := 3*24*60 - 1; m >= 0; m -= 7 {
		minute := oct1.Add(time.Duration(m) * time.Minute)
		for i := len(octSLOs) - 1; i >= 0; i-- {
			for _, r := range []string{"r2", "r1"} {
				rows = append(rows, minuteRow(minute, octSLOs[i].Service, octSLOs[i].SLO, r, uint64(m%5), 4))
			}
		}
	}
	for i := 0; i < len(rows); i += 100 {
		if err := st.WriteMinutes(ctx, rows[i:min(i+100, len(rows))]); err != nil {
			t.Fatal(err)
		}
	}
	got := minutesOf(t, st, report.SLIQuery{From: oct1, To: oct1.AddDate(0, 0, 3), SLOs: octSLOs})
	if len(got) != (3*24*60+6)/7 {
		t.Fatalf("%d minutes, want %d", len(got), (3*24*60+6)/7)
	}
	for i, mc := range got {
		if i > 0 && !mc.Minute.After(got[i-1].Minute) {
			t.Fatalf("minute %d (%s) is not after %s", i, mc.Minute, got[i-1].Minute)
		}
		m := int(mc.Minute.Sub(oct1) / time.Minute)
		for j, c := range mc.SLOs {
			if c.Service != octSLOs[j].Service || c.SLO != octSLOs[j].SLO || c.Good != 2*uint64(m%5) || c.Total != 8 {
				t.Fatalf("minute %s SLO %d = %+v; want %s/%s in the query's order, %d of 8 (both regions)", mc.Minute, j, c, octSLOs[j].Service, octSLOs[j].SLO, 2*(m%5))
			}
		}
	}
	// One region, and a window cut at whole seconds: [00:06:59.9, 00:14:00.5)
	// is [00:06:59, 00:14:00), minutes 7 and (not) 14.
	got = minutesOf(t, st, report.SLIQuery{From: oct1.Add(419*time.Second + 900*time.Millisecond), To: oct1.Add(14*time.Minute + 500*time.Millisecond), Region: "r1", SLOs: octSLOs[:1]})
	if len(got) != 1 || !got[0].Minute.Equal(oct1.Add(7*time.Minute)) || got[0].SLOs[0].Total != 4 {
		t.Errorf("a sub-second window = %+v; want minute 00:07 of r1 alone", got)
	}
}

func TestTransitionsComeInTimeAndRegionOrderAndTiesKeepTheWriteOrder(t *testing.T) {
	st := newStore(t, at(10, 10, 0, 0, 0))
	t0 := at(10, 2, 12, 0, 0)
	evs := []engine.Event{
		breaker(t0.Add(2*time.Hour), "r1", "open", "recovering", "later"),
		breaker(t0.Add(1500*time.Millisecond), "r2", "closed", "open", "r2 tie"),
		breaker(t0.Add(1200*time.Millisecond), "r1", "open", "recovering", "r1 tie b"),
		breaker(t0.Add(1*time.Second), "r1", "closed", "open", "r1 tie a"),
		breaker(t0.Add(-time.Hour), "r2", "open", "closed", "before"),
	}
	if err := st.Emit(ctx, evs); err != nil {
		t.Fatal(err)
	}
	h := mustEvents(t, st, report.EventQuery{From: t0, To: t0.Add(3 * time.Hour), Limit: 10})
	var got []string
	for _, e := range h.Events {
		got = append(got, e.At.Format("15:04:05")+" "+e.Region+" "+e.Reason)
	}
	want := []string{"12:00:01 r1 r1 tie b", "12:00:01 r1 r1 tie a", "12:00:01 r2 r2 tie", "14:00:00 r1 later"}
	if !slices.Equal(got, want) || h.Truncated {
		t.Errorf("events = %q, truncated %v\nwant %q", got, h.Truncated, want)
	}
	if b := h.Before; len(b) != 1 || b["r2"].Reason != "before" {
		t.Errorf("before = %+v; want r2's transition of 11:00", b)
	}
	h = mustEvents(t, st, report.EventQuery{From: t0, To: t0.Add(3 * time.Hour), Limit: 2})
	if len(h.Events) != 2 || !h.Truncated {
		t.Errorf("with limit 2: %d events, truncated %v", len(h.Events), h.Truncated)
	}
	h = mustEvents(t, st, report.EventQuery{From: t0, To: t0.Add(3 * time.Hour), Region: "r1", Limit: 0})
	if len(h.Events) != 1 || h.Events[0].Reason != "r1 tie b" || !h.Truncated || len(h.Before) != 0 {
		t.Errorf("r1 with limit 0 (taken as 1) = %+v", h)
	}
	// The state in force at 13:00 is r1's last transition of 12:00:01: the
	// one no other continues from (open → recovering), whatever the write order.
	h = mustEvents(t, st, report.EventQuery{From: t0.Add(time.Hour), To: t0.Add(3 * time.Hour), Limit: 10})
	if h.Before["r1"].Reason != "r1 tie b" || h.Before["r2"].Reason != "r2 tie" || len(h.Events) != 1 {
		t.Errorf("before 13:00 = %+v", h.Before)
	}
	// A cycle in one second (open → recovering → open, a re-trip during the
	// ramp's first second) has no last link: the last written is the state
	// the engine left the region in.
	for _, order := range [][2]string{{"open", "recovering"}, {"recovering", "open"}} {
		st := newStore(t, at(10, 10, 0, 0, 0))
		var evs []engine.Event
		for _, from := range order {
			to := map[string]string{"open": "recovering", "recovering": "open"}[from]
			evs = append(evs, breaker(t0, "r3", from, to, from+" to "+to))
		}
		if err := st.Emit(ctx, evs); err != nil {
			t.Fatal(err)
		}
		h := mustEvents(t, st, report.EventQuery{From: t0.Add(time.Second), To: t0.Add(time.Hour), Limit: 10})
		if want := evs[1].Reason; h.Before["r3"].Reason != want {
			t.Errorf("after a cycle written %v: before = %+v; want %q", order, h.Before["r3"], want)
		}
	}
}

func TestDrillsAreSummedPerScenarioInNameOrder(t *testing.T) {
	st := newStore(t, at(10, 30, 0, 0, 0))
	for _, d := range []chsink.DrillResult{
		drillRow(at(10, 3, 0, 0, 0), "zone", "r1", true, 10, 1, "1"),
		drillRow(at(10, 3, 0, 0, 0), "alpha", "r2", false, 100, 1, "2"),
		drillRow(at(10, 4, 0, 0, 0), "alpha", "r1", true, 60, 5, "3"),
		drillRow(at(10, 4, 0, 0, 0), "alpha", "r1", true, 60.5, 0, "4"),
		drillRow(at(10, 9, 0, 0, 0), "alpha", "r1", true, 1, 1, "5"), // outside the window
	} {
		if err := st.RecordDrill(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got := mustDrills(t, st, report.DrillQuery{From: at(10, 1, 0, 0, 0), To: at(10, 9, 0, 0, 0),
		Objectives: map[string]report.DrillObjective{"alpha": {RTO: 60 * time.Second, RPO: 5 * time.Second}},
		Default:    report.DrillObjective{RTO: 5 * time.Second, RPO: 5 * time.Second}})
	want := []report.DrillStats{
		{Scenario: "alpha", Drills: 3, Passed: 2, WithinObjectives: 1, WorstRTOSeconds: 100, WorstRPOSeconds: 5},
		{Scenario: "zone", Drills: 1, Passed: 1, WithinObjectives: 0, WorstRTOSeconds: 10, WorstRPOSeconds: 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("drills = %+v\nwant     %+v", got, want)
	}
	if got := mustDrills(t, st, report.DrillQuery{From: at(10, 1, 0, 0, 0), To: at(10, 9, 0, 0, 0), Region: "r2"}); len(got) != 1 || got[0].Drills != 1 {
		t.Errorf("r2's drills = %+v", got)
	}
}

func TestRetentionDropsOldDaysOnWriteAndKeepsTheStateInForce(t *testing.T) {
	var clock atomic.Int64
	clock.Store(at(10, 1, 12, 0, 0).Unix())
	now := func() time.Time { return time.Unix(clock.Load(), 0).UTC() }
	st, err := memhistory.New(memhistory.Config{Retention: 3 * 24 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// A minute a day from 09-29 to 10-01 (the last 3 days at 10-01), a
	// transition a day that leaves r1 open since 09-29, and a drill a day.
	for d := range 3 {
		day := at(9, 29, 6, 0, 0).AddDate(0, 0, d)
		if err := st.WriteMinutes(ctx, []rollup.Minute{minuteRow(day, "order", "availability", "r1", 1, 1)}); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordDrill(ctx, drillRow(day, "region_down", "r1", true, 1, 1, day.String())); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Emit(ctx, []engine.Event{
		breaker(at(9, 29, 6, 0, 0), "r1", "closed", "open", "tripped"),
		breaker(at(9, 29, 6, 0, 0), "r2", "closed", "open", "tripped"),
		breaker(at(9, 30, 6, 0, 0), "r2", "open", "closed", "recovered"),
	}); err != nil {
		t.Fatal(err)
	}
	// A row of 09-28 is older than the retention at 10-01: dropped on write.
	if err := st.WriteMinutes(ctx, []rollup.Minute{minuteRow(at(9, 28, 23, 59, 0), "order", "availability", "r1", 1, 1)}); err != nil {
		t.Fatal(err)
	}
	if s := st.Stats(); s.Minutes != 3 || s.Events != 3 || s.Drills != 3 || s.Expired != 1 || s.Trimmed != 0 {
		t.Fatalf("at 10-01: %+v; want 3 minutes, 3 transitions, 3 drills, 1 expired", s)
	}

	// Two days on, the next write drops 09-29 and 09-30.
	clock.Store(at(10, 3, 0, 0, 1).Unix())
	if err := st.WriteMinutes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	s := st.Stats()
	// The transitions of 09-29 stay: r1's is the state in force since; r2's
	// last before the retention is 09-30's.
	if s.Minutes != 1 || s.Drills != 1 || s.Events != 2 || s.Trimmed != 2+2+1 {
		t.Errorf("at 10-03: %+v; want 1 minute, 1 drill, 2 transitions, 5 trimmed", s)
	}
	got := minutesOf(t, st, report.SLIQuery{From: at(9, 1, 0, 0, 0), To: at(11, 1, 0, 0, 0), SLOs: octSLOs})
	if len(got) != 1 || !got[0].Minute.Equal(at(10, 1, 6, 0, 0)) {
		t.Errorf("minutes left = %+v; want 10-01 06:00 only", got)
	}
	h := mustEvents(t, st, report.EventQuery{From: at(10, 2, 0, 0, 0), To: at(10, 4, 0, 0, 0), Limit: 10})
	if h.Before["r1"].To != "open" || h.Before["r2"].To != "closed" || len(h.Events) != 0 {
		t.Errorf("state at 10-02 = %+v; want r1 open, r2 closed", h.Before)
	}
}

func TestAFullStoreRefusesAWholeWriteAndSaysWhatToDo(t *testing.T) {
	now := at(10, 5, 0, 0, 0)
	st, err := memhistory.New(memhistory.Config{MaxRows: 10, Retention: 3 * 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	var rows []rollup.Minute
	for m := range 12 {
		rows = append(rows, minuteRow(at(10, 4, 0, m, 0), "order", "availability", "r1", 1, 1))
	}
	if err := st.WriteMinutes(ctx, rows[:8]); err != nil {
		t.Fatal(err)
	}
	// 8 held; rows 6..11 hold 4 new ones: 12 > 10.
	err = st.WriteMinutes(ctx, rows[6:])
	if !errors.Is(err, memhistory.ErrFull) || !strings.Contains(err.Error(), "raise MaxRows or shorten Retention") {
		t.Fatalf("a write past MaxRows = %v; want ErrFull saying what to do", err)
	}
	if s := st.Stats(); s.Minutes != 8 || s.Rejected != 4 {
		t.Errorf("after the refused write: %+v; want the 8 rows held, 4 rejected", s)
	}
	// Replays and rows older than the retention do not count against the bound.
	old := minuteRow(at(9, 1, 0, 0, 0), "order", "availability", "r1", 1, 1)
	if err := st.WriteMinutes(ctx, append(slices.Clone(rows[:8]), rows[8], rows[9], old, rows[8])); err != nil {
		t.Errorf("replays, two new rows and an old one = %v; want them to fit", err)
	}
	if err := st.Emit(ctx, []engine.Event{breaker(now, "r1", "closed", "open", "x")}); !errors.Is(err, memhistory.ErrFull) {
		t.Errorf("a transition into a full store = %v; want ErrFull", err)
	}
	if err := st.RecordDrill(ctx, drillRow(now, "region_down", "r1", true, 1, 1, "x")); !errors.Is(err, memhistory.ErrFull) {
		t.Errorf("a drill into a full store = %v; want ErrFull", err)
	}
	// Once the retention drops the day, there is room again.
	now = at(10, 8, 0, 0, 0)
	if err := st.Emit(ctx, []engine.Event{breaker(now, "r1", "closed", "open", "x")}); err != nil {
		t.Errorf("after the retention freed the rows = %v", err)
	}
}

func TestQueriesSayWhatIsWrongAndStopWhenAsked(t *testing.T) {
	st := newStore(t, at(10, 5, 0, 0, 0))
	loadMem(t, st, reportFixture())
	if err := st.SLIMinutes(ctx, report.SLIQuery{From: oct1, To: oct1.Add(time.Hour)}, func(report.MinuteCounts) error { return nil }); err == nil || !strings.Contains(err.Error(), "names no SLO") {
		t.Errorf("a query without SLOs = %v", err)
	}
	if _, err := st.SLIBuckets(ctx, report.BucketQuery{From: oct1, To: oct1.Add(time.Hour), Step: 30 * time.Second, SLOs: octSLOs}); err == nil || !strings.Contains(err.Error(), "at least a minute") {
		t.Errorf("a 30 s step = %v", err)
	}
	stop := errors.New("enough")
	n := 0
	err := st.SLIMinutes(ctx, report.SLIQuery{From: oct1, To: oct1.Add(time.Hour), SLOs: octSLOs}, func(report.MinuteCounts) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("an error from fn after %d minutes = %v; want it back after 3", n, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.SLIMinutes(cctx, report.SLIQuery{From: oct1, To: oct1.Add(time.Hour), SLOs: octSLOs}, func(report.MinuteCounts) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled read = %v", err)
	}
	if err := st.WriteMinutes(cctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled write = %v", err)
	}
}

func TestBucketsSumTheMinutesPerStepInBucketServiceAndSLOOrder(t *testing.T) {
	st := newStore(t, at(10, 5, 0, 0, 0))
	loadMem(t, st, reportFixture())
	got, err := st.SLIBuckets(ctx, report.BucketQuery{From: oct1.Add(-time.Hour), To: oct1.Add(2 * time.Hour), Step: time.Hour, SLOs: octSLOs})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, b := range got {
		lines = append(lines, b.Start.Format("01-02 15:04 ")+b.Service+"/"+b.SLO+" "+strconv.FormatUint(b.Good, 10)+"/"+strconv.FormatUint(b.Total, 10))
	}
	want := []string{
		"09-30 23:00 order/availability 0/1000",
		"10-01 00:00 order/availability 119789/120000",
		"10-01 00:00 order/latency 119950/120000",
		"10-01 00:00 payment/availability 118996/120000",
		"10-01 01:00 order/availability 80000/80000",
		"10-01 01:00 order/latency 80000/80000",
		"10-01 01:00 payment/availability 80000/80000",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("buckets =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestConcurrentWritersAndReadersSeeWhatASerialLoadGives(t *testing.T) {
	now := at(10, 25, 0, 0, 0)
	ds := randomFixture(1)
	ds.minutes = ds.minutes[:5_000] // half a day
	serial := newStore(t, now)
	loadMem(t, serial, dataset{minutes: ds.minutes, events: ds.events, drills: ds.drills})

	st := newStore(t, now)
	var writers sync.WaitGroup
	const n = 4
	for w := range n {
		writers.Go(func() {
			// Every writer writes every minute (the others' are replays to
			// it), one row a write, each from its own offset.
			for i := range ds.minutes {
				j := (i + w*len(ds.minutes)/n) % len(ds.minutes)
				if err := st.WriteMinutes(ctx, ds.minutes[j:j+1]); err != nil {
					t.Error(err)
					return
				}
			}
			for i := w; i < len(ds.events); i += n {
				if err := st.Emit(ctx, ds.events[i:i+1]); err != nil {
					t.Error(err)
				}
			}
			for _, d := range ds.drills {
				if err := st.RecordDrill(ctx, d); err != nil {
					t.Error(err)
				}
			}
		})
	}
	spec := fixtureSpec(t)
	q := report.Query{Scope: report.ScopeComposite, From: oct1, To: oct1.AddDate(0, 1, 0), Limit: 500}
	r := &report.Reporter{Spec: spec, History: st, Now: func() time.Time { return now }}
	done := make(chan struct{})
	var readers sync.WaitGroup
	var reads atomic.Int64
	for range 2 {
		readers.Go(func() {
			deadline := time.Now().Add(20 * time.Second)
			for i := 0; i < 5_000 && time.Now().Before(deadline); i++ {
				select {
				case <-done:
					return
				default:
				}
				if _, err := r.SLA(ctx, q); err != nil {
					t.Error(err)
					return
				}
				if _, err := r.Timeseries(ctx, report.TimeseriesQuery{Scope: report.ScopeComposite, From: oct1.AddDate(0, 0, 7), To: oct1.AddDate(0, 0, 10), Step: time.Hour}); err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	if reads.Load() == 0 {
		t.Error("no report was read while the writers wrote")
	}
	want, err := (&report.Reporter{Spec: spec, History: serial, Now: func() time.Time { return now }}).SLA(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.SLA(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the concurrently written store's report differs from the serial one:\n%+v\n%+v", got, want)
	}
	if a, b := st.Stats(), serial.Stats(); a.Minutes != b.Minutes || a.Events != b.Events || a.Drills != b.Drills {
		t.Errorf("rows held: %+v, serially %+v", a, b)
	}
	t.Logf("%d reports read while %d writers wrote %d rows each", reads.Load(), n, len(ds.minutes))
}
