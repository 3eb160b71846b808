package memhistory

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/report"
)

// event is one breaker transition, at a whole Unix second (ClickHouse's
// DateTime).
type event struct {
	at                       int64
	seq                      uint64 // write order: ties within a second keep it
	id                       string
	region, from, to, reason string
}

func (e event) sameFact(o event) bool {
	return e.at == o.at && e.region == o.region && e.from == o.from && e.to == o.to && e.reason == o.reason
}

func (e event) breakerEvent() report.BreakerEvent {
	return report.BreakerEvent{At: time.Unix(e.at, 0).UTC(), Region: e.region, From: e.from, To: e.to, Reason: e.reason}
}

// events is the breaker transition table, sorted by (at, seq).
type events struct {
	list    []event
	byID    map[string]int64 // event id → at
	regions map[string]int   // transitions held per region
	seq     uint64
}

func (t *events) init() {
	t.byID = map[string]int64{}
	t.regions = map[string]int{}
}

// first is the index of the first transition at or after Unix second at.
func (t *events) first(at int64) int {
	return sort.Search(len(t.list), func(i int) bool { return t.list[i].at >= at })
}

func (t *events) removeAt(i int) {
	e := t.list[i]
	t.list = slices.Delete(t.list, i, i+1)
	delete(t.byID, e.id)
	if t.regions[e.region]--; t.regions[e.region] <= 0 {
		delete(t.regions, e.region)
	}
}

// put stores e, replacing the transition of the same id, and reports
// whether one was held.
func (t *events) put(e event) bool {
	at, held := t.byID[e.id]
	if held {
		i := t.first(at)
		for ; i < len(t.list) && t.list[i].id != e.id; i++ {
		}
		if e.sameFact(t.list[i]) {
			return true // a replay: nothing changes
		}
		t.removeAt(i)
	}
	t.seq++
	e.seq = t.seq
	i := sort.Search(len(t.list), func(i int) bool { return t.list[i].at > e.at })
	t.list = slices.Insert(t.list, i, e)
	t.byID[e.id] = e.at
	t.regions[e.region]++
	return held
}

// trim drops the transitions before Unix second cutoff except, per region,
// those of its last second before it (the state in force at cutoff), and
// returns how many it dropped.
func (t *events) trim(cutoff int64) int {
	idx := t.first(cutoff)
	last := map[string]int64{}
	for _, e := range t.list[:idx] {
		last[e.region] = e.at
	}
	kept := make([]event, 0, len(last))
	for _, e := range t.list[:idx] {
		if e.at == last[e.region] {
			kept = append(kept, e)
			continue
		}
		delete(t.byID, e.id)
		if t.regions[e.region]--; t.regions[e.region] <= 0 {
			delete(t.regions, e.region)
		}
	}
	dropped := idx - len(kept)
	if dropped > 0 {
		t.list = append(kept, t.list[idx:]...)
	}
	return dropped
}

// eventID is the id of an engine event: its own, or for one without, a
// hash of its content as the engine makes them (so a replay still counts
// once).
func eventID(ev engine.Event) string {
	if ev.ID != "" {
		return ev.ID
	}
	h := sha256.New()
	for _, s := range []string{strconv.FormatInt(ev.At.UnixNano(), 10), ev.Kind, ev.Region, ev.From, ev.To, ev.Reason} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Emit implements engine.EventSink. It keeps the breaker transitions
// (kind "breaker"), the only events the report reads, and ignores the other
// kinds (Stats.Ignored). A transition whose id is held replaces it (a
// re-sent event counts once); one without an id gets one from its content.
// A zero time is the store's clock; times are kept to the second. When the
// new transitions would take the store past MaxRows, none is stored and the
// error wraps ErrFull.
func (s *Store) Emit(ctx context.Context, evs []engine.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.cfg.Now()
	batch := make([]event, 0, len(evs))
	ignored := 0
	for _, ev := range evs {
		if ev.Kind != catalog.EventKindBreaker {
			ignored++
			continue
		}
		if ev.At.IsZero() {
			ev.At = now
		}
		batch = append(batch, event{at: ev.At.Unix(), id: eventID(ev), region: ev.Region, from: ev.From, to: ev.To, reason: ev.Reason})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Ignored += uint64(ignored)
	oldest := s.trimLocked(now)
	if s.rowsLocked()+len(batch) > s.maxRows {
		fresh := map[string]struct{}{}
		for _, e := range batch {
			if _, held := s.ev.byID[e.id]; !held {
				fresh[e.id] = struct{}{}
			}
		}
		if err := s.fullLocked(len(fresh), "new breaker transitions"); err != nil {
			return err
		}
	}
	cutoff, late := oldest*secondsPerDay, false
	for _, e := range batch {
		late = late || e.at < cutoff
		if s.ev.put(e) {
			s.stats.Duplicates++
		}
	}
	if late {
		// Older than the retention: kept only as a region's last state.
		s.stats.Expired += uint64(s.ev.trim(cutoff))
	}
	return nil
}

// BreakerEvents implements report.EventHistory: per region (q.Region, or
// all), the last transition before q.From (among those of that last second,
// the one no other continues from, as chstore picks it) and the transitions
// of [q.From, q.To) (cut at whole seconds) ordered by time and region, at
// most max(q.Limit, 1) of them. Transitions of one second and region keep
// the order they were written in.
func (s *Store) BreakerEvents(ctx context.Context, q report.EventQuery) (report.BreakerHistory, error) {
	out := report.BreakerHistory{Before: map[string]report.BreakerEvent{}}
	if err := ctx.Err(); err != nil {
		return out, err
	}
	fromS, toS := q.From.Unix(), q.To.Unix()
	limit := max(q.Limit, 1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	l := s.ev.list
	i0 := s.ev.first(fromS)

	// Walk back from the window's start to each region's last second.
	type group struct {
		at   int64
		evs  []report.BreakerEvent
		done bool
	}
	groups := map[string]*group{}
	want := len(s.ev.regions)
	if q.Region != "" {
		want = min(want, 1)
	}
	for j, done := i0-1, 0; j >= 0 && done < want; j-- {
		e := l[j]
		if q.Region != "" && e.region != q.Region {
			continue
		}
		switch g := groups[e.region]; {
		case g == nil:
			groups[e.region] = &group{at: e.at, evs: []report.BreakerEvent{e.breakerEvent()}}
		case g.done:
		case e.at == g.at:
			g.evs = append(g.evs, e.breakerEvent())
		default:
			g.done = true
			done++
		}
	}
	for r, g := range groups {
		slices.Reverse(g.evs)
		out.Before[r] = lastInChain(g.evs)
	}

	for j := i0; j < len(l) && l[j].at < toS; j++ {
		if q.Region == "" || l[j].region == q.Region {
			out.Events = append(out.Events, l[j].breakerEvent())
		}
	}
	slices.SortStableFunc(out.Events, func(a, b report.BreakerEvent) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Region, b.Region))
	})
	if len(out.Events) > limit {
		out.Events, out.Truncated = out.Events[:limit], true
	}
	return out, nil
}

// lastInChain picks, among transitions of one second, the one no other
// continues from: the state the region was left in (chstore's rule).
func lastInChain(evs []report.BreakerEvent) report.BreakerEvent {
	for _, e := range evs {
		continued := slices.ContainsFunc(evs, func(o report.BreakerEvent) bool { return o != e && o.From == e.To })
		if !continued {
			return e
		}
	}
	return evs[len(evs)-1]
}
