// Package chstore reads the SLA report's history from ClickHouse: the SLI
// minute rollups (sli_minutes), the engine's breaker events (sla_events) and
// the drill results (drill_results) that telemetry/chsink writes. It
// implements report.History with clickhouse-go/v2 and works on ClickHouse
// 18.16 and later.
//
// The tables are ReplacingMergeTree keyed on an event id, so a replayed
// batch may leave duplicates until a merge: every query counts each event id
// once (GROUP BY event_id with any()). ClickHouse sums the regions per minute
// and SLO; the report reads those minutes as a stream (one row per minute and
// SLO with events, in time order) and judges each minute in Go, so memory
// stays constant whatever the window. Breaker events and drills are few and
// come back as rows; timeseries buckets are summed in ClickHouse.
package chstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/carpoolsla/carpoolsla/sla/report"
)

// DefaultDatabase is the database telemetry/chsink creates the tables in.
const DefaultDatabase = "carpoolsla"

// Conn is what the store needs of a ClickHouse connection; a
// clickhouse-go/v2 driver.Conn (clickhouse.Open) is one.
type Conn interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Config configures a Store.
type Config struct {
	// Database holds the tables (default "carpoolsla").
	Database string
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the database name.
func (c *Config) Validate() error {
	if !identRe.MatchString(c.Database) {
		return fmt.Errorf("chstore: Database %q is not a plain identifier; use letters, digits and _ (default %s)", c.Database, DefaultDatabase)
	}
	return nil
}

// Store implements report.History on ClickHouse.
type Store struct {
	conn Conn
	db   string
}

var _ report.History = (*Store)(nil)

// New returns a Store reading through conn.
func New(conn Conn, cfg Config) (*Store, error) {
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if conn == nil {
		return nil, errors.New("chstore: conn is nil; open one with clickhouse.Open")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Store{conn: conn, db: cfg.Database}, nil
}

// str quotes a string literal. The values come from the spec (validated
// names) and from parameters the API checked against it; quoting keeps any
// other value inert all the same.
func str(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// flt writes a Float64 literal (always with a point, so an array of them
// is Array(Float64)).
func flt(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

func strs(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = str(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func flts(xs []float64) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = flt(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func when(t time.Time) string { return "toDateTime(" + strconv.FormatInt(t.Unix(), 10) + ")" }

func keysOf(slos []report.SLOTarget) []string {
	keys := make([]string, len(slos))
	for i, t := range slos {
		keys[i] = t.Service + "/" + t.SLO
	}
	return keys
}

// minutes is the deduplicated sli_minutes rows of a query: m, svc, s, g, t.
func (st *Store) minutes(from, to time.Time, region string, slos []report.SLOTarget) string {
	in := strs(keysOf(slos))
	in = "(" + in[1:len(in)-1] + ")" // IN takes a tuple, not an array, on 18.16
	where := fmt.Sprintf("minute >= %s AND minute < %s AND concat(service, '/', slo) IN %s", when(from), when(to), in)
	if region != "" {
		where += " AND region = " + str(region)
	}
	return fmt.Sprintf(`SELECT any(minute) AS m, any(service) AS svc, any(slo) AS s, any(good) AS g, any(total) AS t
FROM %s.sli_minutes WHERE %s GROUP BY event_id`, st.db, where)
}

// SLIMinutes implements report.SLIHistory: one query, deduplicated by
// event id, summed per minute and SLO over the regions, in time order, read
// as a stream (memory stays constant whatever the window).
func (st *Store) SLIMinutes(ctx context.Context, q report.SLIQuery, fn func(report.MinuteCounts) error) error {
	if len(q.SLOs) == 0 {
		return errors.New("chstore: the query names no SLO")
	}
	// Rows carry the SLO's position in q.SLOs (1-based, from indexOf), not
	// its names: grouping and scanning integers is cheaper than strings.
	sql := fmt.Sprintf("SELECT toUInt32(m) AS mu, indexOf(%s, concat(svc, '/', s)) AS k, sum(g), sum(t) FROM (%s) GROUP BY mu, k ORDER BY mu",
		strs(keysOf(q.SLOs)), st.minutes(q.From, q.To, q.Region, q.SLOs))
	rows, err := st.conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("querying %s.sli_minutes: %w", st.db, err)
	}
	var cur report.MinuteCounts
	flush := func() error {
		if len(cur.SLOs) == 0 {
			return nil
		}
		err := fn(cur)
		cur.SLOs = cur.SLOs[:0]
		return err
	}
	// One destination slice for every row: Scan's arguments escape.
	var m uint32
	var k, good, total uint64
	dest := []any{&m, &k, &good, &total}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return fmt.Errorf("reading %s.sli_minutes: %w", st.db, err)
		}
		if k < 1 || k > uint64(len(q.SLOs)) {
			continue // not one of q's SLOs; the WHERE clause keeps these out
		}
		if at := time.Unix(int64(m), 0).UTC(); !at.Equal(cur.Minute) {
			if err := flush(); err != nil {
				rows.Close()
				return err
			}
			cur.Minute = at
		}
		t := q.SLOs[k-1]
		cur.SLOs = append(cur.SLOs, report.SLOCount{Service: t.Service, SLO: t.SLO, Good: good, Total: total})
	}
	if err := closeRows(rows); err != nil {
		return fmt.Errorf("reading %s.sli_minutes: %w", st.db, err)
	}
	return flush()
}

// SLIBuckets implements report.SLIHistory.
func (st *Store) SLIBuckets(ctx context.Context, q report.BucketQuery) ([]report.BucketCount, error) {
	step := int64(q.Step / time.Second)
	if step < 60 || len(q.SLOs) == 0 {
		return nil, fmt.Errorf("chstore: a bucket query needs a step of at least a minute (got %s) and an SLO", q.Step)
	}
	sql := fmt.Sprintf(`SELECT toUInt64(intDiv(toUInt32(m), %d)) * %d AS b, svc, s, sum(g), sum(t) FROM (%s) GROUP BY b, svc, s ORDER BY b, svc, s`,
		step, step, st.minutes(q.From, q.To, q.Region, q.SLOs))
	rows, err := st.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("querying SLI buckets from %s.sli_minutes: %w", st.db, err)
	}
	var out []report.BucketCount
	for rows.Next() {
		var b report.BucketCount
		var start uint64
		if err := rows.Scan(&start, &b.Service, &b.SLO, &b.Good, &b.Total); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading SLI buckets: %w", err)
		}
		b.Start = time.Unix(int64(start), 0).UTC()
		out = append(out, b)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("reading SLI buckets: %w", err)
	}
	return out, nil
}

// events is the deduplicated breaker transitions matching where.
func (st *Store) events(where string) string {
	return fmt.Sprintf(`SELECT any(ts) AS e_ts, any(region) AS e_region, any(from_state) AS e_from, any(to_state) AS e_to, any(reason) AS e_reason
FROM %s.sla_events WHERE kind = 'breaker' AND %s GROUP BY event_id`, st.db, where)
}

// BreakerEvents implements report.EventHistory.
func (st *Store) BreakerEvents(ctx context.Context, q report.EventQuery) (report.BreakerHistory, error) {
	out := report.BreakerHistory{Before: map[string]report.BreakerEvent{}}
	region := ""
	if q.Region != "" {
		region = " AND region = " + str(q.Region)
	}
	before := "ts < " + when(q.From) + region
	// The last transitions before the window: every one at each region's
	// latest second, so Incidents can chain those that share it.
	sql := fmt.Sprintf(`SELECT e_ts, e_region, e_from, e_to, e_reason FROM (%s)
WHERE (e_region, e_ts) IN (SELECT region, max(ts) FROM %s.sla_events WHERE kind = 'breaker' AND %s GROUP BY region)
ORDER BY e_region, e_ts`, st.events(before), st.db, before)
	last, err := st.readEvents(ctx, sql)
	if err != nil {
		return out, fmt.Errorf("querying breaker state before the window from %s.sla_events: %w", st.db, err)
	}
	byRegion := map[string][]report.BreakerEvent{}
	for _, e := range last {
		byRegion[e.Region] = append(byRegion[e.Region], e)
	}
	for r, evs := range byRegion {
		out.Before[r] = lastInChain(evs)
	}
	limit := max(q.Limit, 1)
	sql = fmt.Sprintf(`SELECT e_ts, e_region, e_from, e_to, e_reason FROM (%s) ORDER BY e_ts, e_region LIMIT %d`,
		st.events("ts >= "+when(q.From)+" AND ts < "+when(q.To)+region), limit+1)
	out.Events, err = st.readEvents(ctx, sql)
	if err != nil {
		return out, fmt.Errorf("querying breaker events from %s.sla_events: %w", st.db, err)
	}
	if len(out.Events) > limit {
		out.Events, out.Truncated = out.Events[:limit], true
	}
	return out, nil
}

// lastInChain picks, among transitions of one second, the one no other
// continues from: the state the region was left in.
func lastInChain(evs []report.BreakerEvent) report.BreakerEvent {
	for _, e := range evs {
		continued := slices.ContainsFunc(evs, func(o report.BreakerEvent) bool { return o != e && o.From == e.To })
		if !continued {
			return e
		}
	}
	return evs[len(evs)-1]
}

func (st *Store) readEvents(ctx context.Context, sql string) ([]report.BreakerEvent, error) {
	rows, err := st.conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	var out []report.BreakerEvent
	for rows.Next() {
		var e report.BreakerEvent
		if err := rows.Scan(&e.At, &e.Region, &e.From, &e.To, &e.Reason); err != nil {
			rows.Close()
			return nil, err
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	return out, closeRows(rows)
}

// DrillStats implements report.DrillHistory.
func (st *Store) DrillStats(ctx context.Context, q report.DrillQuery) ([]report.DrillStats, error) {
	where := fmt.Sprintf("ts >= %s AND ts < %s", when(q.From), when(q.To))
	if q.Region != "" {
		where += " AND region = " + str(q.Region)
	}
	names := make([]string, 0, len(q.Objectives))
	for n := range q.Objectives {
		names = append(names, n)
	}
	slices.Sort(names)
	rtoObj, rpoObj := flt(q.Default.RTO.Seconds()), flt(q.Default.RPO.Seconds())
	if len(names) > 0 {
		rtos, rpos := make([]float64, len(names)), make([]float64, len(names))
		for i, n := range names {
			rtos[i], rpos[i] = q.Objectives[n].RTO.Seconds(), q.Objectives[n].RPO.Seconds()
		}
		rtoObj = fmt.Sprintf("transform(sc, %s, %s, %s)", strs(names), flts(rtos), rtoObj)
		rpoObj = fmt.Sprintf("transform(sc, %s, %s, %s)", strs(names), flts(rpos), rpoObj)
	}
	sql := fmt.Sprintf(`SELECT sc, count(), sum(p), countIf(rto <= %s AND rpo <= %s), max(rto), max(rpo) FROM (
  SELECT any(scenario) AS sc, any(passed) AS p, any(rto_seconds) AS rto, any(rpo_seconds) AS rpo
  FROM %s.drill_results WHERE %s GROUP BY event_id
) GROUP BY sc ORDER BY sc`, rtoObj, rpoObj, st.db, where)
	rows, err := st.conn.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("querying drill results from %s.drill_results: %w", st.db, err)
	}
	var out []report.DrillStats
	for rows.Next() {
		var d report.DrillStats
		var n, passed, within uint64
		if err := rows.Scan(&d.Scenario, &n, &passed, &within, &d.WorstRTOSeconds, &d.WorstRPOSeconds); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading drill results: %w", err)
		}
		d.Drills, d.Passed, d.WithinObjectives = int(n), int(passed), int(within)
		out = append(out, d)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("reading drill results: %w", err)
	}
	return out, nil
}

func closeRows(rows driver.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}
