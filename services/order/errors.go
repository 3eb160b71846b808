package order

import (
	"errors"
	"fmt"

	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
)

// ErrNotFound is returned for a ride that does not exist (HTTP 404).
var ErrNotFound = errors.New("ride not found")

// Reasons a request is refused with 503; they appear in the JSON answer.
const (
	ReasonPricing    = "pricing_unavailable"
	ReasonIDs        = "ids_unavailable"
	ReasonStore      = "store_unavailable"
	ReasonSaturated  = "dispatch_saturated"
	ReasonBusy       = "busy"
	ReasonNotRunning = "not_running"
)

// UnavailableError is a server-side refusal (HTTP 503): a dependency failed
// or a bound was reached. Nothing was written unless the operation says so.
type UnavailableError struct {
	Reason string
	Err    error
}

func (e *UnavailableError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

func unavailable(reason string, format string, args ...any) error {
	return &UnavailableError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

var errBusy = unavailable(ReasonBusy, "too many ride transitions in flight; retry shortly")

// TransitionError is an impossible transition (HTTP 409).
type TransitionError struct {
	RideID   int64
	From, To lifecycle.State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("ride %d cannot go from %s to %s", e.RideID, e.From, e.To)
}

// KeyReusedError is an Idempotency-Key sent again with a different request
// (HTTP 422).
type KeyReusedError struct{ Key string }

func (e *KeyReusedError) Error() string {
	return fmt.Sprintf("Idempotency-Key %q was already used for a different ride request; use a new key for a new ride", e.Key)
}

// InputError is bad input (HTTP 400) naming the field at fault.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }
