package memhistory

import (
	"cmp"
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// drill is what the report reads of one drill result, at a whole Unix
// second.
type drill struct {
	at               int64
	scenario, region string
	passed           bool
	rto, rpo         float64
}

// drills is the drill result table: few rows, kept by event id.
type drills struct {
	byID map[uuid.UUID]drill
}

func (t *drills) init() { t.byID = map[uuid.UUID]drill{} }

// trim drops the drills before Unix second cutoff and returns how many.
func (t *drills) trim(cutoff int64) int {
	n := 0
	for id, d := range t.byID {
		if d.at < cutoff {
			delete(t.byID, id)
			n++
		}
	}
	return n
}

// RecordDrill stores the result of one drill. It takes chsink.DrillResult,
// the drill_results record, so the drill runner can hand one value to
// either store. As chsink does, a zero EventID is filled with a random one
// (the record then never counts as a replay) and a zero Time with the
// store's clock; a result whose EventID is held replaces it. A result older
// than the retention is dropped (Stats.Expired); one that would take the
// store past MaxRows is refused with an error wrapping ErrFull.
func (s *Store) RecordDrill(ctx context.Context, r chsink.DrillResult) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.cfg.Now()
	if r.EventID == (uuid.UUID{}) {
		r.EventID = uuid.New()
	}
	if r.Time.IsZero() {
		r.Time = now
	}
	d := drill{at: r.Time.Unix(), scenario: r.Scenario, region: r.Region, passed: r.Passed, rto: r.RTOSeconds, rpo: r.RPOSeconds}
	s.mu.Lock()
	defer s.mu.Unlock()
	if oldest := s.trimLocked(now); d.at < oldest*secondsPerDay {
		s.stats.Expired++
		return nil
	}
	if _, held := s.dr.byID[r.EventID]; held {
		s.stats.Duplicates++
	} else if err := s.fullLocked(1, "new drill result"); err != nil {
		return err
	}
	s.dr.byID[r.EventID] = d
	return nil
}

// DrillStats implements report.DrillHistory: per scenario, ordered by name,
// the drills of [q.From, q.To) (cut at whole seconds) in q.Region (all when
// empty), how many passed, how many had RTO and RPO within the scenario's
// objectives (q.Objectives, else q.Default), and the worst of each.
func (s *Store) DrillStats(ctx context.Context, q report.DrillQuery) ([]report.DrillStats, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fromS, toS := q.From.Unix(), q.To.Unix()
	by := map[string]*report.DrillStats{}
	s.mu.RLock()
	for _, d := range s.dr.byID {
		if d.at < fromS || d.at >= toS || (q.Region != "" && d.region != q.Region) {
			continue
		}
		st := by[d.scenario]
		if st == nil {
			st = &report.DrillStats{Scenario: d.scenario, WorstRTOSeconds: d.rto, WorstRPOSeconds: d.rpo}
			by[d.scenario] = st
		}
		obj, ok := q.Objectives[d.scenario]
		if !ok {
			obj = q.Default
		}
		st.Drills++
		if d.passed {
			st.Passed++
		}
		if d.rto <= obj.RTO.Seconds() && d.rpo <= obj.RPO.Seconds() {
			st.WithinObjectives++
		}
		st.WorstRTOSeconds = max(st.WorstRTOSeconds, d.rto)
		st.WorstRPOSeconds = max(st.WorstRPOSeconds, d.rpo)
	}
	s.mu.RUnlock()
	out := make([]report.DrillStats, 0, len(by))
	for _, st := range by {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b report.DrillStats) int { return cmp.Compare(a.Scenario, b.Scenario) })
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
