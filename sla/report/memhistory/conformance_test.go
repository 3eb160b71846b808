package memhistory_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/report/chstore"
	"github.com/carpoolsla/carpoolsla/sla/rollup"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// loadClickHouse writes ds into db's tables the way the platform does
// (cmd/carpoolsla's chMinutes and chEvents: chsink.SLIMinute(m), and an
// SLAEvent with chsink.IDFrom(ev.ID)), each replay in its own INSERT, so
// that with merges stopped the duplicates stay apart as they are between a
// replay and the next merge.
func loadClickHouse(t *testing.T, ctx context.Context, conn driver.Conn, db string, ds dataset) {
	t.Helper()
	batch := func(sql string, n int, fill func(b driver.Batch, i int) error) {
		t.Helper()
		if n == 0 {
			return
		}
		b, err := conn.PrepareBatch(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := fill(b, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	for _, rows := range [][]rollup.Minute{ds.minutes, ds.minuteReplay} {
		batch("INSERT INTO "+db+".sli_minutes (event_id, minute, service, slo, region, good, total)", len(rows), func(b driver.Batch, i int) error {
			r := chsink.SLIMinute(rows[i])
			return b.Append(r.EventID, r.Minute, r.Service, r.SLO, r.Region, r.Good, r.Total)
		})
	}
	for _, evs := range [][]engine.Event{ds.events, ds.eventReplay} {
		batch("INSERT INTO "+db+".sla_events (event_id, ts, kind, region, service, slo, from_state, to_state, reason, value_keys, value_values)", len(evs), func(b driver.Batch, i int) error {
			ev := evs[i]
			r := chsink.SLAEvent{EventID: chsink.IDFrom(ev.ID), Time: ev.At, Kind: ev.Kind, Region: ev.Region, FromState: ev.From, ToState: ev.To, Reason: ev.Reason,
				ValueKeys: []string{}, ValueValues: []float64{}}
			for k, v := range ev.Values {
				r.ValueKeys, r.ValueValues = append(r.ValueKeys, k), append(r.ValueValues, v)
			}
			return b.Append(r.EventID, r.Time, r.Kind, r.Region, r.Service, r.SLO, r.FromState, r.ToState, r.Reason, r.ValueKeys, r.ValueValues)
		})
	}
	for _, drills := range [][]chsink.DrillResult{ds.drills, ds.drillReplay} {
		batch("INSERT INTO "+db+".drill_results (event_id, ts, scenario, region, passed, rto_seconds, rpo_seconds, detect_seconds, decide_seconds, shift_seconds, success_ratio, report)", len(drills), func(b driver.Batch, i int) error {
			d := drills[i]
			passed := uint8(0)
			if d.Passed {
				passed = 1
			}
			return b.Append(d.EventID, d.Time, d.Scenario, d.Region, passed, d.RTOSeconds, d.RPOSeconds, d.DetectSeconds, d.DecideSeconds, d.ShiftSeconds, d.SuccessRatio, d.Report)
		})
	}
	for _, table := range []string{"sli_minutes", "sla_events", "drill_results"} {
		var rows, ids uint64
		if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM "+db+"."+table).Scan(&rows, &ids); err != nil {
			t.Fatal(err)
		}
		if rows <= ids {
			t.Fatalf("%s.%s holds %d rows of %d event ids: the replays were merged away before the reads", db, table, rows, ids)
		}
	}
}

// sameJSON fails when a and b encode differently, showing the first line
// that differs.
func sameJSON(t *testing.T, what string, mem, ch any) {
	t.Helper()
	a, err := json.MarshalIndent(mem, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(ch, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if string(a) == string(b) {
		return
	}
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range max(len(la), len(lb)) {
		x, y := "", ""
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			t.Errorf("%s: memhistory and ClickHouse differ at line %d:\n  memhistory: %s\n  clickhouse: %s", what, i+1, x, y)
			return
		}
	}
}

// normal puts what ClickHouse leaves unordered in one order: the SLOs of a
// minute, and transitions of one second and region.
func normalMinutes(ms []report.MinuteCounts) []report.MinuteCounts {
	for _, m := range ms {
		slices.SortFunc(m.SLOs, func(a, b report.SLOCount) int {
			return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.SLO, b.SLO))
		})
	}
	return ms
}

func normalEvents(h report.BreakerHistory) report.BreakerHistory {
	slices.SortFunc(h.Events, func(a, b report.BreakerEvent) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Region, b.Region), cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), cmp.Compare(a.Reason, b.Reason))
	})
	return h
}

