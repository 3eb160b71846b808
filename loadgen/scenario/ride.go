package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/loadgen"
)

// Headers the gateway and the order service read.
const (
	HeaderRiderID        = "X-Rider-ID"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Operations of the ride scenario.
const (
	OpCreateRide   = "create_ride"
	OpGetRide      = "get_ride"
	OpStartRide    = "start_ride"
	OpCompleteRide = "complete_ride"
	OpCancelRide   = "cancel_ride"
)

// Events of the ride scenario (outcomes that are not errors).
const (
	EventRidePaid          = "ride_paid"
	EventRidePaymentFailed = "ride_payment_failed"
	EventRideUnmatched     = "ride_unmatched"
	EventRideStaleRead     = "ride_stale_read"
	EventRideOtherState    = "ride_other_state"
)

// Ride is the ride scenario: a rider's whole ride over HTTP through a
// gateway, as the order API's lifecycle has it:
//
//  1. create_ride: POST /v1/rides with a fresh Idempotency-Key (201; the
//     answer is usually already matched, the service waits MatchWait);
//  2. get_ride: while the ride is still requested, GET it up to MatchPolls
//     times, MatchPoll apart; still unmatched, it is cancelled
//     (cancel_ride) and counted as the event ride_unmatched;
//  3. start_ride: POST /v1/rides/{id}/start (the pick-up);
//  4. complete_ride: POST /v1/rides/{id}/complete, which charges the rider;
//     the answer is paid (event ride_paid) or payment_failed (event
//     ride_payment_failed, compensated by a refund).
//
// Every request carries X-Rider-ID, so the gateway computes the rider's
// unit. A step that gets 404 for the ride just created, or 409 for a
// transition its last state allows (the gateway sent it to a region that has
// not replicated the ride, or its last change, yet), is retried
// StaleRetries times within the step, counting ride_stale_read each time;
// its latency includes the retries.
type Ride struct {
	o Options
}

// NewRide returns the ride scenario.
func NewRide(o Options) *Ride {
	o.defaults()
	o.Target = strings.TrimSuffix(o.Target, "/")
	return &Ride{o: o}
}

// Name is "ride".
func (r *Ride) Name() string { return "ride" }

// Operations lists the ride scenario's steps.
func (r *Ride) Operations() []string {
	return []string{OpCreateRide, OpGetRide, OpStartRide, OpCompleteRide, OpCancelRide}
}

type rideBody struct {
	RiderID string `json:"rider_id"`
	Pickup  LatLng `json:"pickup"`
	Dropoff LatLng `json:"dropoff"`
}

type rideAnswer struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// Run rides once.
func (r *Ride) Run(ctx context.Context, it *loadgen.Iteration) error {
	rider := fmt.Sprintf("lg-%s-r%d", r.o.RunID, it.N)
	key := fmt.Sprintf("lg-%s-k%d", r.o.RunID, it.N)
	body, err := json.Marshal(rideBody{RiderID: rider, Pickup: near(r.o.Center, r.o.Spread), Dropoff: near(r.o.Center, r.o.Spread)})
	if err != nil {
		return err
	}
	var ride rideAnswer
	if err := it.Step(ctx, OpCreateRide, func(ctx context.Context) error {
		return r.call(ctx, http.MethodPost, "/v1/rides", body, rider, key, &ride, http.StatusCreated, http.StatusOK)
	}); err != nil {
		return err
	}
	if ride.ID == "" {
		return nil // counted as bad_response by call
	}
	path := "/v1/rides/" + ride.ID
	for i := 0; ride.State == "requested" && i < r.o.MatchPolls; i++ {
		if err := it.Pause(ctx, r.o.MatchPoll); err != nil {
			return err
		}
		if err := it.Step(ctx, OpGetRide, func(ctx context.Context) error {
			return r.fresh(ctx, it, http.MethodGet, path, rider, &ride)
		}); err != nil {
			return err
		}
	}
	switch ride.State {
	case "matched":
	case "requested":
		it.Event(EventRideUnmatched)
		return it.Step(ctx, OpCancelRide, func(ctx context.Context) error {
			return r.fresh(ctx, it, http.MethodPost, path+"/cancel", rider, &ride)
		})
	default:
		// Dispatch gave up, or another actor moved it: not this flow's error.
		it.Event(EventRideOtherState)
		return nil
	}
	if err := it.Step(ctx, OpStartRide, func(ctx context.Context) error {
		return r.fresh(ctx, it, http.MethodPost, path+"/start", rider, &ride)
	}); err != nil {
		return err
	}
	if err := it.Step(ctx, OpCompleteRide, func(ctx context.Context) error {
		if err := r.fresh(ctx, it, http.MethodPost, path+"/complete", rider, &ride); err != nil {
			return err
		}
		switch ride.State {
		case "paid", "payment_failed":
			return nil
		}
		return loadgen.Errorf(loadgen.KindBadResponse, "complete answered state %q, want paid or payment_failed", ride.State)
	}); err != nil {
		return err
	}
	if ride.State == "paid" {
		it.Event(EventRidePaid)
	} else {
		it.Event(EventRidePaymentFailed)
	}
	return nil
}

// fresh calls an existing ride's endpoint, retrying a 404 or 409 (a region
// that has not replicated the ride, or its last transition, yet)
// StaleRetries times.
func (r *Ride) fresh(ctx context.Context, it *loadgen.Iteration, method, path, rider string, out *rideAnswer) error {
	for try := 0; ; try++ {
		err := r.call(ctx, method, path, nil, rider, "", out, http.StatusOK)
		var le *loadgen.Error
		if err == nil || try >= r.o.StaleRetries || !errors.As(err, &le) || (le.Status != http.StatusNotFound && le.Status != http.StatusConflict) {
			return err
		}
		it.Event(EventRideStaleRead)
		t := time.NewTimer(r.o.StalePause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// call makes one request and decodes the ride from a wanted status.
func (r *Ride) call(ctx context.Context, method, path string, body []byte, rider, key string, out *rideAnswer, want ...int) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.o.Target+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(HeaderRiderID, rider)
	if key != "" {
		req.Header.Set(HeaderIdempotencyKey, key)
	}
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	ok := false
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		return loadgen.StatusError(resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var a rideAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.ID == "" || a.State == "" {
		return loadgen.Errorf(loadgen.KindBadResponse, "%s %s answered %d with %.200q, not a ride", method, path, resp.StatusCode, b)
	}
	*out = a
	return nil
}
