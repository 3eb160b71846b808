package report_test

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/report"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func get(t *testing.T, h *report.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.RemoteAddr = "127.0.0.1:1234"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET %s = %d %s", target, rec.Code, rec.Body)
	}
	return rec
}

func getReport(t *testing.T, h *report.Handler, target string) report.SLAReport {
	t.Helper()
	var rep report.SLAReport
	if err := json.Unmarshal(get(t, h, target).Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

type wantSLO struct {
	good, total uint64
	att, budget float64
	badMinutes  int
	met         bool
}

func checkSLOs(t *testing.T, rep report.SLAReport, want map[string]wantSLO) {
	t.Helper()
	if len(rep.SLOs) != len(want) {
		t.Errorf("%d SLOs, want %d", len(rep.SLOs), len(want))
	}
	for _, s := range rep.SLOs {
		w, ok := want[s.Service+"/"+s.SLO]
		if !ok {
			t.Errorf("unexpected SLO %s/%s", s.Service, s.SLO)
			continue
		}
		if s.Good != w.good || s.Total != w.total || s.AttainmentPercent == nil || !near(*s.AttainmentPercent, w.att) ||
			!near(*s.ErrorBudgetUsed, w.budget) || s.BadMinutes != w.badMinutes || s.Met != w.met {
			t.Errorf("%s/%s = good %d total %d att %v budget %v bad %d met %v; want %+v",
				s.Service, s.SLO, s.Good, s.Total, deref(s.AttainmentPercent), deref(s.ErrorBudgetUsed), s.BadMinutes, s.Met, w)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestAReportOverTheFixtureMonthEqualsTheNumbersWorkedOutByHand(t *testing.T) {
	st := history(t)
	h, err := report.New(report.Config{Spec: fixtureSpec(t), History: st, Now: func() time.Time { return at(11, 5, 12, 0, 0) }})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("The composite over October.", func(t *testing.T) {
		rep := getReport(t, h, "/api/v1/sla?month=2026-10")
		// Each SLO: 100 minutes × 2 regions × 1000 = 200,000 events.
		checkSLOs(t, rep, map[string]wantSLO{
			// bad 10+1+200 = 211 → 199,789/200,000 = 99.8945 %; budget 0.1 % × 200,000 = 200, used 211/200 = 1.055.
			// Minutes below 99.9 % (both regions summed): minute 10 (1990/2000 = 99.5 %), minute 50 (1800/2000 = 90 %);
			// minute 20 is 1999/2000 = 99.95 %, above.
			"order/availability": {199_789, 200_000, 99.8945, 1.055, 2, false},
			// bad 50 → 99.975 %; budget 1 % × 200,000 = 2000, used 0.025; minute 30: 1950/2000 = 97.5 % < 99 %.
			"order/latency": {199_950, 200_000, 99.975, 0.025, 1, true},
			// bad 1000+4 = 1004 → 99.498 %; budget 0.5 % × 200,000 = 1000, used 1.004; minute 40: 1000/2000 = 50 %;
			// minute 10 is 1996/2000 = 99.8 %, above.
			"payment/availability": {198_996, 200_000, 99.498, 1.004, 1, false},
		})
		// order = 0.998945 × 0.99975 = 0.99869526375; payment = 0.99498.
		// composite = 0.6 × 0.99869526375 + 0.4 × 0.99498 = 0.59921715825 + 0.397992 = 0.99720915825.
		if !near(*rep.SLA.AttainmentPercent, 99.720915825) || *rep.SLA.ObjectivePercent != 99 {
			t.Errorf("composite %v objective %v, want 99.720915825 of 99", *rep.SLA.AttainmentPercent, *rep.SLA.ObjectivePercent)
		}
		// Above its 99 % objective, but the key SLO order/availability is below 99.9 %: the veto fails it.
		// 99.72 % is below 99.9 (10 %), not below 99: credit 10 %.
		if rep.SLA.Met || !slices.Equal(rep.SLA.KeySLOsBreached, []string{"order/availability"}) || rep.SLA.CreditPercent != 10 {
			t.Errorf("met %v, key breaches %v, credit %v; want false, [order/availability], 10", rep.SLA.Met, rep.SLA.KeySLOsBreached, rep.SLA.CreditPercent)
		}
		if s := rep.Services; len(s) != 2 || !near(*s[0].AttainmentPercent, 99.869526375) || !near(*s[1].AttainmentPercent, 99.498) ||
			s[0].DowntimeMinutes != 3 || s[1].DowntimeMinutes != 1 || s[0].Met || s[1].Met {
			// order is down in minutes 10, 30 and 50; payment in minute 40.
			t.Errorf("services = %+v", s)
		}
		// Composite minutes below objective: 10 (key SLO below), 30 (1 - 0.6 × 0.025 = 0.985 < 0.99),
		// 40 (1 - 0.4 × 0.5 = 0.8), 50 (key SLO below): 4.
		if rep.DowntimeMinutes != 4 || rep.BelowObjectiveMinutes != 4 || rep.DowntimeDefinition != report.DowntimeBelowObjective {
			t.Errorf("downtime %v (%s), below objective %d; want 4 below_objective", rep.DowntimeMinutes, rep.DowntimeDefinition, rep.BelowObjectiveMinutes)
		}
		// Incidents 1-7 of fixtureEvents: 2790 s = 46.5 min.
		if rep.IncidentsTotal != 7 || len(rep.Incidents) != 7 || rep.Truncated || rep.BreakerOpenMinutes != 46.5 {
			t.Errorf("incidents %d of %d (truncated %v), breaker open %v min; want 7, 46.5", len(rep.Incidents), rep.IncidentsTotal, rep.Truncated, rep.BreakerOpenMinutes)
		}
		wantInc := []struct {
			region     string
			start, end time.Time
			secs       float64
			reason     string
		}{
			{"r2", at(10, 1, 0, 0, 0), at(10, 1, 0, 20, 0), 1200, "p99 above 300ms for 2m"},
			{"r1", at(10, 5, 10, 0, 0), at(10, 5, 10, 7, 30), 450, "health 42 below 50"},
			{"r1", at(10, 5, 10, 8, 0), at(10, 5, 10, 15, 0), 420, "p99 above 300ms again"},
			{"r2", at(10, 10, 12, 0, 0), at(10, 10, 12, 1, 0), 60, "probe failures"},
			{"r2", at(10, 20, 8, 0, 0), at(10, 20, 8, 5, 0), 300, "p99 above 300ms"},
			{"r2", at(10, 20, 8, 5, 0), at(10, 20, 8, 6, 0), 60, "p99 above 300ms again"},
			{"r1", at(10, 31, 23, 55, 0), at(11, 1, 0, 0, 0), 300, "probe failures"},
		}
		for i, w := range wantInc {
			if i >= len(rep.Incidents) {
				break
			}
			g := rep.Incidents[i]
			if g.Region != w.region || !g.Start.Equal(w.start) || g.End == nil || !g.End.Equal(w.end) || g.DurationSeconds != w.secs || g.Reason != w.reason || g.Ongoing {
				t.Errorf("incident %d = %+v; want %+v", i+1, g, w)
			}
		}
		if !rep.Incidents[0].OpenedAt.Equal(at(9, 30, 23, 50, 0)) {
			t.Errorf("incident 1 opened at %s, want 09-30 23:50 (before the window)", rep.Incidents[0].OpenedAt)
		}
		// Drills: 4 in October; passed 3; within objectives 2; worst RTO 75 s, worst RPO 7 s.
		dr := rep.DR
		if dr.Drills != 4 || dr.Passed != 3 || dr.WithinObjectives != 2 || dr.Compliant || *dr.WorstRTOSeconds != 75 || *dr.WorstRPOSeconds != 7 ||
			dr.RTOObjectiveSeconds != 90 || dr.RPOObjectiveSeconds != 5 {
			t.Errorf("DR = %+v (worst %v/%v)", dr, deref(dr.WorstRTOSeconds), deref(dr.WorstRPOSeconds))
		}
		wantSc := []report.DRScenario{
			{Scenario: "latency_spike", Drills: 1, Passed: 1, WithinObjectives: 1, WorstRTOSeconds: 20, WorstRPOSeconds: 0.5, RTOObjectiveSeconds: 90, RPOObjectiveSeconds: 5, RTOMet: true, RPOMet: true},
			{Scenario: "region_down", Drills: 2, Passed: 2, WithinObjectives: 1, WorstRTOSeconds: 75, WorstRPOSeconds: 2, RTOObjectiveSeconds: 60, RPOObjectiveSeconds: 5, RTOMet: false, RPOMet: true},
			{Scenario: "replication_stall", Drills: 1, Passed: 0, WithinObjectives: 0, WorstRTOSeconds: 30, WorstRPOSeconds: 7, RTOObjectiveSeconds: 90, RPOObjectiveSeconds: 5, RTOMet: true, RPOMet: false},
		}
		if !slices.Equal(dr.Scenarios, wantSc) {
			t.Errorf("scenarios = %+v\nwant        %+v", dr.Scenarios, wantSc)
		}
		if !rep.Window.Complete || rep.Window.Month != "2026-10" || rep.Window.ElapsedMinutes != 31*24*60 {
			t.Errorf("window = %+v", rep.Window)
		}
	})

	t.Run("One region's month: downtime is breaker-open time.", func(t *testing.T) {
		rep := getReport(t, h, "/api/v1/sla?scope=region&region=r1&month=2026-10")
		// r1 alone: 100 minutes × 1000 = 100,000 events per SLO.
		checkSLOs(t, rep, map[string]wantSLO{
			// bad 11 → 99.989 %; budget 100, used 0.11; minute 10 is 990/1000 = 99 % < 99.9 %, minute 20 is exactly 99.9 %: 1.
			"order/availability": {99_989, 100_000, 99.989, 0.11, 1, true},
			"order/latency":      {100_000, 100_000, 100, 0, 0, true},
			// bad 1000 → 99 %; budget 500, used 2; not a key SLO.
			"payment/availability": {99_000, 100_000, 99, 2, 1, false},
		})
		// composite = 0.6 × 0.99989 + 0.4 × 0.99 = 0.599934 + 0.396 = 0.995934 → 99.5934 %: met (≥ 99, no key breach);
		// credit 10 % (below 99.9, not below 99).
		if !near(*rep.SLA.AttainmentPercent, 99.5934) || !rep.SLA.Met || rep.SLA.CreditPercent != 10 || len(rep.SLA.KeySLOsBreached) != 0 {
			t.Errorf("headline = %+v (att %v)", rep.SLA, *rep.SLA.AttainmentPercent)
		}
		// Incidents 2, 3 and 7: 1170 s = 19.5 min. Below objective: minutes 10 and 40.
		if rep.DowntimeMinutes != 19.5 || rep.DowntimeDefinition != report.DowntimeBreakerOpen || rep.IncidentsTotal != 3 || rep.BelowObjectiveMinutes != 2 {
			t.Errorf("downtime %v (%s), incidents %d, below objective %d; want 19.5 breaker_open, 3, 2",
				rep.DowntimeMinutes, rep.DowntimeDefinition, rep.IncidentsTotal, rep.BelowObjectiveMinutes)
		}
		// r1's drills: region_down (45 s, 1.5 s, within) and replication_stall (30 s, 7 s, failed).
		if dr := rep.DR; dr.Drills != 2 || dr.Passed != 1 || dr.WithinObjectives != 1 || *dr.WorstRTOSeconds != 45 || *dr.WorstRPOSeconds != 7 {
			t.Errorf("DR = %+v", dr)
		}
	})

	t.Run("One service in one region.", func(t *testing.T) {
		rep := getReport(t, h, "/api/v1/sla?scope=service&service=order&region=r2&month=2026-10")
		checkSLOs(t, rep, map[string]wantSLO{
			// bad 200 → 99.8 %; budget 100, used 2; minute 50: 80 %.
			"order/availability": {99_800, 100_000, 99.8, 2, 1, false},
			// bad 50 → 99.95 %; budget 1000, used 0.05; minute 30: 95 %.
			"order/latency": {99_950, 100_000, 99.95, 0.05, 1, true},
		})
		// order in r2 = 0.998 × 0.9995 = 0.997501 → 99.7501 %; no objective of its own; a key SLO below: not met;
		// credit 10 %. Down in minutes 30 and 50. Breaker: incidents 1, 4, 5, 6 = 1620 s = 27 min.
		if !near(*rep.SLA.AttainmentPercent, 99.7501) || rep.SLA.ObjectivePercent != nil || rep.SLA.Met || rep.SLA.Name != "order" ||
			rep.SLA.CreditPercent != 10 || !slices.Equal(rep.SLA.KeySLOsBreached, []string{"order/availability"}) {
			t.Errorf("headline = %+v", rep.SLA)
		}
		if rep.DowntimeMinutes != 2 || rep.BreakerOpenMinutes != 27 || rep.IncidentsTotal != 4 {
			t.Errorf("downtime %v, breaker open %v, incidents %d; want 2, 27, 4", rep.DowntimeMinutes, rep.BreakerOpenMinutes, rep.IncidentsTotal)
		}
	})

	t.Run("A window clips the incidents it cuts.", func(t *testing.T) {
		rep := getReport(t, h, "/api/v1/sla?from=2026-10-05T10:00:00Z&to=2026-10-05T10:10:00Z")
		// r1 10:00:00–10:07:30 (450 s) and 10:08:00–10:10:00 clipped (120 s): 570 s = 9.5 min. No SLI minutes there.
		if rep.IncidentsTotal != 2 || len(rep.Incidents) != 2 || rep.BreakerOpenMinutes != 9.5 || !rep.Incidents[1].End.Equal(at(10, 5, 10, 10, 0)) {
			t.Errorf("incidents %+v, breaker open %v; want 2 with 9.5 min", rep.Incidents, rep.BreakerOpenMinutes)
		}
		if rep.SLA.AttainmentPercent != nil || rep.SLA.CreditPercent != 0 || rep.DR.Drills != 0 || !rep.DR.Compliant {
			t.Errorf("an empty window: headline %+v, DR %+v", rep.SLA, rep.DR)
		}
	})

	t.Run("A limit caps the incidents and says so.", func(t *testing.T) {
		rep := getReport(t, h, "/api/v1/sla?month=2026-10&limit=2")
		if len(rep.Incidents) != 2 || rep.IncidentsTotal != 7 || !rep.Truncated || rep.BreakerOpenMinutes != 46.5 {
			t.Errorf("%d incidents of %d, truncated %v, %v min; want 2 of 7, truncated, 46.5", len(rep.Incidents), rep.IncidentsTotal, rep.Truncated, rep.BreakerOpenMinutes)
		}
	})

	t.Run("The CSV export holds the JSON's numbers.", func(t *testing.T) {
		for _, q := range []string{"month=2026-10", "scope=region&region=r1&month=2026-10", "scope=service&service=order&region=r2&month=2026-10"} {
			rep := getReport(t, h, "/api/v1/sla?"+q)
			rows, err := csv.NewReader(get(t, h, "/api/v1/sla?format=csv&"+q).Body).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			checkCSV(t, q, rep, rows)
		}
	})

	t.Run("The timeseries buckets the same minutes.", func(t *testing.T) {
		// now 2026-10-01 01:30: 24 hourly buckets from 09-30 02:00 to 10-01 02:00.
		hts, err := report.New(report.Config{Spec: fixtureSpec(t), History: st, Now: func() time.Time { return at(10, 1, 1, 30, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		var ts report.Timeseries
		if err := json.Unmarshal(get(t, hts, "/api/v1/sla/timeseries?hours=24").Body.Bytes(), &ts); err != nil {
			t.Fatal(err)
		}
		if len(ts.Times) != 24 || !ts.Times[0].Equal(at(9, 30, 2, 0, 0)) || ts.StepSeconds != 3600 || len(ts.Series) != 3 ||
			ts.Series[0].Name != "composite" || ts.Series[1].Name != "order" || ts.Series[2].Name != "payment" {
			t.Fatalf("timeseries shape: %d times from %s, step %d, series %d", len(ts.Times), ts.Times[0], ts.StepSeconds, len(ts.Series))
		}
		comp, order, payment := ts.Series[0].Values, ts.Series[1].Values, ts.Series[2].Values
		// 09-30 23:00 holds only the 23:59 row, order/availability r1 0 of 1000: order 0 %, payment no events
		// (counts as 100 %): composite = 0.6 × 0 + 0.4 × 1 = 40 %.
		if !near(*comp[21], 40) || *order[21] != 0 || payment[21] != nil {
			t.Errorf("09-30 23:00: composite %v order %v payment %v; want 40, 0, null", deref(comp[21]), deref(order[21]), deref(payment[21]))
		}
		// 10-01 00:00 holds minutes 0-59 of both regions, 120,000 events per SLO; bad: order/availability
		// 10+1+200 = 211, order/latency 50, payment 1000+4 = 1004.
		wantOrder := 100 * (119_789.0 / 120_000) * (119_950.0 / 120_000)
		wantComp := 0.6*wantOrder + 0.4*100*(118_996.0/120_000)
		if !near(*order[22], wantOrder) || !near(*comp[22], wantComp) || !near(*payment[22], 100*118_996.0/120_000) {
			t.Errorf("10-01 00:00: composite %v order %v payment %v; want %v, %v, %v", *comp[22], *order[22], *payment[22], wantComp, wantOrder, 100*118_996.0/120_000)
		}
		// 10-01 01:00 holds minutes 60-99, all good.
		if *comp[23] != 100 || *order[23] != 100 || *payment[23] != 100 {
			t.Errorf("10-01 01:00 = %v %v %v; want 100", *comp[23], *order[23], *payment[23])
		}
		for i := range 21 {
			if comp[i] != nil {
				t.Errorf("bucket %d (%s) without events = %v, want null", i, ts.Times[i], *comp[i])
			}
		}
	})
}

// checkCSV compares the CSV rows with the JSON report, number by number.
func checkCSV(t *testing.T, q string, rep report.SLAReport, rows [][]string) {
	t.Helper()
	if len(rows) != 1+len(rep.SLOs)+len(rep.Services)+1 || !slices.Equal(rows[0], report.CSVHeader) {
		t.Fatalf("%s: %d CSV rows, header %v", q, len(rows), rows[0])
	}
	col := map[string]int{}
	for i, c := range rows[0] {
		col[c] = i
	}
	cell := func(row []string, name string) string { return row[col[name]] }
	numEq := func(s string, want *float64) bool {
		if want == nil {
			return s == ""
		}
		f, err := strconv.ParseFloat(s, 64)
		return err == nil && f == *want
	}
	for i, s := range rep.SLOs {
		row := rows[1+i]
		if cell(row, "row") != "slo" || cell(row, "service") != s.Service || cell(row, "slo") != s.SLO || cell(row, "kind") != s.Kind ||
			cell(row, "good") != strconv.FormatUint(s.Good, 10) || cell(row, "total") != strconv.FormatUint(s.Total, 10) ||
			!numEq(cell(row, "attainment_percent"), s.AttainmentPercent) || !numEq(cell(row, "error_budget_used"), s.ErrorBudgetUsed) ||
			!numEq(cell(row, "objective_percent"), &s.ObjectivePercent) ||
			cell(row, "bad_minutes") != strconv.Itoa(s.BadMinutes) || cell(row, "met") != strconv.FormatBool(s.Met) ||
			cell(row, "key") != strconv.FormatBool(s.Key) || cell(row, "scope") != string(rep.Scope) || cell(row, "region") != rep.Region ||
			cell(row, "window_from") != rep.Window.From.Format(time.RFC3339) || cell(row, "window_to") != rep.Window.To.Format(time.RFC3339) {
			t.Errorf("%s: CSV %v differs from JSON %+v", q, row, s)
		}
	}
	for i, s := range rep.Services {
		row := rows[1+len(rep.SLOs)+i]
		if cell(row, "row") != "service" || cell(row, "service") != s.Service || !numEq(cell(row, "attainment_percent"), s.AttainmentPercent) ||
			cell(row, "downtime_minutes") != strconv.Itoa(s.DowntimeMinutes) || cell(row, "met") != strconv.FormatBool(s.Met) {
			t.Errorf("%s: CSV %v differs from JSON %+v", q, row, s)
		}
	}
	last := rows[len(rows)-1]
	credit, downtime := rep.SLA.CreditPercent, rep.DowntimeMinutes
	if cell(last, "row") != "sla" || !numEq(cell(last, "attainment_percent"), rep.SLA.AttainmentPercent) ||
		!numEq(cell(last, "objective_percent"), rep.SLA.ObjectivePercent) || !numEq(cell(last, "credit_percent"), &credit) ||
		!numEq(cell(last, "downtime_minutes"), &downtime) || cell(last, "incidents") != strconv.Itoa(rep.IncidentsTotal) ||
		cell(last, "met") != strconv.FormatBool(rep.SLA.Met) || (rep.Scope == report.ScopeService) != (cell(last, "service") == rep.Service && rep.Service != "") {
		t.Errorf("%s: CSV headline %v differs from JSON %+v", q, last, rep.SLA)
	}
	if strings.Contains(strings.Join(last, ","), "NaN") {
		t.Errorf("%s: NaN in the CSV", q)
	}
}
