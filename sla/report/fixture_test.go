package report_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/report/chstore"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// fixtureSpec is the shipped spec cut down so that the fixture's numbers
// can be worked out by hand: two regions r1 and r2; order (weight 0.6) with
// availability 99.9 % (key) and latency 99 %; payment (weight 0.4) with
// availability 99.5 %; composite objective 99 %; credits below 99.9 → 10 %,
// below 99 → 25 %, below 95 → 100 %; DR rto 90 s, rpo 5 s, region_down rto
// 60 s.
func fixtureSpec(t testing.TB) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
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

// history starts ClickHouse 18.16, creates the schema with chsink.Migrate
// (the platform's own migrations) and loads the fixture.
func history(t testing.TB) *chstore.Store {
	t.Helper()
	ch := realserver.StartClickHouse(t)
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{ch.Addr}, Auth: clickhouse.Auth{Database: "default", Username: "default"},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := chsink.Migrate(ctx, conn, chsink.SchemaOptions{Retention: 180 * 24 * time.Hour}); err != nil {
		t.Fatalf("creating the schema: %v", err)
	}
	// Keep the replayed duplicates apart, as they are between a replay and
	// the next merge: the report must count each event id once.
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES"); err != nil {
		t.Fatal(err)
	}
	loadFixture(t, ctx, conn)
	for _, table := range []string{"sli_minutes", "sla_events", "drill_results"} {
		var rows, ids uint64
		if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM carpoolsla."+table).Scan(&rows, &ids); err != nil {
			t.Fatal(err)
		}
		if rows <= ids {
			t.Fatalf("%s holds %d rows of %d event ids: the fixture lost its duplicates", table, rows, ids)
		}
	}
	st, err := chstore.New(conn, chstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func id(parts ...string) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmtParts(parts)))
}

func fmtParts(parts []string) string {
	s := ""
	for _, p := range parts {
		s += p + "\x00"
	}
	return s
}

var oct1 = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

// minuteRow is one sli_minutes row.
type minuteRow struct {
	minute       time.Time
	service, slo string
	region       string
	good, total  uint64
}

// fixtureMinutes: minutes 0..99 of 2026-10-01 (00:00 to 01:39), for each SLO
// and region, 1000 good of 1000, except:
//
//	(a) order/availability  r1 minute 10:  990 good (10 bad)
//	(b) order/availability  r1 minute 20:  999 good (1 bad; 99.9 %, exactly the objective)
//	(c) order/availability  r2 minute 50:  800 good (200 bad)
//	(d) order/latency       r2 minute 30:  950 good (50 bad)
//	(e) payment/availability r1 minute 40:   0 good (1000 bad)
//	(f) payment/availability r2 minute 10: 996 good (4 bad; 99.6 %, above 99.5)
//
// and rows that must not count: 2026-09-30 23:59 order/availability r1 0 of
// 1000 and 2026-11-01 00:00 payment/availability r2 0 of 1000 (outside
// October), order/legacy (an SLO the spec does not list).
func fixtureMinutes() []minuteRow {
	bad := map[[4]any]uint64{
		{"order", "availability", "r1", 10}:   990,
		{"order", "availability", "r1", 20}:   999,
		{"order", "availability", "r2", 50}:   800,
		{"order", "latency", "r2", 30}:        950,
		{"payment", "availability", "r1", 40}: 0,
		{"payment", "availability", "r2", 10}: 996,
	}
	var rows []minuteRow
	for _, slo := range [][2]string{{"order", "availability"}, {"order", "latency"}, {"payment", "availability"}} {
		for _, r := range []string{"r1", "r2"} {
			for m := range 100 {
				good, ok := bad[[4]any{slo[0], slo[1], r, m}]
				if !ok {
					good = 1000
				}
				rows = append(rows, minuteRow{oct1.Add(time.Duration(m) * time.Minute), slo[0], slo[1], r, good, 1000})
			}
		}
	}
	return append(rows,
		minuteRow{oct1.Add(-time.Minute), "order", "availability", "r1", 0, 1000},
		minuteRow{oct1.AddDate(0, 1, 0), "payment", "availability", "r2", 0, 1000},
		minuteRow{oct1.Add(5 * time.Minute), "order", "legacy", "r1", 0, 1000},
	)
}

