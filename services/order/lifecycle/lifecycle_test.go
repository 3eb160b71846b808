package lifecycle

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestPlan(t *testing.T) {
	tests := map[string]struct {
		from, to State
		want     []State
		wantErr  bool
	}{
		"A requested ride is matched in one step.":                  {Requested, Matched, []State{Matched}, false},
		"A matched ride starts in one step.":                        {Matched, InProgress, []State{InProgress}, false},
		"Completing a matched ride steps through in_progress.":      {Matched, Completed, []State{InProgress, Completed}, false},
		"A completed ride is paid in one step.":                     {Completed, Paid, []State{Paid}, false},
		"A completed ride can fail payment.":                        {Completed, PaymentFailed, []State{PaymentFailed}, false},
		"A requested ride can be cancelled.":                        {Requested, Cancelled, []State{Cancelled}, false},
		"A riding ride can be cancelled.":                           {InProgress, Cancelled, []State{Cancelled}, false},
		"Cancelling a cancelled ride is a no-op.":                   {Cancelled, Cancelled, nil, false},
		"Completing a completed ride is a no-op.":                   {Completed, Completed, nil, false},
		"Completing a paid ride is a no-op: it already happened.":   {Paid, Completed, nil, false},
		"Starting a paid ride is a no-op: it already happened.":     {Paid, InProgress, nil, false},
		"Completing a ride whose payment failed is a no-op.":        {PaymentFailed, Completed, nil, false},
		"Completing a requested ride is impossible: no driver.":     {Requested, Completed, nil, true},
		"Starting a requested ride is impossible.":                  {Requested, InProgress, nil, true},
		"Cancelling a completed ride is impossible.":                {Completed, Cancelled, nil, true},
		"Cancelling a paid ride is impossible.":                     {Paid, Cancelled, nil, true},
		"Completing a cancelled ride is impossible.":                {Cancelled, Completed, nil, true},
		"Matching a cancelled ride is impossible.":                  {Cancelled, Matched, nil, true},
		"A paid ride cannot fail payment.":                          {Paid, PaymentFailed, nil, true},
		"A failed payment does not turn into paid by a transition.": {PaymentFailed, Paid, nil, true},
		"Paying an in-progress ride is impossible.":                 {InProgress, Paid, nil, true},
		"Nothing goes back to requested.":                           {Matched, Requested, nil, true},
		"An unknown state is refused.":                              {State("flying"), Completed, nil, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Plan(tc.from, tc.to)
			if tc.wantErr {
				var ie *ImpossibleError
				if !errors.As(err, &ie) || ie.From != tc.from || ie.To != tc.to {
					t.Fatalf("Plan(%s, %s) = %v, %v; want an ImpossibleError naming both", tc.from, tc.to, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Plan(%s, %s) = %v, %v; want %v", tc.from, tc.to, got, err, tc.want)
			}
		})
	}
}

func TestTerminalStatesHaveNoEdgesOut(t *testing.T) {
	for _, e := range Edges() {
		if e.From.Terminal() {
			t.Errorf("edge %s → %s leaves a terminal state", e.From, e.To)
		}
		if !e.From.Valid() || !e.To.Valid() {
			t.Errorf("edge %s → %s names an unknown state", e.From, e.To)
		}
	}
}

// Any sequence of requests, applied as planned, only walks allowed edges,
// and asking again for a target that was reached changes nothing.
func TestPlansWalkOnlyAllowedEdges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		targets := rapid.SliceOfN(rapid.SampledFrom(States()), 1, 12).Draw(t, "targets")
		cur := Requested
		for _, to := range targets {
			steps, err := Plan(cur, to)
			if err != nil {
				if !slices.Contains(States(), to) {
					t.Fatalf("unexpected target %s", to)
				}
				continue
			}
			for _, st := range steps {
				if !Allowed(cur, st) {
					t.Fatalf("plan %s → %s stepped %s → %s, which is not an edge", cur, to, cur, st)
				}
				cur = st
			}
			if len(steps) > 0 && cur != to {
				t.Fatalf("plan to %s ended in %s", to, cur)
			}
			again, err := Plan(cur, to)
			if err != nil || len(again) != 0 {
				t.Fatalf("asking again for %s from %s gave %v, %v; want a no-op", to, cur, again, err)
			}
		}
	})
}
