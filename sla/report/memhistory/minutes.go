package memhistory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/rollup"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

const minutesPerDay = 24 * 60

// seriesKey names the rows of one SLO in one region.
type seriesKey struct{ service, slo, region string }

type series struct {
	seriesKey
	// key is service/slo: the name chstore matches a query's SLOs by.
	key string
	// pair is the index of (service, slo) in minutes.pairs.
	pair int32
}

// cell is one minute row: the events of one series.
type cell struct {
	series      int32 // -1: a row a replay moved to another minute
	good, total uint64
}

// day holds one UTC day of minute rows, per minute of the day.
type day struct {
	slots [minutesPerDay][]cell
}

// loc is where a row's cell is.
type loc struct {
	day  int32 // Unix days
	slot uint16
	idx  uint32
}

// minutes is the SLI minute table: cells per day and minute, the event ids
// held, and the series and (service, SLO) pairs the cells point to (never
// dropped: there are few).
type minutes struct {
	series   []series
	seriesOf map[seriesKey]int32
	pairs    [][2]string
	pairOf   map[[2]string]int32
	days     map[int64]*day
	order    []int64 // the days held, ascending
	ids      map[uuid.UUID]loc
}

func (m *minutes) init() {
	m.seriesOf = map[seriesKey]int32{}
	m.pairOf = map[[2]string]int32{}
	m.days = map[int64]*day{}
	m.ids = map[uuid.UUID]loc{}
}

func (m *minutes) intern(service, slo, region string) int32 {
	k := seriesKey{service, slo, region}
	if i, ok := m.seriesOf[k]; ok {
		return i
	}
	p, ok := m.pairOf[[2]string{service, slo}]
	if !ok {
		p = int32(len(m.pairs))
		m.pairs = append(m.pairs, [2]string{service, slo})
		m.pairOf[[2]string{service, slo}] = p
	}
	i := int32(len(m.series))
	m.series = append(m.series, series{seriesKey: k, key: service + "/" + slo, pair: p})
	m.seriesOf[k] = i
	return i
}

func (m *minutes) day(d int64) *day {
	if dd, ok := m.days[d]; ok {
		return dd
	}
	dd := &day{}
	m.days[d] = dd
	i, _ := slices.BinarySearch(m.order, d)
	m.order = slices.Insert(m.order, i, d)
	return dd
}

// put stores r (prepared) at Unix second sec, replacing the row of the same
// event id, and reports whether it replaced one.
func (m *minutes) put(r *rollup.Minute, sec int64) bool {
	d := unixDay(sec)
	slot := int((sec - d*secondsPerDay) / 60)
	c := cell{series: m.intern(r.Service, r.SLO, r.Region), good: r.Good, total: r.Total}
	at, replaced := m.ids[r.EventID]
	if replaced {
		if int64(at.day) == d && int(at.slot) == slot {
			m.days[d].slots[slot][at.idx] = c
			return true
		}
		// The same id at another minute: ClickHouse keeps one row for it.
		m.days[int64(at.day)].slots[at.slot][at.idx] = cell{series: -1}
	}
	dd := m.day(d)
	if dd.slots[slot] == nil {
		// Room for every series once: a minute's rows in one allocation.
		dd.slots[slot] = make([]cell, 0, len(m.series))
	}
	dd.slots[slot] = append(dd.slots[slot], c)
	m.ids[r.EventID] = loc{day: int32(d), slot: uint16(slot), idx: uint32(len(dd.slots[slot]) - 1)}
	return replaced
}

// trim drops the days before oldest and returns how many rows it dropped.
func (m *minutes) trim(oldest int64) int {
	n := 0
	for len(m.order) > 0 && m.order[0] < oldest {
		delete(m.days, m.order[0])
		m.order = m.order[1:]
		n++
	}
	if n == 0 {
		return 0
	}
	dropped := 0
	for id, at := range m.ids {
		if int64(at.day) < oldest {
			delete(m.ids, id)
			dropped++
		}
	}
	return dropped
}

// prepareMinute fills a zero time and a zero event id the way chsink does
// for sli_minutes (IDFrom of the minute, service, SLO and region), truncates
// the time to its minute and returns its Unix second.
func prepareMinute(r *rollup.Minute, now time.Time) int64 {
	if r.Minute.IsZero() {
		r.Minute = now
	}
	r.Minute = r.Minute.Truncate(time.Minute)
	if r.EventID == (uuid.UUID{}) {
		r.EventID = chsink.IDFrom(r.Minute.UTC().Format(time.RFC3339), r.Service, r.SLO, r.Region)
	}
	return r.Minute.Unix()
}