type eventRow struct {
	at                     time.Time
	kind, region, from, to string
	reason                 string
}

func at(month time.Month, day, h, m, s int) time.Time {
	return time.Date(2026, month, day, h, m, s, 0, time.UTC)
}

// fixtureEvents: breaker transitions. The October incidents they make:
//
//  1. r2 open since 09-30 23:50 → recovering 10-01 00:20: [10-01 00:00, 00:20]  1200 s (clipped start)
//  2. r1 10-05 10:00:00 → 10:07:30                                               450 s
//  3. r1 10-05 10:08:00 (re-trip) → 10:15:00                                     420 s
//  4. r2 10-10 12:00:00 → 12:01:00 (recovering and closed in the same second)      60 s
//  5. r2 10-20 08:00:00 → 08:05:00                                                300 s
//  6. r2 10-20 08:05:00 (re-trip in the same second it recovered) → 08:06:00       60 s
//  7. r1 10-31 23:55 → closes 11-01 00:10: [23:55, 11-01 00:00]                   300 s (clipped end)
//
// Total 2790 s = 46.5 min; r1: 450+420+300 = 1170 s = 19.5 min; r2: 1200+60+300+60 = 1620 s = 27 min.
// A panic event and a November transition must not count.
func fixtureEvents() []eventRow {
	return []eventRow{
		{at(9, 30, 23, 50, 0), "breaker", "r2", "closed", "open", "p99 above 300ms for 2m"},
		{at(10, 1, 0, 20, 0), "breaker", "r2", "open", "recovering", "recovered"},
		{at(10, 1, 0, 22, 0), "breaker", "r2", "recovering", "closed", "ramp done"},
		{at(10, 5, 10, 0, 0), "breaker", "r1", "closed", "open", "health 42 below 50"},
		{at(10, 5, 10, 7, 30), "breaker", "r1", "open", "recovering", "recovered"},
		{at(10, 5, 10, 8, 0), "breaker", "r1", "recovering", "open", "p99 above 300ms again"},
		{at(10, 5, 10, 15, 0), "breaker", "r1", "open", "recovering", "recovered"},
		{at(10, 5, 10, 17, 0), "breaker", "r1", "recovering", "closed", "ramp done"},
		{at(10, 10, 12, 0, 0), "breaker", "r2", "closed", "open", "probe failures"},
		{at(10, 10, 12, 1, 0), "breaker", "r2", "recovering", "closed", "ramp done"},
		{at(10, 10, 12, 1, 0), "breaker", "r2", "open", "recovering", "recovered"},
		{at(10, 20, 8, 0, 0), "breaker", "r2", "closed", "open", "p99 above 300ms"},
		{at(10, 20, 8, 5, 0), "breaker", "r2", "recovering", "open", "p99 above 300ms again"},
		{at(10, 20, 8, 5, 0), "breaker", "r2", "open", "recovering", "recovered"},
		{at(10, 20, 8, 6, 0), "breaker", "r2", "open", "recovering", "recovered"},
		{at(10, 20, 8, 8, 0), "breaker", "r2", "recovering", "closed", "ramp done"},
		{at(10, 12, 0, 0, 0), "panic", "r1", "", "", "two regions broken"},
		{at(10, 31, 23, 55, 0), "breaker", "r1", "closed", "open", "probe failures"},
		{at(11, 1, 0, 10, 0), "breaker", "r1", "open", "closed", "recovered"},
	}
}

type drillRow struct {
	at          time.Time
	scenario    string
	region      string
	passed      uint8
	rto, rpo    float64
	description string
}