func whenAndWhere(evs []report.BreakerEvent) []report.BreakerEvent {
	out := make([]report.BreakerEvent, len(evs))
	for i, e := range evs {
		out[i] = report.BreakerEvent{At: e.At, Region: e.Region}
	}
	return out
}

// conformanceCase is one data set and the questions asked of it.
type conformanceCase struct {
	db      string
	spec    func(testing.TB) *spec.Spec
	ds      dataset
	now     time.Time
	windows [][2]time.Time // report windows besides October
	// series are the ends (now) of the timeseries asked.
	series []time.Time
}

func TestMemoryAndClickHouseGiveTheSameAnswers(t *testing.T) {
	ch := realserver.StartClickHouse(t)
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{ch.Addr}, Auth: clickhouse.Auth{Database: "default", Username: "default"},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Keep the replayed duplicates apart: both stores must count each
	// event id once.
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES"); err != nil {
		t.Fatal(err)
	}

	cases := map[string]conformanceCase{
		"The report's fixture, worked out by hand in sla/report.": {
			db: "fixture", spec: fixtureSpec, ds: reportFixture(), now: at(11, 5, 12, 0, 0),
			windows: [][2]time.Time{
				{at(10, 5, 10, 0, 0), at(10, 5, 10, 10, 0)},
				{at(10, 5, 9, 59, 30).Add(250 * time.Millisecond), at(10, 5, 10, 7, 30).Add(999 * time.Millisecond)},
				{at(9, 30, 23, 30, 0), at(10, 1, 0, 45, 30)},
				{at(10, 10, 12, 1, 0), at(10, 20, 8, 5, 0)},
				{at(10, 31, 23, 56, 0), at(11, 2, 0, 0, 0)},
				{at(9, 1, 0, 0, 0), at(12, 1, 0, 0, 0)},
			},
			series: []time.Time{at(10, 1, 1, 30, 0), at(10, 2, 0, 0, 0), at(11, 1, 0, 0, 0)},
		},
		"Five days of seeded random history.": {
			db: "random", spec: fixtureSpec, ds: randomFixture(20261125), now: at(10, 11, 7, 13, 0),
			windows: [][2]time.Time{
				{at(10, 8, 13, 17, 29).Add(500 * time.Millisecond), at(10, 10, 2, 3, 4)},
				{at(10, 9, 0, 0, 0), at(10, 21, 0, 0, 0)},
				{at(10, 10, 6, 0, 0), at(10, 10, 7, 0, 0)},
				{at(10, 5, 0, 0, 0), at(10, 8, 0, 0, 1)},
				{at(10, 11, 6, 59, 59), at(10, 12, 7, 0, 0)},
			},
			series: []time.Time{at(10, 9, 5, 30, 0), at(10, 11, 7, 13, 0), at(10, 14, 0, 0, 0)},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := chsink.Migrate(ctx, conn, chsink.SchemaOptions{Database: c.db, Retention: 180 * 24 * time.Hour}); err != nil {
				t.Fatalf("creating the schema: %v", err)
			}
			loadClickHouse(t, ctx, conn, c.db, c.ds)
			chs, err := chstore.New(conn, chstore.Config{Database: c.db})
			if err != nil {
				t.Fatal(err)
			}
			mem := newStore(t, c.now)
			loadMem(t, mem, c.ds)
			checkSameAnswers(t, ctx, c, mem, chs)
		})
	}
}

