package engine

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

var three = []string{"sh-a", "sh-b", "bj-a"}

// firstTickAtOrAfter is the first tick time (t0 + k·interval) not before t.
func firstTickAtOrAfter(t time.Time, interval time.Duration) time.Time {
	k := (t.Sub(t0) + interval - 1) / interval
	return t0.Add(k * interval)
}

func TestALatencySpikeTripsAtExactlyTheTripDurationAndNotATickBefore(t *testing.T) {
	cases := map[string]struct {
		interval, tripFor, spikeAt time.Duration
	}{
		"The seed's 2m at 5s ticks, the spike from the first tick.":         {5 * time.Second, 2 * time.Minute, 0},
		"The seed's 2m at 5s ticks, the spike from the fourth tick.":        {5 * time.Second, 2 * time.Minute, 15 * time.Second},
		"A trip duration that is not a whole number of ticks rounds up.":    {5 * time.Second, 2*time.Minute + 2*time.Second, 10 * time.Second},
		"One-second ticks trip on the very second the duration is reached.": {time.Second, 30 * time.Second, 7 * time.Second},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := testSpec(t, three, func(s *spec.Spec) {
				s.Engine.Interval = spec.Duration(tc.interval)
				s.Breaker.Trip.For = spec.Duration(tc.tripFor)
			})
			c := newCore(t, s)
			spike := t0.Add(tc.spikeAt)
			want := firstTickAtOrAfter(spike.Add(tc.tripFor), tc.interval)
			n := int((want.Sub(t0))/tc.interval) + 3
			ds := run(t, c, tc.interval, n, func(i int, at time.Time) Signals {
				a := good("sh-a", at)
				if !at.Before(spike) {
					a.p99(0.512, at)
				}
				return signals(at, a, good("sh-b", at), good("bj-a", at))
			})
			for _, d := range ds {
				got := stateAt(d, "sh-a")
				switch {
				case d.At.Before(want) && got != Closed:
					t.Fatalf("sh-a is %s at %s, before the trip duration ran out at %s", got, d.At.Sub(t0), want.Sub(t0))
				case !d.At.Before(want) && got != Open:
					t.Fatalf("sh-a is %s at %s, at or after the trip duration ran out at %s", got, d.At.Sub(t0), want.Sub(t0))
				}
				if stateAt(d, "sh-b") != Closed || stateAt(d, "bj-a") != Closed {
					t.Fatalf("a healthy region left closed at %s", d.At.Sub(t0))
				}
			}
			evs := eventsOf(ds, "breaker", "sh-a")
			if len(evs) != 1 {
				t.Fatalf("want one breaker event, got %+v", evs)
			}
			ev := evs[0]
			wantReason := fmt.Sprintf("p99 0.512s > 0.300s for %s; open for 30s", tc.tripFor)
			if !ev.At.Equal(want) || ev.From != "closed" || ev.To != "open" || ev.Reason != wantReason {
				t.Fatalf("event %+v; want closed -> open at %s, reason %q", ev, want.Sub(t0), wantReason)
			}
			if ev.Values["p99_seconds"] != 0.512 || ev.Values["trip_p99_seconds"] != 0.3 || ev.ID == "" {
				t.Fatalf("event values %v, id %q", ev.Values, ev.ID)
			}
			last := ds[len(ds)-1]
			if rd, _ := last.Region("sh-a"); rd.Weight != 0 || last.Table.Regions["sh-a"].Weight != 0 || last.Table.Regions["sh-a"].Breaker != Open {
				t.Fatalf("an open region must get weight 0: decision %v, table %+v", rd.Weight, last.Table.Regions["sh-a"])
			}
		})
	}
}

func TestAHealthDropTripsTheBreakerWithTheHealthInTheReason(t *testing.T) {
	s := testSpec(t, three, nil)
	c := newCore(t, s)
	ds := run(t, c, tick, 30, func(i int, at time.Time) Signals {
		// sync lag at its bad bound and API success at its bad bound score 0:
		// health 100 - 35 - 30 = 35, below the trip bar 50.
		a := good("sh-a", at).comp(spec.MeasureSyncLag, Val(10, at)).comp(spec.MeasureAPISuccess, Val(99, at))
		return signals(at, a, good("sh-b", at), good("bj-a", at))
	})
	evs := eventsOf(ds, "breaker", "sh-a")
	if len(evs) != 1 || !evs[0].At.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("want one trip at 2m, got %+v", evs)
	}
	if !strings.HasPrefix(evs[0].Reason, "health 35.0 < 50.0 for 2m0s") || evs[0].Values["health"] != 35 {
		t.Fatalf("reason %q values %v", evs[0].Reason, evs[0].Values)
	}
}

