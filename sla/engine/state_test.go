package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// tripSHA steps a core until sh-a's breaker (P99 512 ms) is open, and
// returns the time of the next tick.
func tripSHA(t *testing.T, c *Core) time.Time {
	t.Helper()
	var at time.Time
	for i := 0; ; i++ {
		at = t0.Add(time.Duration(i) * tick)
		d := c.Step(at, healthyScenario("sh-a", 0.512)(at))
		if stateAt(d, "sh-a") == Open {
			return at.Add(tick)
		}
		if i > 100 {
			t.Fatal("sh-a never opened")
		}
	}
}

// A restarted core restored from a snapshot keeps the broken region open,
// weight 0, from its very first step even though the region now looks
// healthy, and lets it back only through the usual recover-for and ramp;
// a core started without the snapshot sends it traffic at once.
func TestARestoredCoreKeepsABrokenRegionOpenUntilItShowsItRecovered(t *testing.T) {
	s := testSpec(t, three, nil)
	old := newCore(t, s)
	restart := tripSHA(t, old)
	snap := old.Snapshot(restart)
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}

	fresh := newCore(t, s)
	if d := fresh.Step(restart, healthyScenario("", 0)(restart)); stateAt(d, "sh-a") != Closed || d.Table.Regions["sh-a"].Weight == 0 {
		t.Fatalf("without the snapshot sh-a starts closed with traffic: %+v", d.Table.Regions["sh-a"])
	}

	c := newCore(t, s)
	notes, err := c.Restore(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "sh-a: open since") {
		t.Fatalf("notes %q; want one line saying sh-a is open", notes)
	}
	recoverFor := spec.D(s.Breaker.Recover.For)
	var ds []Decision
	for i := 0; i < 60; i++ {
		at := restart.Add(time.Duration(i) * tick)
		ds = append(ds, c.Step(at, healthyScenario("", 0)(at)))
	}
	first := ds[0]
	if stateAt(first, "sh-a") != Open || first.Table.Regions["sh-a"].Weight != 0 || first.Table.Regions["sh-a"].Breaker != Open {
		t.Fatalf("first step after the restore: sh-a %s, table %+v; want open with weight 0", stateAt(first, "sh-a"), first.Table.Regions["sh-a"])
	}
	if rd, _ := first.Region("sh-a"); rd.Since != snap.Regions[0].Since || !strings.Contains(rd.Reason, "p99 0.512s") {
		t.Fatalf("restored since %v reason %q; want the original %v and its reason", rd.Since, rd.Reason, snap.Regions[0].Since)
	}
	if len(first.Events) != 0 {
		t.Fatalf("a restore is not a state change: events %+v", first.Events)
	}
	// Open until recover.for of good signals after the restart, then the ramp.
	for _, d := range ds {
		if d.At.Sub(restart) < recoverFor && stateAt(d, "sh-a") != Open {
			t.Fatalf("sh-a %s at %v after the restart, before recover.for (%v) held", stateAt(d, "sh-a"), d.At.Sub(restart), recoverFor)
		}
	}
	evs := eventsOf(ds, "breaker", "sh-a")
	if len(evs) == 0 || evs[0].From != "open" || evs[0].To != "recovering" {
		t.Fatalf("after the restore sh-a must recover through the ramp: %+v", evs)
	}
}