// WriteMinutes implements rollup.Sink. A row whose event id is held
// replaces that row (a recomputed or replayed minute counts once); a row of
// a day the retention no longer keeps is dropped (Stats.Expired). When the
// new rows would take the store past MaxRows, nothing is stored and the
// error wraps ErrFull.
func (s *Store) WriteMinutes(ctx context.Context, rows []rollup.Minute) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	oldest := s.trimLocked(now)
	if s.rowsLocked()+len(rows) > s.maxRows {
		// Near the bound: count the new ids exactly.
		fresh := map[uuid.UUID]struct{}{}
		for _, r := range rows {
			sec := prepareMinute(&r, now)
			if unixDay(sec) < oldest {
				continue
			}
			if _, held := s.min.ids[r.EventID]; !held {
				fresh[r.EventID] = struct{}{}
			}
		}
		if err := s.fullLocked(len(fresh), "new SLI minute rows"); err != nil {
			return err
		}
	}
	for _, r := range rows {
		sec := prepareMinute(&r, now)
		if unixDay(sec) < oldest {
			s.stats.Expired++
			continue
		}
		if s.min.put(&r, sec) {
			s.stats.Duplicates++
		}
	}
	return nil
}

// matcher says which of a query's SLOs (its index in q.SLOs, -1 for none)
// each series is, the way chstore's WHERE clause and indexOf decide it.
type matcher struct {
	keys   map[string]int32
	region string
	of     []int32
}

func newMatcher(slos []report.SLOTarget, region string) *matcher {
	mt := &matcher{keys: make(map[string]int32, len(slos)), region: region}
	for i, t := range slos {
		k := t.Service + "/" + t.SLO
		if _, dup := mt.keys[k]; !dup { // indexOf: the first
			mt.keys[k] = int32(i)
		}
	}
	return mt
}

// extend matches the series added since the last call (under the lock).
func (mt *matcher) extend(all []series) {
	for i := len(mt.of); i < len(all); i++ {
		k := int32(-1)
		if sr := all[i]; mt.region == "" || sr.region == mt.region {
			if j, ok := mt.keys[sr.key]; ok {
				k = j
			}
		}
		mt.of = append(mt.of, k)
	}
}

// eachDay calls fn, under the read lock, for every day held that overlaps
// the Unix seconds [fromS, toS), in time order, with the minute slots of
// that day inside them; then after (when not nil) with the lock released.
// The lock is taken and released per day, so writers wait at most one day's
// read.
func (s *Store) eachDay(ctx context.Context, fromS, toS int64, fn func(d int64, dd *day, lo, hi int), after func() error) error {
	for cursor := unixDay(fromS); ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.RLock()
		i, _ := slices.BinarySearch(s.min.order, cursor)
		if i == len(s.min.order) || s.min.order[i]*secondsPerDay >= toS {
			s.mu.RUnlock()
			return nil
		}
		d := s.min.order[i]
		start := d * secondsPerDay
		// Minute start+60·slot is in [fromS, toS) for slot in [lo, hi).
		lo := int(ceilDiv(max(fromS, start)-start, 60))
		hi := int(ceilDiv(min(toS, start+secondsPerDay)-start, 60))
		fn(d, s.min.days[d], lo, hi)
		s.mu.RUnlock()
		if after != nil {
			if err := after(); err != nil {
				return err
			}
		}
		cursor = d + 1
	}
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// span is one minute of a read chunk: its Unix second and its counts in
// the chunk's flat slice.
type span struct {
	minute     int64
	start, end int
}