func TestASignalFlappingAroundTheBarDoesNotFlapTheBreaker(t *testing.T) {
	cases := map[string]func(i int) float64{
		"Alternating just above and just below the bar every tick.": func(i int) float64 {
			if i%2 == 0 {
				return 0.31
			}
			return 0.29
		},
		"Bad for 1m55s, then one good tick, over and over.": func(i int) float64 {
			if i%24 == 23 {
				return 0.25
			}
			return 0.9
		},
		"Between the recover and the trip bars after short spikes.": func(i int) float64 {
			if i%10 < 3 {
				return 0.35
			}
			return 0.3 // at the bar is not above it
		},
	}
	for name, p99 := range cases {
		t.Run(name, func(t *testing.T) {
			c := newCore(t, testSpec(t, three, nil))
			ds := run(t, c, tick, 12*30, func(i int, at time.Time) Signals { // 30 minutes
				return signals(at, good("sh-a", at).p99(p99(i), at), good("sh-b", at), good("bj-a", at))
			})
			for _, d := range ds {
				if st := stateAt(d, "sh-a"); st != Closed {
					t.Fatalf("sh-a went %s at %s", st, d.At.Sub(t0))
				}
			}
			if evs := eventsOf(ds, "breaker", ""); len(evs) != 0 {
				t.Fatalf("breaker events from a flapping signal: %+v", evs)
			}
		})
	}
}

// transitionLog lists a region's (state, ramp percent) changes as
// "offset state pct" lines.
func transitionLog(ds []Decision, region string) []string {
	var out []string
	prev := ""
	for _, d := range ds {
		rd, _ := d.Region(region)
		cur := fmt.Sprintf("%s %g", rd.Breaker, rd.RampPercent)
		if cur != prev {
			out = append(out, fmt.Sprintf("%s %s", d.At.Sub(t0), cur))
			prev = cur
		}
	}
	return out
}

func TestARecoveredRegionRampsBackStepByStep(t *testing.T) {
	s := testSpec(t, three, nil)
	c := newCore(t, s)
	// Bad until it trips at 2m; good from 2m5s on.
	goodFrom := t0.Add(2*time.Minute + tick)
	ds := run(t, c, tick, 12*10, func(i int, at time.Time) Signals {
		a := good("sh-a", at)
		if at.Before(goodFrom) {
			a.p99(0.5, at)
		}
		return signals(at, a, good("sh-b", at), good("bj-a", at))
	})
	// Recovery needs the hold (30s) over and the recover rule held for 2m,
	// which counts from 2m5s: recovering at 4m5s, then a step every 30s.
	want := []string{
		"0s closed 100",
		"2m0s open 0",
		"4m5s recovering 10",
		"4m35s recovering 25",
		"5m5s recovering 50",
		"5m35s recovering 100",
		"6m5s closed 100",
	}
	if got := transitionLog(ds, "sh-a"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range ds {
		rd, _ := d.Region("sh-a")
		if want := round3(rd.ComputedWeight * rd.RampPercent / 100); rd.Weight != want || d.Table.Regions["sh-a"].Weight != want {
			t.Fatalf("at %s sh-a at %g%% has weight %g (table %g), want %g", d.At.Sub(t0), rd.RampPercent, rd.Weight, d.Table.Regions["sh-a"].Weight, want)
		}
		if d.Table.Regions["sh-a"].Breaker != rd.Breaker {
			t.Fatalf("table breaker %s, decided %s", d.Table.Regions["sh-a"].Breaker, rd.Breaker)
		}
	}
	evs := eventsOf(ds, "breaker", "sh-a")
	var reasons []string
	for _, ev := range evs {
		reasons = append(reasons, ev.From+"->"+ev.To+": "+ev.Reason)
	}
	wantReasons := []string{
		"closed->open: p99 0.500s > 0.300s for 2m0s; open for 30s",
		"open->recovering: p99 0.100s <= 0.200s and health 100.0 >= 70.0 for 2m0s after a 30s hold; ramp to 10%",
		"recovering->recovering: ramp 10% -> 25%: p99 0.100s <= 0.200s and health 100.0 >= 70.0 for 30s",
		"recovering->recovering: ramp 25% -> 50%: p99 0.100s <= 0.200s and health 100.0 >= 70.0 for 30s",
		"recovering->recovering: ramp 50% -> 100%: p99 0.100s <= 0.200s and health 100.0 >= 70.0 for 30s",
		"recovering->closed: ramp complete: p99 0.100s <= 0.200s and health 100.0 >= 70.0 through every step",
	}
	if strings.Join(reasons, "\n") != strings.Join(wantReasons, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(reasons, "\n"), strings.Join(wantReasons, "\n"))
	}
}

