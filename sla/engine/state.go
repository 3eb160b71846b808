package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/renameio/v2"
)

// StateFormat is the version of the State file layout.
const StateFormat = 1

// DefaultStateMaxAge is the default Config.StateMaxAge.
const DefaultStateMaxAge = time.Hour

// State is what the engine keeps across restarts: every region's breaker,
// so that a restarted engine does not send traffic back to a region it had
// broken (and that has not yet shown it recovered) the moment it starts.
// Inputs are not kept: they are read again at the first tick.
type State struct {
	Format  int               `json:"format"`
	SavedAt time.Time         `json:"saved_at"`
	Regions []BreakerSnapshot `json:"regions"`
}

// BreakerSnapshot is one region's breaker as the Core holds it.
type BreakerSnapshot struct {
	Region string       `json:"region"`
	State  BreakerState `json:"state"`
	Since  time.Time    `json:"since"`
	Reason string       `json:"reason"`
	// HoldUntil: an open breaker is held open until then.
	HoldUntil time.Time `json:"hold_until,omitzero"`
	// Repeats counts the trips in a row (the hold grows with them);
	// Tripped and ClosedAt say whether and when it last closed after one.
	Repeats  int       `json:"repeats"`
	Tripped  bool      `json:"tripped"`
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// Step is the ramp step of a recovering breaker, StepSince when it began.
	Step      int       `json:"step"`
	StepSince time.Time `json:"step_since,omitzero"`
	// Blackout: the region's latency is not trusted for its weight before.
	Blackout time.Time `json:"blackout,omitzero"`
}

// Snapshot returns every region's breaker, in spec order.
func (c *Core) Snapshot(now time.Time) State {
	st := State{Format: StateFormat, SavedAt: now.UTC(), Regions: make([]BreakerSnapshot, len(c.regions))}
	for i, r := range c.regions {
		st.Regions[i] = BreakerSnapshot{Region: r.name, State: r.state, Since: r.since.UTC(), Reason: r.reason,
			HoldUntil: utc(r.holdUntil), Repeats: r.repeats, Tripped: r.tripped, ClosedAt: utc(r.closedAt),
			Step: r.step, StepSince: utc(r.stepSince), Blackout: utc(r.blackout)}
	}
	return st
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// Restore sets the breakers from a snapshot before the first Step. A region
// not in the spec is skipped, and so is one whose broken breaker would break
// more regions than breaker.maxBrokenFraction allows or leave none serving
// (the spec may have changed since): it starts closed. The oldest broken
// breakers are restored first. Restore returns what it did, region by
// region, for the log. The rules' timers are not restored: an open region
// must show it recovered for the whole of breaker.recover.for after the
// restart, a conservative start.
func (c *Core) Restore(st State) ([]string, error) {
	if c.started {
		return nil, errors.New("engine: the state can only be restored before the first step")
	}
	if st.Format != StateFormat {
		return nil, fmt.Errorf("engine: state format %d; this engine reads format %d", st.Format, StateFormat)
	}
	snaps := slices.Clone(st.Regions)
	// Broken ones oldest first, so the budget keeps the longest-standing.
	slices.SortStableFunc(snaps, func(a, b BreakerSnapshot) int {
		if (a.State == Closed) != (b.State == Closed) {
			if a.State == Closed {
				return 1
			}
			return -1
		}
		return a.Since.Compare(b.Since)
	})
	var notes []string
	steps := c.s.Breaker.Ramp.Steps
	broken, seen := 0, map[string]bool{}
	allowed := c.allowedBroken()
	for _, sn := range snaps {
		idx, ok := c.byName[sn.Region]
		if !ok {
			notes = append(notes, fmt.Sprintf("%s: not a region of the spec; skipped", sn.Region))
			continue
		}
		if seen[sn.Region] {
			notes = append(notes, fmt.Sprintf("%s: given twice; the first kept", sn.Region))
			continue
		}
		seen[sn.Region] = true
		switch sn.State {
		case Closed, Open, Recovering:
		default:
			notes = append(notes, fmt.Sprintf("%s: unknown breaker state %q; starts closed", sn.Region, sn.State))
			continue
		}
		if sn.State == Recovering && (sn.Step < 0 || sn.Step >= len(steps)) {
			notes = append(notes, fmt.Sprintf("%s: ramp step %d is not one of the spec's %d steps; starts at the first", sn.Region, sn.Step, len(steps)))
			sn.Step = 0
		}
		isBroken := sn.State == Open || (sn.State == Recovering && steps[sn.Step] < 100)
		if isBroken && (broken+1 > allowed || len(c.regions)-(broken+1) < 1) {
			notes = append(notes, fmt.Sprintf("%s: was %s, but restoring it would break more than breaker.maxBrokenFraction allows or leave no region serving; starts closed", sn.Region, sn.State))
			continue
		}
		if isBroken {
			broken++
		}
		r := c.regions[idx]
		r.state, r.since, r.reason = sn.State, sn.Since, sn.Reason
		r.holdUntil, r.repeats, r.tripped, r.closedAt = sn.HoldUntil, sn.Repeats, sn.Tripped, sn.ClosedAt
		r.step, r.stepSince, r.blackout = sn.Step, sn.StepSince, sn.Blackout
		if sn.State != Recovering {
			r.step, r.stepSince = 0, time.Time{}
		}
		if sn.State != Closed {
			notes = append(notes, fmt.Sprintf("%s: %s since %s (%s)", sn.Region, sn.State, sn.Since.Format(time.RFC3339), sn.Reason))
		}
	}
	return notes, nil
}

// loadState reads the engine's state file; a missing file is no state.
func loadState(path string) (State, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, err
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return State{}, false, fmt.Errorf("%s is not an engine state file: %w", path, err)
	}
	return st, true, nil
}

// saveState writes the state file atomically (a reader or a crash sees the
// old file or the new one, never a mix).
func saveState(path string, st State) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return renameio.WriteFile(path, append(b, '\n'), 0o644)
}