func TestRestoreSkipsWhatItCannotUseAndSaysWhy(t *testing.T) {
	s := testSpec(t, three, nil) // maxBrokenFraction 0.5 of 3: one region
	at := t0.Add(-time.Minute)
	st := State{Format: StateFormat, SavedAt: t0, Regions: []BreakerSnapshot{
		{Region: "sh-b", State: Open, Since: at.Add(time.Second), Reason: "later", HoldUntil: t0.Add(time.Minute)},
		{Region: "sh-a", State: Open, Since: at, Reason: "first", HoldUntil: t0.Add(time.Minute)},
		{Region: "mars", State: Open, Since: at},
		{Region: "bj-a", State: "half-open", Since: at},
	}}
	c := newCore(t, s)
	notes, err := c.Restore(st)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(notes, "\n")
	for _, want := range []string{"sh-a: open since", "sh-b: was open, but restoring it would break more than breaker.maxBrokenFraction", "mars: not a region of the spec", `bj-a: unknown breaker state "half-open"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("notes lack %q:\n%s", want, joined)
		}
	}
	d := c.Step(t0, healthyScenario("", 0)(t0))
	if stateAt(d, "sh-a") != Open || stateAt(d, "sh-b") != Closed || stateAt(d, "bj-a") != Closed {
		t.Fatalf("sh-a %s sh-b %s bj-a %s; want the oldest broken (sh-a) open, the rest closed", stateAt(d, "sh-a"), stateAt(d, "sh-b"), stateAt(d, "bj-a"))
	}

	if _, err := newCore(t, s).Restore(State{Format: 99}); err == nil || !strings.Contains(err.Error(), "format 99") {
		t.Errorf("another format: %v", err)
	}
	if _, err := c.Restore(st); err == nil || !strings.Contains(err.Error(), "before the first step") {
		t.Errorf("a restore after a step: %v", err)
	}
	// A recovering breaker whose step the spec no longer has starts the ramp again.
	c2 := newCore(t, s)
	notes, _ = c2.Restore(State{Format: StateFormat, Regions: []BreakerSnapshot{{Region: "sh-a", State: Recovering, Since: at, Step: 9, StepSince: at}}})
	if !strings.Contains(strings.Join(notes, "\n"), "ramp step 9") {
		t.Errorf("notes %q", notes)
	}
	if rd, _ := c2.Step(t0, healthyScenario("", 0)(t0)).Region("sh-a"); rd.Breaker != Recovering || rd.RampPercent != s.Breaker.Ramp.Steps[0] {
		t.Errorf("sh-a %s at %v%%; want recovering at the first step", rd.Breaker, rd.RampPercent)
	}
}

// The engine writes its breakers to StateFile when one changes, and a new
// engine on the same file starts with them; a file too old, or not a state
// file, is logged and ignored, and the engine starts closed.
func TestTheEngineKeepsItsBreakersAcrossARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "engine-state.json")
	h := newHarness(t, nil)
	h.read.set(healthyScenario("sh-a", 0.512), nil)
	h.e.cfg.StateFile = path // as New would have it: the harness builds without one
	var tripped bool
	for range 60 {
		d, _ := h.ticks(t, 1)
		if stateAt(d, "sh-a") == Open {
			tripped = true
			break
		}
	}
	if !tripped {
		t.Fatal("sh-a never opened")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no state file after a trip: %v", err)
	}
	if !strings.Contains(string(b), `"state": "open"`) {
		t.Fatalf("state file:\n%s", b)
	}
	info, _ := os.Stat(path)
	h.ticks(t, 3) // nothing changes: the file is not rewritten
	if info2, _ := os.Stat(path); !info2.ModTime().Equal(info.ModTime()) {
		t.Error("the state file was rewritten on ticks that changed no breaker")
	}

	restart := func(maxAge time.Duration) (*Engine, *strings.Builder) {
		var logs strings.Builder
		e, err := New(Config{Spec: testSpec(t, three, nil), Reader: &fakeReader{scenario: healthyScenario("", 0)}, Now: h.clock.Now,
			StateFile: path, StateMaxAge: maxAge, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return e, &logs
	}
	e2, logs := restart(0)
	if r := e2.Restored(); len(r) != 1 || !strings.HasPrefix(r[0], "sh-a: open") {
		t.Fatalf("restored %q; logs:\n%s", r, logs)
	}
	if d, err := e2.Tick(context.Background()); err != nil || stateAt(d, "sh-a") != Open || d.Table.Regions["sh-a"].Weight != 0 {
		t.Fatalf("restarted engine's first tick: sh-a %s, weight %v, %v", stateAt(d, "sh-a"), d.Table.Regions["sh-a"].Weight, err)
	}

	h.clock.Advance(2 * time.Hour)
	e3, logs := restart(0)
	if d, _ := e3.Tick(context.Background()); stateAt(d, "sh-a") != Closed || !strings.Contains(logs.String(), "too old to trust") {
		t.Fatalf("a 2h-old file under the 1h default: sh-a %s; logs:\n%s", stateAt(d, "sh-a"), logs)
	}
	// e3's tick rewrote the file (sh-a closed); put the open one back and
	// allow any age.
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if e4, _ := restart(-1); len(e4.Restored()) != 1 {
		t.Fatalf("StateMaxAge < 0 restores any age: %q", e4.Restored())
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	e5, logs := restart(0)
	if d, err := e5.Tick(context.Background()); err != nil || stateAt(d, "sh-a") != Closed || !strings.Contains(logs.String(), "unusable") {
		t.Fatalf("a corrupt file: sh-a %s, %v; logs:\n%s", stateAt(d, "sh-a"), err, logs)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"format": 1`) {
		t.Fatalf("the first tick replaces a corrupt file with the state:\n%s", b)
	}
}