func TestARampStepWaitsWhileTheRecoverRuleDoesNotHold(t *testing.T) {
	c := newCore(t, testSpec(t, three, nil))
	goodFrom := t0.Add(2*time.Minute + tick)
	// In the ramp's 10% step (from 4m5s), P99 sits between the bars (250ms)
	// for 4m10s..4m30s: neither trip nor recover. The step's 30s count again
	// from 4m35s.
	ds := run(t, c, tick, 12*10, func(i int, at time.Time) Signals {
		a := good("sh-a", at)
		off := at.Sub(t0)
		switch {
		case at.Before(goodFrom):
			a.p99(0.5, at)
		case off >= 4*time.Minute+10*time.Second && off <= 4*time.Minute+30*time.Second:
			a.p99(0.25, at)
		}
		return signals(at, a, good("sh-b", at), good("bj-a", at))
	})
	got := transitionLog(ds, "sh-a")
	want := []string{"0s closed 100", "2m0s open 0", "4m5s recovering 10", "5m5s recovering 25", "5m35s recovering 50", "6m5s recovering 100", "6m35s closed 100"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestARegionThatGoesBadMidRampReopensWithALongerHold(t *testing.T) {
	s := testSpec(t, three, nil)
	c := newCore(t, s)
	// Bad until 2m; good until 4m50s (the ramp reached 25% at 4m35s); bad
	// for one tick at 4m50s; good again after.
	ds := run(t, c, tick, 12*15, func(i int, at time.Time) Signals {
		a := good("sh-a", at)
		off := at.Sub(t0)
		if off <= 2*time.Minute || off == 4*time.Minute+50*time.Second {
			a.p99(0.45, at)
		}
		return signals(at, a, good("sh-b", at), good("bj-a", at))
	})
	want := []string{
		"0s closed 100",
		"2m0s open 0",
		"4m5s recovering 10",
		"4m35s recovering 25",
		"4m50s open 0",
		// Hold 1m (30s x 2, repeat 1) ends at 5m50s, but recovery counts
		// 2m of the recover rule from 4m55s.
		"6m55s recovering 10",
		"7m25s recovering 25",
		"7m55s recovering 50",
		"8m25s recovering 100",
		"8m55s closed 100",
	}
	if got := transitionLog(ds, "sh-a"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var reopen *Event
	for _, ev := range eventsOf(ds, "breaker", "sh-a") {
		if ev.From == "recovering" && ev.To == "open" {
			reopen = &ev
		}
	}
	if reopen == nil || reopen.Reason != "p99 0.450s > 0.300s during the ramp at 25%; open for 1m0s (repeat 1)" || reopen.Values["hold_seconds"] != 60 {
		t.Fatalf("reopen event %+v", reopen)
	}
	d := ds[int((4*time.Minute+50*time.Second)/tick)]
	if rd, _ := d.Region("sh-a"); !rd.HoldUntil.Equal(t0.Add(5*time.Minute+50*time.Second)) || rd.Trips != 1 {
		t.Fatalf("hold until %s, repeats %d", rd.HoldUntil.Sub(t0), rd.Trips)
	}
}

func TestTheHoldGrowsWithRepeatedTripsAndIsForgottenAfterResetAfterClosed(t *testing.T) {
	s := testSpec(t, three, func(s *spec.Spec) {
		s.Breaker.Hold.ResetAfter = spec.Duration(20 * time.Minute)
	})
	c := newCore(t, s)
	// sh-a is bad in three 3-minute bursts: at 0, at 10m (5m after it closed:
	// a repeat) and at 40m (more than 20m after it closed: forgotten).
	bad := func(off time.Duration) bool {
		for _, start := range []time.Duration{0, 10 * time.Minute, 40 * time.Minute} {
			if off >= start && off < start+2*time.Minute+tick {
				return true
			}
		}
		return false
	}
	ds := run(t, c, tick, 12*50, func(i int, at time.Time) Signals {
		a := good("sh-a", at)
		if bad(at.Sub(t0)) {
			a.p99(0.6, at)
		}
		return signals(at, a, good("sh-b", at), good("bj-a", at))
	})
	var holds []float64
	for _, ev := range eventsOf(ds, "breaker", "sh-a") {
		if ev.To == "open" {
			holds = append(holds, ev.Values["hold_seconds"])
		}
	}
	if fmt.Sprint(holds) != "[30 60 30]" {
		t.Fatalf("hold-open seconds of the three trips: %v, want [30 60 30]", holds)
	}
}

func TestHoldOpenTimeGrowsByTheMultiplierUpToTheCap(t *testing.T) {
	c := newCore(t, testSpec(t, three, nil))
	var got []string
	for repeats := range 8 {
		got = append(got, c.holdFor(repeats).String())
	}
	if want := "30s 1m0s 2m0s 4m0s 8m0s 10m0s 10m0s 10m0s"; strings.Join(got, " ") != want {
		t.Fatalf("holds %s, want %s", strings.Join(got, " "), want)
	}
}

// brokenCount counts open regions and regions recovering below full weight.
func brokenCount(d Decision) (broken, open int) {
	for _, rd := range d.Regions {
		if rd.Breaker == Open {
			open++
		}
		if rd.Breaker == Open || (rd.Breaker == Recovering && rd.RampPercent < 100) {
			broken++
		}
	}
	return broken, open
}

func TestWhenEveryRegionIsBadAtLeastOneKeepsServingAndPanicIsReported(t *testing.T) {
	cases := map[string]struct {
		regions    []string
		fraction   float64
		wantOpen   int
		wantDenied []string
	}{
		"Three regions, half at most: the first by name opens, two stay in panic.": {three, 0.5, 1, []string{"sh-a", "sh-b"}},
		"One region never opens: it is the last serving one.":                      {[]string{"solo"}, 0.5, 0, []string{"solo"}},
		"Four regions, half at most: two open.":                                    {[]string{"r1", "r2", "r3", "r4"}, 0.5, 2, []string{"r3", "r4"}},
		"Two regions with a fraction of 0.99: one always serves.":                  {[]string{"r1", "r2"}, 0.99, 1, []string{"r2"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := testSpec(t, tc.regions, func(s *spec.Spec) { s.Breaker.MaxBrokenFraction = tc.fraction })
			c := newCore(t, s)
			allowed := int(tc.fraction * float64(len(tc.regions)))
			// Every region bad for 10 minutes, then every region good for 15.
			ds := run(t, c, tick, 12*25, func(i int, at time.Time) Signals {
				var rs []*region
				for _, r := range tc.regions {
					g := good(r, at)
					if at.Sub(t0) < 10*time.Minute {
						g.p99(0.8, at)
					}
					rs = append(rs, g)
				}
				return signals(at, rs...)
			})
			for _, d := range ds {
				broken, open := brokenCount(d)
				if open == len(tc.regions) || broken > allowed {
					t.Fatalf("at %s %d regions open, %d broken (allowed %d)", d.At.Sub(t0), open, broken, allowed)
				}
			}
			at2m := ds[int(2*time.Minute/tick)]
			if _, open := brokenCount(at2m); open != tc.wantOpen {
				t.Fatalf("%d regions opened at 2m, want %d", open, tc.wantOpen)
			}
			if !at2m.Panic || strings.Join(at2m.PanicRegions, ",") != strings.Join(tc.wantDenied, ",") {
				t.Fatalf("panic %v over %v, want panic over %v", at2m.Panic, at2m.PanicRegions, tc.wantDenied)
			}
			for _, r := range tc.wantDenied {
				rd, _ := at2m.Region(r)
				if !rd.TripDenied || rd.Breaker != Closed || at2m.Table.Regions[r].Weight < s.Routing.Weights.Min {
					t.Fatalf("denied region %s: %+v, table %+v", r, rd, at2m.Table.Regions[r])
				}
			}
			if ds[int(2*time.Minute/tick)-1].Panic {
				t.Fatal("panic a tick before any trip duration ran out")
			}
			panics := eventsOf(ds, "panic", "")
			if len(panics) != 2 || panics[0].To != "panic" || !panics[0].At.Equal(t0.Add(2*time.Minute)) || panics[1].To != "normal" {
				t.Fatalf("panic events %+v; want one entry at 2m and one exit", panics)
			}
			if !strings.Contains(panics[0].Reason, strings.Join(tc.wantDenied, ", ")+" met the trip rule") || panics[0].Values["denied"] != float64(len(tc.wantDenied)) {
				t.Fatalf("panic reason %q values %v", panics[0].Reason, panics[0].Values)
			}
			if last := ds[len(ds)-1]; last.Panic {
				t.Fatal("still in panic after every region recovered")
			}
		})
	}
}

func TestAbsentDataHoldsTheLastDecisionThenRaisesAStaleEvent(t *testing.T) {
	t.Run("A closed region with no data for ten minutes stays closed and goes stale once.", func(t *testing.T) {
		c := newCore(t, testSpec(t, three, nil))
		lastFresh := t0.Add(time.Minute)
		back := t0.Add(11 * time.Minute)
		ds := run(t, c, tick, 12*13, func(i int, at time.Time) Signals {
			a := good("sh-a", at)
			if at.After(lastFresh) && at.Before(back) {
				a = a.absent()
			}
			return signals(at, a, good("sh-b", at), good("bj-a", at))
		})
		for _, d := range ds {
			if stateAt(d, "sh-a") != Closed {
				t.Fatalf("absent data moved the breaker at %s", d.At.Sub(t0))
			}
		}
		stale := eventsOf(ds, "stale", "sh-a")
		wantAt := lastFresh.Add(time.Minute + tick) // first tick more than staleAfter after the last fresh one
		if len(stale) != 2 || !stale[0].At.Equal(wantAt) || stale[0].To != "stale" || !stale[1].At.Equal(back) || stale[1].To != "fresh" {
			t.Fatalf("stale events %+v; want stale at %s and fresh at %s", stale, wantAt.Sub(t0), back.Sub(t0))
		}
		if !strings.Contains(stale[0].Reason, "no fresh latency_p99, latency_p95, sync_lag, api_success, stream_consistency, config_consistency for more than 1m0s; the breaker holds closed") {
			t.Fatalf("stale reason %q", stale[0].Reason)
		}
		before := ds[int(wantAt.Sub(t0)/tick)-1]
		if rd, _ := before.Region("sh-a"); rd.Stale || !rd.LatencyP99.Known() || rd.Health != 100 {
			t.Fatalf("within staleAfter the last values hold: %+v", rd)
		}
		during := ds[int(wantAt.Sub(t0)/tick)]
		if rd, _ := during.Region("sh-a"); !rd.Stale || rd.LatencyP99.Known() || len(rd.StaleInputs) != 6 || rd.Breaker != Closed {
			t.Fatalf("past staleAfter the region is stale with unknown latency: %+v", rd)
		}
	})
	t.Run("A bad run interrupted by a gap shorter than staleAfter trips on the first fresh bad tick after the trip duration.", func(t *testing.T) {
		c := newCore(t, testSpec(t, three, nil))
		ds := run(t, c, tick, 12*5, func(i int, at time.Time) Signals {
			a := good("sh-a", at).p99(0.5, at)
			off := at.Sub(t0)
			if off >= 100*time.Second && off < 150*time.Second {
				a = a.absent()
			}
			return signals(at, a, good("sh-b", at), good("bj-a", at))
		})
		evs := eventsOf(ds, "breaker", "sh-a")
		if len(evs) != 1 || !evs[0].At.Equal(t0.Add(150*time.Second)) {
			t.Fatalf("want the trip at 2m30s (no trip on absence at 2m), got %+v", evs)
		}
	})
	t.Run("A bad run interrupted by a gap longer than staleAfter starts over.", func(t *testing.T) {
		c := newCore(t, testSpec(t, three, nil))
		ds := run(t, c, tick, 12*8, func(i int, at time.Time) Signals {
			a := good("sh-a", at).p99(0.5, at)
			off := at.Sub(t0)
			if off >= 100*time.Second && off < 200*time.Second {
				a = a.absent()
			}
			return signals(at, a, good("sh-b", at), good("bj-a", at))
		})
		evs := eventsOf(ds, "breaker", "sh-a")
		if len(evs) != 1 || !evs[0].At.Equal(t0.Add(200*time.Second+2*time.Minute)) {
			t.Fatalf("want the trip 2m after the data came back (5m20s), got %+v", evs)
		}
	})
	t.Run("Samples older than staleAfter count as absent and never trip.", func(t *testing.T) {
		c := newCore(t, testSpec(t, three, nil))
		ds := run(t, c, tick, 12*6, func(i int, at time.Time) Signals {
			old := at.Add(-2 * time.Minute)
			a := good("sh-a", at)
			a.LatencyP99 = Val(0.9, old)
			return signals(at, a, good("sh-b", at), good("bj-a", at))
		})
		if evs := eventsOf(ds, "breaker", ""); len(evs) != 0 {
			t.Fatalf("old samples tripped a breaker: %+v", evs)
		}
		if stale := eventsOf(ds, "stale", "sh-a"); len(stale) != 1 || !strings.Contains(stale[0].Reason, "no fresh latency_p99 for") {
			t.Fatalf("stale events %+v", stale)
		}
	})
	t.Run("An open region with no data stays open past its hold.", func(t *testing.T) {
		c := newCore(t, testSpec(t, three, nil))
		ds := run(t, c, tick, 12*12, func(i int, at time.Time) Signals {
			a := good("sh-a", at).p99(0.5, at)
			if at.Sub(t0) > 2*time.Minute {
				a = a.absent()
			}
			return signals(at, a, good("sh-b", at), good("bj-a", at))
		})
		if st := stateAt(ds[len(ds)-1], "sh-a"); st != Open {
			t.Fatalf("sh-a is %s after 10 minutes without data, want it held open", st)
		}
	})
	t.Run("A read that returns nothing at all holds every region.", func(t *testing.T) {
		c := newCore(t, testSpec(t, three, nil))
		ds := run(t, c, tick, 12*5, func(i int, at time.Time) Signals {
			if i < 12 {
				return signals(at, good("sh-a", at), good("sh-b", at), good("bj-a", at))
			}
			return Signals{At: at}
		})
		if evs := eventsOf(ds, "breaker", ""); len(evs) != 0 {
			t.Fatalf("breaker events on empty reads: %+v", evs)
		}
		if stale := eventsOf(ds, "stale", ""); len(stale) != 3 {
			t.Fatalf("want one stale event per region, got %+v", stale)
		}
	})
}

func TestDryRunDecidesAndReportsButPushesEveryRegionClosed(t *testing.T) {
	s := testSpec(t, three, func(s *spec.Spec) { s.Breaker.DryRun = true })
	c := newCore(t, s)
	ds := run(t, c, tick, 12*3, func(i int, at time.Time) Signals {
		return signals(at, good("sh-a", at).p99(0.5, at), good("sh-b", at), good("bj-a", at))
	})
	last := ds[len(ds)-1]
	rd, _ := last.Region("sh-a")
	if !last.DryRun || rd.Breaker != Open || rd.Weight != 0 {
		t.Fatalf("dry-run must still decide: %+v", rd)
	}
	if evs := eventsOf(ds, "breaker", "sh-a"); len(evs) != 1 || evs[0].To != "open" {
		t.Fatalf("dry-run must still report: %+v", evs)
	}
	for name, e := range last.Table.Regions {
		r, _ := last.Region(name)
		if e.Breaker != Closed || e.Weight != r.ComputedWeight || e.Weight < s.Routing.Weights.Min {
			t.Fatalf("dry-run pushed %s as %+v, want closed at its computed weight %g", name, e, r.ComputedWeight)
		}
	}
}

func TestEventIDsAreUniqueAndTheSameWhenTheSameSignalsAreReplayed(t *testing.T) {
	scenario := func(i int, at time.Time) Signals {
		a := good("sh-a", at)
		off := at.Sub(t0)
		if off < 2*time.Minute || (off > 8*time.Minute && off < 11*time.Minute) {
			a.p99(0.5, at)
		}
		b := good("sh-b", at)
		if off > 3*time.Minute && off < 6*time.Minute {
			b = b.absent()
		}
		return signals(at, a, b, good("bj-a", at))
	}
	s := testSpec(t, three, nil)
	first := run(t, newCore(t, s), tick, 12*20, scenario)
	second := run(t, newCore(t, s), tick, 12*20, scenario)
	seen := map[string]bool{}
	n := 0
	for i := range first {
		if fmt.Sprintf("%+v", first[i]) != fmt.Sprintf("%+v", second[i]) {
			t.Fatalf("decisions differ at %s:\n%+v\n%+v", first[i].At.Sub(t0), first[i], second[i])
		}
		for _, ev := range first[i].Events {
			n++
			if seen[ev.ID] {
				t.Fatalf("event id %s repeats: %+v", ev.ID, ev)
			}
			seen[ev.ID] = true
		}
	}
	if n < 8 {
		t.Fatalf("the scenario should give trips, ramps and staleness; got %d events", n)
	}
}
