// Package lifecycle is the ride state machine, as pure data and functions:
// which states exist, which transitions are allowed, and what a request to
// move a ride to a state means from the state it is in (apply some steps,
// nothing because it already happened, or refuse). It has no clock, no I/O
// and no concurrency; the order service applies its plans one ride at a time.
//
//	requested ──▶ matched ──▶ in_progress ──▶ completed ──▶ paid
//	    │            │             │              └──────▶ payment_failed
//	    └────────────┴─────────────┴──▶ cancelled
package lifecycle

import "fmt"

// State is the lifecycle state of a ride.
type State string

// The states of a ride. Paid, PaymentFailed and Cancelled are terminal.
const (
	// Requested: the ride is accepted and priced; dispatch looks for a driver.
	Requested State = "requested"
	// Matched: a driver is assigned and on the way.
	Matched State = "matched"
	// InProgress: the rider is in the car.
	InProgress State = "in_progress"
	// Completed: the rider was dropped off; payment is due.
	Completed State = "completed"
	// Paid: the fare was charged.
	Paid State = "paid"
	// PaymentFailed: charging failed after every retry; the ride was
	// compensated (any partial charge refunded) and needs follow-up.
	PaymentFailed State = "payment_failed"
	// Cancelled: the rider cancelled, or dispatch found no driver in time.
	Cancelled State = "cancelled"
)

// States lists every state in lifecycle order.
func States() []State {
	return []State{Requested, Matched, InProgress, Completed, Paid, PaymentFailed, Cancelled}
}

// Edge is one allowed single-step transition.
type Edge struct{ From, To State }

// Edges lists every allowed single-step transition.
func Edges() []Edge {
	return []Edge{
		{Requested, Matched}, {Matched, InProgress}, {InProgress, Completed},
		{Completed, Paid}, {Completed, PaymentFailed},
		{Requested, Cancelled}, {Matched, Cancelled}, {InProgress, Cancelled},
	}
}

// Allowed reports whether from → to is a single allowed step.
func Allowed(from, to State) bool {
	for _, e := range Edges() {
		if e.From == from && e.To == to {
			return true
		}
	}
	return false
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { return rank(s) >= 0 || s == Cancelled }

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool { return s == Paid || s == PaymentFailed || s == Cancelled }

// rank orders the main path: requested 0 … paid 4. payment_failed sits
// beside paid (it also follows completed). cancelled and unknown states
// have no rank (-1).
func rank(s State) int {
	switch s {
	case Requested:
		return 0
	case Matched:
		return 1
	case InProgress:
		return 2
	case Completed:
		return 3
	case Paid, PaymentFailed:
		return 4
	}
	return -1
}

// ImpossibleError says a ride cannot move from one state to another.
type ImpossibleError struct{ From, To State }

func (e *ImpossibleError) Error() string {
	return fmt.Sprintf("a ride cannot go from %s to %s", e.From, e.To)
}

// Plan says how to bring a ride that is in from to the state to:
//   - the steps to apply, in order, each an allowed Edge;
//   - no steps and no error when the ride is already there or already went
//     through to on the main path (asking again for a transition that
//     happened is not an error: complete on a paid ride is a no-op);
//   - an *ImpossibleError otherwise (cancel a completed ride, complete a
//     ride nobody was matched to, anything but cancel on a cancelled ride).
//
// One shortcut is allowed: complete on a matched ride steps through
// in_progress (the pick-up was not reported separately).
func Plan(from, to State) ([]State, error) {
	if !from.Valid() || !to.Valid() {
		return nil, &ImpossibleError{from, to}
	}
	if from == to {
		return nil, nil
	}
	switch {
	case to == Cancelled:
		if Allowed(from, Cancelled) {
			return []State{Cancelled}, nil
		}
	case from == Cancelled, to == Requested:
		// Nothing leaves cancelled; nothing goes back to requested.
	case to == PaymentFailed:
		if from == Completed {
			return []State{PaymentFailed}, nil
		}
	case from == PaymentFailed:
		if rank(to) < rank(Paid) {
			return nil, nil // it went through to on its way here
		}
	case rank(to) < rank(from):
		return nil, nil
	case Allowed(from, to):
		return []State{to}, nil
	case from == Matched && to == Completed:
		return []State{InProgress, Completed}, nil
	}
	return nil, &ImpossibleError{from, to}
}