func checkSameAnswers(t *testing.T, ctx context.Context, c conformanceCase, mem, chs report.History) {
	s := c.spec(t)
	now := func() time.Time { return c.now }
	rm := &report.Reporter{Spec: s, History: mem, Now: now}
	rc := &report.Reporter{Spec: s, History: chs, Now: now}
	type scope struct {
		scope           report.Scope
		service, region string
	}
	scopes := []scope{{scope: report.ScopeComposite}}
	for _, r := range s.RegionNames() {
		scopes = append(scopes, scope{scope: report.ScopeRegion, region: r})
	}
	for _, svc := range s.Services {
		scopes = append(scopes, scope{scope: report.ScopeService, service: svc.Name}, scope{scope: report.ScopeService, service: svc.Name, region: s.Regions[1].Name})
	}
	windows := append([][2]time.Time{{oct1, oct1.AddDate(0, 1, 0)}}, c.windows...)
	reports := 0
	for _, w := range windows {
		for _, sc := range scopes {
			for _, limit := range []int{500, 2} {
				q := report.Query{Scope: sc.scope, Service: sc.service, Region: sc.region, From: w[0], To: w[1], Limit: limit}
				if w[0].Equal(oct1) && w[1].Equal(oct1.AddDate(0, 1, 0)) {
					q.Month = "2026-10"
				}
				a, err := rm.SLA(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				b, err := rc.SLA(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				sameJSON(t, fmt.Sprintf("the %s %s%s report of [%s, %s) limit %d", sc.scope, sc.service, sc.region, w[0], w[1], limit), a, b)
				reports++
			}
		}
	}
	series := 0
	for _, end := range c.series {
		for _, sc := range scopes {
			for _, hs := range [][2]int{{24, 60}, {72, 15}, {168, 360}, {2, 1}} {
				q := report.TimeseriesQuery{Scope: sc.scope, Service: sc.service, Region: sc.region, Hours: hs[0], Step: time.Duration(hs[1]) * time.Minute}
				q.To = end.Truncate(q.Step).Add(q.Step)
				q.From = q.To.Add(-time.Duration(hs[0]) * time.Hour)
				a, err := rm.Timeseries(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				b, err := rc.Timeseries(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				sameJSON(t, fmt.Sprintf("the %s %s%s timeseries of %d h in %d min steps to %s", sc.scope, sc.service, sc.region, hs[0], hs[1], q.To), a, b)
				series++
			}
		}
	}

	// The History answers themselves, beyond what a report shows of them.
	var slos []report.SLOTarget
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			slos = append(slos, report.SLOTarget{Service: svc.Name, SLO: slo.Name, ObjectivePPB: uint64(slo.Objective * 1e7)})
		}
	}
	slos = append(slos, report.SLOTarget{Service: "order", SLO: "legacy"}, report.SLOTarget{Service: "nobody", SLO: "nothing"})
	read := func(h report.History, q report.SLIQuery) []report.MinuteCounts {
		var out []report.MinuteCounts
		if err := h.SLIMinutes(ctx, q, func(m report.MinuteCounts) error {
			out = append(out, report.MinuteCounts{Minute: m.Minute, SLOs: slices.Clone(m.SLOs)})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return normalMinutes(out)
	}
	for _, w := range windows {
		for _, region := range append([]string{""}, append(s.RegionNames(), "r9")...) {
			for _, sl := range [][]report.SLOTarget{slos, slices.Concat(slos[2:3], slos[:1], slos[len(slos)-2:])} {
				q := report.SLIQuery{From: w[0], To: w[1], Region: region, SLOs: sl}
				sameJSON(t, fmt.Sprintf("SLIMinutes %+v", q), read(mem, q), read(chs, q))
				for _, step := range []time.Duration{90 * time.Second, 7 * time.Hour} {
					bq := report.BucketQuery{From: w[0], To: w[1], Step: step, Region: region, SLOs: sl}
					a, err := mem.SLIBuckets(ctx, bq)
					if err != nil {
						t.Fatal(err)
					}
					b, err := chs.SLIBuckets(ctx, bq)
					if err != nil {
						t.Fatal(err)
					}
					sameJSON(t, fmt.Sprintf("SLIBuckets %+v", bq), a, b)
				}
			}
			for _, limit := range []int{0, 1, 3, 100_000} {
				eq := report.EventQuery{From: w[0], To: w[1], Region: region, Limit: limit}
				a, err := mem.BreakerEvents(ctx, eq)
				if err != nil {
					t.Fatal(err)
				}
				b, err := chs.BreakerEvents(ctx, eq)
				if err != nil {
					t.Fatal(err)
				}
				a, b = normalEvents(a), normalEvents(b)
				if limit < 100 {
					// Which transitions of one second and region a limit cuts
					// is unspecified: compare when and where they were.
					a.Events, b.Events = whenAndWhere(a.Events), whenAndWhere(b.Events)
				}
				sameJSON(t, fmt.Sprintf("BreakerEvents %+v", eq), a, b)
			}
			dq := report.DrillQuery{From: w[0], To: w[1], Region: region,
				Objectives: map[string]report.DrillObjective{"region_down": {RTO: 60 * time.Second, RPO: 5 * time.Second}, "latency_spike": {RTO: 30 * time.Second, RPO: 2 * time.Second}},
				Default:    report.DrillObjective{RTO: 90 * time.Second, RPO: 5 * time.Second}}
			a, err := mem.DrillStats(ctx, dq)
			if err != nil {
				t.Fatal(err)
			}
			b, err := chs.DrillStats(ctx, dq)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, fmt.Sprintf("DrillStats %+v", dq), a, b)
		}
	}
	t.Logf("%d SLA reports and %d timeseries the same from both stores, and the raw History answers of %d windows", reports, series, len(windows))
}
