package report

import (
	"cmp"
	"slices"
	"time"
)

// Incidents turns breaker transitions into breaker-open intervals clipped to
// [from, to), oldest first. An interval starts when a region's breaker goes
// to open and ends when it leaves open (for recovering or closed): the
// recovering ramp already serves traffic, so it is not downtime. A breaker
// open at from (by the last transition before it) starts an interval at
// from. One still open at the end is ongoing (End null, duration up to now)
// when the window reaches past now, and ends at to otherwise.
//
// Transitions carry whole seconds, so several may share one; within a second
// they are taken in the order that chains From to the previous To.
func Incidents(h BreakerHistory, from, to, now time.Time) []Incident {
	byRegion := map[string][]BreakerEvent{}
	for _, e := range h.Events {
		if e.At.Before(from) || !e.At.Before(to) {
			continue // not the window's; a store should not return it
		}
		byRegion[e.Region] = append(byRegion[e.Region], e)
	}
	for r := range h.Before {
		if _, ok := byRegion[r]; !ok {
			byRegion[r] = nil
		}
	}
	var out []Incident
	for region, evs := range byRegion {
		state := BreakerClosed
		var open *Incident
		if b, ok := h.Before[region]; ok {
			state = b.To
			if b.To == BreakerOpen {
				open = &Incident{Region: region, OpenedAt: b.At, Start: from, Reason: b.Reason}
			}
		}
		for _, e := range chainOrder(evs, state) {
			switch {
			case open == nil && e.To == BreakerOpen:
				open = &Incident{Region: region, OpenedAt: e.At, Start: e.At, Reason: e.Reason}
			case open != nil && e.To != BreakerOpen:
				end := e.At
				open.End = &end
				open.DurationSeconds = end.Sub(open.Start).Seconds()
				out = append(out, *open)
				open = nil
			}
			state = e.To
		}
		if open != nil {
			if now.Before(to) {
				open.Ongoing = true
				open.DurationSeconds = max(0, now.Sub(open.Start).Seconds())
			} else {
				end := to
				open.End = &end
				open.DurationSeconds = end.Sub(open.Start).Seconds()
			}
			out = append(out, *open)
		}
	}
	slices.SortFunc(out, func(a, b Incident) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.Region, b.Region)
	})
	return out
}

// chainOrder sorts one region's transitions by time and, within one
// timestamp, follows the chain of states from state.
func chainOrder(evs []BreakerEvent, state string) []BreakerEvent {
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b BreakerEvent) int { return a.At.Compare(b.At) })
	out := make([]BreakerEvent, 0, len(evs))
	for i := 0; i < len(evs); {
		j := i
		for j < len(evs) && evs[j].At.Equal(evs[i].At) {
			j++
		}
		if j == i+1 { // the common case: one transition in its second
			out = append(out, evs[i])
			state = evs[i].To
			i = j
			continue
		}
		group := slices.Clone(evs[i:j])
		for len(group) > 0 {
			k := slices.IndexFunc(group, func(e BreakerEvent) bool { return e.From == state })
			if k < 0 {
				k = 0
			}
			out = append(out, group[k])
			state = group[k].To
			group = slices.Delete(group, k, k+1)
		}
		i = j
	}
	return out
}