// SLIMinutes implements report.SLIHistory: per minute of [q.From, q.To)
// (cut at whole seconds) holding rows of q's SLOs in q.Region (all when
// empty), in time order, each SLO's good and total summed over the regions,
// the SLOs in q.SLOs order. fn is called with the lock released.
func (s *Store) SLIMinutes(ctx context.Context, q report.SLIQuery, fn func(report.MinuteCounts) error) error {
	if len(q.SLOs) == 0 {
		return errors.New("memhistory: the query names no SLO")
	}
	fromS, toS := q.From.Unix(), q.To.Unix()
	mt := newMatcher(q.SLOs, q.Region)
	good, total := make([]uint64, len(q.SLOs)), make([]uint64, len(q.SLOs))
	seen := make([]bool, len(q.SLOs))
	var touched []int32
	var flat []report.SLOCount
	var spans []span
	return s.eachDay(ctx, fromS, toS, func(d int64, dd *day, lo, hi int) {
		mt.extend(s.min.series)
		for slot := lo; slot < hi; slot++ {
			touched = touched[:0]
			for _, c := range dd.slots[slot] {
				if c.series < 0 {
					continue
				}
				k := mt.of[c.series]
				if k < 0 {
					continue
				}
				if !seen[k] {
					seen[k], good[k], total[k] = true, 0, 0
					touched = append(touched, k)
				}
				good[k] += c.good
				total[k] += c.total
			}
			if len(touched) == 0 {
				continue
			}
			slices.Sort(touched)
			start := len(flat)
			for _, k := range touched {
				flat = append(flat, report.SLOCount{Service: q.SLOs[k].Service, SLO: q.SLOs[k].SLO, Good: good[k], Total: total[k]})
				seen[k] = false
			}
			spans = append(spans, span{minute: d*secondsPerDay + int64(slot)*60, start: start, end: len(flat)})
		}
	}, func() error {
		defer func() { flat, spans = flat[:0], spans[:0] }()
		for _, sp := range spans {
			if err := fn(report.MinuteCounts{Minute: time.Unix(sp.minute, 0).UTC(), SLOs: flat[sp.start:sp.end:sp.end]}); err != nil {
				return err
			}
		}
		return nil
	})
}

// SLIBuckets implements report.SLIHistory: per bucket of q.Step (whole
// seconds, at least a minute) from the Unix epoch and per SLO of q, the
// good and total events of the minutes of [q.From, q.To) in q.Region (all
// when empty), ordered by bucket, service and SLO.
func (s *Store) SLIBuckets(ctx context.Context, q report.BucketQuery) ([]report.BucketCount, error) {
	step := int64(q.Step / time.Second)
	if step < 60 || len(q.SLOs) == 0 {
		return nil, fmt.Errorf("memhistory: a bucket query needs a step of at least a minute (got %s) and an SLO", q.Step)
	}
	fromS, toS := q.From.Unix(), q.To.Unix()
	mt := newMatcher(q.SLOs, q.Region)
	var (
		out          []report.BucketCount
		good, total  []uint64
		seen         []bool
		touched      []int32
		pairs        [][2]string
		bucket       = int64(-1)
		seriesToPair []int32
	)
	flush := func() {
		slices.SortFunc(touched, func(a, b int32) int {
			return cmp.Or(cmp.Compare(pairs[a][0], pairs[b][0]), cmp.Compare(pairs[a][1], pairs[b][1]))
		})
		for _, p := range touched {
			out = append(out, report.BucketCount{Start: time.Unix(bucket, 0).UTC(), Service: pairs[p][0], SLO: pairs[p][1], Good: good[p], Total: total[p]})
			seen[p] = false
		}
		touched = touched[:0]
	}
	err := s.eachDay(ctx, fromS, toS, func(d int64, dd *day, lo, hi int) {
		mt.extend(s.min.series)
		pairs = s.min.pairs
		for len(good) < len(pairs) {
			good, total, seen = append(good, 0), append(total, 0), append(seen, false)
		}
		for i := len(seriesToPair); i < len(s.min.series); i++ {
			seriesToPair = append(seriesToPair, s.min.series[i].pair)
		}
		for slot := lo; slot < hi; slot++ {
			minute := d*secondsPerDay + int64(slot)*60
			for _, c := range dd.slots[slot] {
				if c.series < 0 || mt.of[c.series] < 0 {
					continue
				}
				if b := minute / step * step; b != bucket {
					flush()
					bucket = b
				}
				p := seriesToPair[c.series]
				if !seen[p] {
					seen[p], good[p], total[p] = true, 0, 0
					touched = append(touched, p)
				}
				good[p] += c.good
				total[p] += c.total
			}
		}
	}, nil)
	if err != nil {
		return nil, err
	}
	flush()
	return out, nil
}