// fixtureDrills, with their compliance (region_down: rto 60 s, rpo 5 s;
// the others: rto 90 s, rpo 5 s):
//
//	region_down       r1 10-03 passed rto 45 rpo 1.5  within
//	region_down       r2 10-12 passed rto 75 rpo 2    not within (rto 75 > 60)
//	replication_stall r1 10-15 failed rto 30 rpo 7    not within (rpo 7 > 5)
//	latency_spike     r2 10-25 passed rto 20 rpo 0.5 within
//
// and a September drill that must not count.
func fixtureDrills() []drillRow {
	return []drillRow{
		{at(10, 3, 9, 0, 0), "region_down", "r1", 1, 45, 1.5, "a"},
		{at(10, 12, 9, 0, 0), "region_down", "r2", 1, 75, 2, "b"},
		{at(10, 15, 9, 0, 0), "replication_stall", "r1", 0, 30, 7, "c"},
		{at(10, 25, 9, 0, 0), "latency_spike", "r2", 1, 20, 0.5, "d"},
		{at(9, 20, 9, 0, 0), "region_down", "r1", 0, 500, 500, "e"},
	}
}

// loadFixture inserts the fixture, and a second copy of some rows with the
// same event ids in another part (a replayed batch): they must count once.
func loadFixture(t testing.TB, ctx context.Context, conn driver.Conn) {
	t.Helper()
	batch := func(sql string, rows int, fill func(driver.Batch, int) error) {
		t.Helper()
		b, err := conn.PrepareBatch(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			if err := fill(b, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	mins := fixtureMinutes()
	minuteID := func(r minuteRow) uuid.UUID { return id(r.minute.String(), r.service, r.slo, r.region) }
	const insMin = "INSERT INTO carpoolsla.sli_minutes (event_id, minute, service, slo, region, good, total)"
	batch(insMin, len(mins), func(b driver.Batch, i int) error {
		r := mins[i]
		return b.Append(minuteID(r), r.minute, r.service, r.slo, r.region, r.good, r.total)
	})
	// The replay: every bad minute and some good ones again.
	var replay []minuteRow
	for i, r := range mins {
		if r.good < r.total || i%7 == 0 {
			replay = append(replay, r)
		}
	}
	batch(insMin, len(replay), func(b driver.Batch, i int) error {
		r := replay[i]
		return b.Append(minuteID(r), r.minute, r.service, r.slo, r.region, r.good, r.total)
	})

	evs := fixtureEvents()
	const insEv = "INSERT INTO carpoolsla.sla_events (event_id, ts, kind, region, service, slo, from_state, to_state, reason, value_keys, value_values)"
	fillEv := func(b driver.Batch, e eventRow) error {
		return b.Append(id("ev", e.at.String(), e.region, e.from, e.to), e.at, e.kind, e.region, "", "", e.from, e.to, e.reason,
			[]string{"p99_seconds"}, []float64{0.42})
	}
	batch(insEv, len(evs), func(b driver.Batch, i int) error { return fillEv(b, evs[i]) })
	batch(insEv, 3, func(b driver.Batch, i int) error { return fillEv(b, evs[[]int{0, 3, 12}[i]]) })

	drills := fixtureDrills()
	const insDrill = "INSERT INTO carpoolsla.drill_results (event_id, ts, scenario, region, passed, rto_seconds, rpo_seconds, detect_seconds, decide_seconds, shift_seconds, success_ratio, report)"
	fillDrill := func(b driver.Batch, d drillRow) error {
		return b.Append(id("drill", d.description), d.at, d.scenario, d.region, d.passed, d.rto, d.rpo, 1.0, 2.0, 3.0, 0.999, "{}")
	}
	batch(insDrill, len(drills), func(b driver.Batch, i int) error { return fillDrill(b, drills[i]) })
	batch(insDrill, 1, func(b driver.Batch, i int) error { return fillDrill(b, drills[1]) })
}
