package report

import (
	"testing"
	"time"
)

func TestIncidents(t *testing.T) {
	at := func(day, h, m, s int) time.Time { return time.Date(2026, 10, day, h, m, s, 0, time.UTC) }
	ev := func(tm time.Time, region, from, to, reason string) BreakerEvent {
		return BreakerEvent{At: tm, Region: region, From: from, To: to, Reason: reason}
	}
	from, to := at(1, 0, 0, 0), at(31, 0, 0, 0)
	type want struct {
		region   string
		start    time.Time
		end      *time.Time // nil: ongoing
		seconds  float64
		reason   string
		openedAt time.Time
	}
	end := func(t time.Time) *time.Time { return &t }
	cases := map[string]struct {
		h    BreakerHistory
		now  time.Time
		want []want
	}{
		"Open then recovering is one interval; recovering is not downtime.": {
			h:    BreakerHistory{Events: []BreakerEvent{ev(at(2, 10, 0, 0), "a", "closed", "open", "p99"), ev(at(2, 10, 5, 0), "a", "open", "recovering", ""), ev(at(2, 10, 7, 0), "a", "recovering", "closed", "")}},
			now:  at(31, 0, 0, 0),
			want: []want{{"a", at(2, 10, 0, 0), end(at(2, 10, 5, 0)), 300, "p99", at(2, 10, 0, 0)}},
		},
		"A breaker open before the window starts its interval at the window.": {
			h:    BreakerHistory{Before: map[string]BreakerEvent{"b": ev(at(1, 0, 0, 0).Add(-time.Hour), "b", "closed", "open", "health")}, Events: []BreakerEvent{ev(at(1, 0, 10, 0), "b", "open", "closed", "")}},
			now:  at(31, 0, 0, 0),
			want: []want{{"b", from, end(at(1, 0, 10, 0)), 600, "health", from.Add(-time.Hour)}},
		},
		"A breaker still open when the window ended in the past ends at the window's end.": {
			h:    BreakerHistory{Events: []BreakerEvent{ev(at(30, 23, 59, 0), "a", "closed", "open", "probe")}},
			now:  at(31, 0, 0, 0),
			want: []want{{"a", at(30, 23, 59, 0), end(to), 60, "probe", at(30, 23, 59, 0)}},
		},
		"A breaker still open now, in a window reaching past now, is ongoing until now.": {
			h:    BreakerHistory{Events: []BreakerEvent{ev(at(15, 12, 0, 0), "a", "closed", "open", "probe")}},
			now:  at(15, 12, 30, 0),
			want: []want{{"a", at(15, 12, 0, 0), nil, 1800, "probe", at(15, 12, 0, 0)}},
		},
		"Transitions in one second are chained from the state before them.": {
			// Stored in the wrong order within 08:05: recovering→open comes back before open→recovering.
			h: BreakerHistory{Events: []BreakerEvent{
				ev(at(20, 8, 0, 0), "r", "closed", "open", "first"),
				ev(at(20, 8, 5, 0), "r", "recovering", "open", "again"),
				ev(at(20, 8, 5, 0), "r", "open", "recovering", ""),
				ev(at(20, 8, 6, 0), "r", "open", "recovering", ""),
			}},
			now: at(31, 0, 0, 0),
			want: []want{
				{"r", at(20, 8, 0, 0), end(at(20, 8, 5, 0)), 300, "first", at(20, 8, 0, 0)},
				{"r", at(20, 8, 5, 0), end(at(20, 8, 6, 0)), 60, "again", at(20, 8, 5, 0)},
			},
		},
		"Regions are interleaved by start time.": {
			h: BreakerHistory{Events: []BreakerEvent{
				ev(at(3, 0, 0, 0), "b", "closed", "open", "b1"), ev(at(3, 0, 0, 30), "b", "open", "closed", ""),
				ev(at(2, 0, 0, 0), "a", "closed", "open", "a1"), ev(at(2, 0, 1, 0), "a", "open", "closed", ""),
			}},
			now: at(31, 0, 0, 0),
			want: []want{
				{"a", at(2, 0, 0, 0), end(at(2, 0, 1, 0)), 60, "a1", at(2, 0, 0, 0)},
				{"b", at(3, 0, 0, 0), end(at(3, 0, 0, 30)), 30, "b1", at(3, 0, 0, 0)},
			},
		},
		"A closed region with no transitions has no incident.": {
			h:   BreakerHistory{Before: map[string]BreakerEvent{"a": ev(at(1, 0, 0, 0).Add(-time.Hour), "a", "open", "closed", "")}},
			now: at(31, 0, 0, 0),
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := Incidents(c.h, from, to, c.now)
			if len(got) != len(c.want) {
				t.Fatalf("got %d incidents %+v, want %d", len(got), got, len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				if g.Region != w.region || !g.Start.Equal(w.start) || g.DurationSeconds != w.seconds || g.Reason != w.reason || !g.OpenedAt.Equal(w.openedAt) {
					t.Errorf("incident %d = %+v; want %+v", i, g, w)
				}
				if (w.end == nil) != g.Ongoing || (w.end == nil) != (g.End == nil) || (w.end != nil && !g.End.Equal(*w.end)) {
					t.Errorf("incident %d end %v ongoing %v; want end %v", i, g.End, g.Ongoing, w.end)
				}
			}
		})
	}
}
