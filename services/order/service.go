package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
)

// Deps are the services the order service calls. IDs, Quoter, Drivers and
// Payer are required; the others have in-process defaults.
type Deps struct {
	IDs     IDs
	Quoter  Quoter
	Drivers DriverIndex
	Payer   Payer
	// Store keeps the rides; default NewMemStore(). When it also
	// implements KeyIndex, idempotent retries are found across restarts
	// and regions.
	Store Store
	// Reader serves GET /v1/rides/{id} (the ride-state cache, which loads
	// from the store on a miss); default Store.
	Reader RideGetter
	// Cache is invalidated after every write of a ride; default none.
	Cache Invalidator
	// Claims holds drivers for rides; default a MemClaims.
	Claims Claimer
}

// Service is the order service of one region: it creates rides, runs their
// lifecycle (one actor per active ride), dispatches drivers with a bounded
// pool, and charges on completion. Handler serves its HTTP API; Run runs
// its dispatch workers.
type Service struct {
	cfg     Config
	deps    Deps
	now     func() time.Time
	tel     *instruments
	actors  *actors
	idem    *idempotency
	disp    *dispatcher
	running atomic.Bool
	handler handler
}

// New builds a Service. It registers the service's metrics on
// cfg.Registerer and fails when a required dependency is missing or the
// configuration is inconsistent.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var missing []string
	if deps.IDs == nil {
		missing = append(missing, "IDs")
	}
	if deps.Quoter == nil {
		missing = append(missing, "Quoter")
	}
	if deps.Drivers == nil {
		missing = append(missing, "Drivers")
	}
	if deps.Payer == nil {
		missing = append(missing, "Payer")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("order service: missing dependencies %v", missing)
	}
	if deps.Store == nil {
		deps.Store = NewMemStore()
	}
	if deps.Reader == nil {
		deps.Reader = deps.Store
	}
	if deps.Cache == nil {
		deps.Cache = nopInvalidator{}
	}
	if deps.Claims == nil {
		deps.Claims = &MemClaims{}
	}
	tel, err := newInstruments(cfg)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, deps: deps, now: cfg.Now, tel: tel}
	if s.now == nil {
		s.now = time.Now
	}
	s.actors = newActors(cfg.MaxActors, cfg.MailboxSize, func(d float64) { tel.add(tel.activeActors, d) })
	s.idem = newIdempotency(cfg.IdempotencyTTL, cfg.IdempotencyMaxKeys)
	s.disp = newDispatcher(s)
	s.handler = newHandler(s)
	return s, nil
}

// Run runs the dispatch workers and the retry scheduler until ctx ends,
// then waits for them to stop. Rides still queued or waiting for a retry
// stay requested in the store (see docs/services/order.md).
func (s *Service) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("order service: Run called twice")
	}
	defer s.running.Store(false)
	g, ctx := errgroup.WithContext(ctx)
	for range s.cfg.Dispatch.Workers {
		g.Go(func() error { s.disp.work(ctx); return nil })
	}
	g.Go(func() error {
		t := time.NewTicker(s.cfg.Dispatch.Tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				s.disp.dispatchDue(s.now())
			}
		}
	})
	return g.Wait()
}

// CreateRequest asks for a ride.
type CreateRequest struct {
	RiderID         string
	Pickup, Dropoff LatLng
	// IdempotencyKey, when set, makes a repeat of the same request (even
	// a concurrent one) return the ride the first one created.
	IdempotencyKey string
}

// Create creates a ride: reserve a dispatch slot, quote, take an id, write
// the ride (state requested), queue it for dispatch and wait up to
// Dispatch.MatchWait for the first match. replayed is true when the ride
// was created earlier under the same Idempotency-Key. On error nothing was
// written.
func (s *Service) Create(ctx context.Context, req CreateRequest) (r Ride, replayed bool, err error) {
	if req.IdempotencyKey == "" {
		r, err = s.create(ctx, ctx, req)
		return r, false, err
	}
	key := keyOf(req.RiderID, req.IdempotencyKey)
	fp := fingerprint(req.RiderID, req.Pickup, req.Dropoff)
	e, leader := s.idem.begin(key, fp, s.now())
	if !leader {
		select {
		case <-e.done:
		case <-ctx.Done():
			return Ride{}, false, ctx.Err()
		}
		if e.fp != fp {
			return Ride{}, false, &KeyReusedError{Key: req.IdempotencyKey}
		}
		if e.err != nil {
			return Ride{}, false, e.err
		}
		return s.current(ctx, e.ride), true, nil
	}
	if ki, ok := s.deps.Store.(KeyIndex); ok {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		old, found, kerr := ki.RideByKey(sctx, req.RiderID, req.IdempotencyKey)
		cancel()
		switch {
		case kerr != nil:
			err = unavailable(ReasonStore, "looking up Idempotency-Key: %w", kerr)
		case found && fingerprint(old.RiderID, old.Pickup, old.Dropoff) != fp:
			err = &KeyReusedError{Key: req.IdempotencyKey}
		case found:
			s.idem.finish(key, e, old, nil, s.now())
			return old, true, nil
		}
		if err != nil {
			s.idem.finish(key, e, Ride{}, err, s.now())
			return Ride{}, false, err
		}
	}
	// The leader's work does not stop when its caller goes away: the
	// followers (a gateway's retry of a timed-out request, say) wait for
	// it. Each dependency call still bounds itself.
	r, err = s.create(context.WithoutCancel(ctx), ctx, req)
	s.idem.finish(key, e, r, err, s.now())
	return r, false, err
}

// current re-reads r from the store, falling back to r.
func (s *Service) current(ctx context.Context, r Ride) Ride {
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	if cur, ok, err := s.deps.Store.GetRide(sctx, r.ID); err == nil && ok {
		return cur
	}
	return r
}

// create does the work of Create; waitCtx bounds only the wait for the
// first match.
func (s *Service) create(ctx, waitCtx context.Context, req CreateRequest) (Ride, error) {
	if !s.disp.reserve() {
		s.tel.inc(s.tel.rejected)
		return Ride{}, unavailable(ReasonSaturated, "the dispatch queue is full (%d rides waiting); retry shortly", s.cfg.Dispatch.QueueSize)
	}
	enqueued := false
	defer func() {
		if !enqueued {
			s.disp.unreserve()
		}
	}()

	qctx, span := s.tel.span(ctx, "pricing.Quote", clientSpan)
	qctx, cancel := context.WithTimeout(qctx, s.cfg.QuoteTimeout)
	q, err := s.deps.Quoter.Quote(qctx, QuoteRequest{RiderID: req.RiderID, Pickup: req.Pickup, Dropoff: req.Dropoff})
	cancel()
	endSpan(span, err)
	if err != nil {
		return Ride{}, unavailable(ReasonPricing, "quoting the ride: %w", err)
	}
	id, err := s.deps.IDs.Next()
	if err != nil {
		return Ride{}, unavailable(ReasonIDs, "taking a ride id: %w", err)
	}
	now := s.now()
	r := Ride{
		ID: id, Region: s.cfg.Region, RiderID: req.RiderID, Pickup: req.Pickup, Dropoff: req.Dropoff,
		State: lifecycle.Requested, Price: Price{AmountMinor: q.PriceMinor, Currency: q.Currency, Surge: q.Surge},
		IdempotencyKey: req.IdempotencyKey, Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.put(ctx, r); err != nil {
		return Ride{}, err
	}
	s.deps.Cache.Invalidate(strconv.FormatInt(id, 10))
	s.tel.inc(s.tel.created)
	s.tel.logf(ctx, slog.LevelDebug, "ride created", "ride_id", id, "rider_id", req.RiderID)

	j := &job{rideID: id, pickup: r.Pickup, first: now, parent: trace.SpanContextFromContext(ctx)}
	wait := s.cfg.Dispatch.MatchWait
	var done chan Ride
	if wait > 0 {
		done = make(chan Ride, 1)
		j.done = done
	}
	s.disp.enqueue(j) // the job belongs to the dispatcher from here on
	enqueued = true
	if wait <= 0 {
		return r, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case m := <-done:
		if m.ID == r.ID { // else the attempt could not read the ride
			return m, nil
		}
		return r, nil
	case <-t.C:
		return r, nil
	case <-waitCtx.Done():
		return r, nil // the ride exists; the answer is what we know
	}
}

// put writes r with the store timeout, in a span.
func (s *Service) put(ctx context.Context, r Ride) error {
	ctx, span := s.tel.span(ctx, "store.PutRide", clientSpan)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	err := s.deps.Store.PutRide(ctx, r)
	cancel()
	endSpan(span, err)
	if err != nil {
		return unavailable(ReasonStore, "writing ride %d (%s): %w", r.ID, r.State, err)
	}
	return nil
}

// load reads ride id from the store (never the cache: transitions need the
// latest write).
func (s *Service) load(ctx context.Context, id int64) (Ride, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	r, ok, err := s.deps.Store.GetRide(ctx, id)
	cancel()
	if err != nil {
		return Ride{}, unavailable(ReasonStore, "reading ride %d: %w", id, err)
	}
	if !ok {
		return Ride{}, ErrNotFound
	}
	return r, nil
}

// Get returns ride id through the Reader (the ride cache in a region).
func (s *Service) Get(ctx context.Context, id int64) (Ride, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	r, ok, err := s.deps.Reader.GetRide(ctx, id)
	if err != nil {
		return Ride{}, unavailable(ReasonStore, "reading ride %d: %w", id, err)
	}
	if !ok {
		return Ride{}, ErrNotFound
	}
	return r, nil
}

// Start moves a matched ride to in_progress.
func (s *Service) Start(ctx context.Context, id int64) (Ride, error) {
	return s.Transition(ctx, id, lifecycle.InProgress, "")
}

// Complete moves a ride to completed (through in_progress when it is
// matched) and charges it: paid, or payment_failed after compensation.
// Completing a ride left completed by an earlier failure charges again
// with the same idempotency key.
func (s *Service) Complete(ctx context.Context, id int64) (Ride, error) {
	return s.Transition(ctx, id, lifecycle.Completed, "")
}

// Cancel cancels a ride that is not yet completed, with an optional reason.
func (s *Service) Cancel(ctx context.Context, id int64, reason string) (Ride, error) {
	if reason == "" {
		reason = "cancelled by request"
	}
	return s.Transition(ctx, id, lifecycle.Cancelled, reason)
}

// Transition moves ride id to the state to on the ride's actor: the steps
// lifecycle.Plan gives are applied one by one (each written, counted and
// invalidated); a transition that already happened returns the ride as it
// is; an impossible one returns a *TransitionError.
func (s *Service) Transition(ctx context.Context, id int64, to lifecycle.State, reason string) (Ride, error) {
	return do(ctx, s.actors, id, func(ctx context.Context) (Ride, error) {
		r, err := s.load(ctx, id)
		if err != nil {
			return Ride{}, err
		}
		steps, err := lifecycle.Plan(r.State, to)
		if err != nil {
			return r, &TransitionError{RideID: id, From: r.State, To: to}
		}
		for _, st := range steps {
			if r, err = s.apply(ctx, r, st, reason); err != nil {
				return r, err
			}
		}
		if to == lifecycle.Completed && r.State == lifecycle.Completed {
			return s.settle(ctx, r)
		}
		return r, nil
	})
}

// apply writes one step of r's lifecycle. It runs on r's actor.
func (s *Service) apply(ctx context.Context, r Ride, to lifecycle.State, reason string) (Ride, error) {
	next := r
	next.State = to
	next.Version++
	next.UpdatedAt = s.now()
	if reason != "" && (to == lifecycle.Cancelled || to == lifecycle.PaymentFailed) {
		next.Reason = reason
	}
	if err := s.put(ctx, next); err != nil {
		return r, err
	}
	s.tel.transition(r.State, to)
	s.deps.Cache.Invalidate(strconv.FormatInt(r.ID, 10))
	if (to == lifecycle.Cancelled || to == lifecycle.Completed) && r.DriverID != "" {
		s.release(ctx, r.DriverID, r.ID)
	}
	s.tel.logf(ctx, slog.LevelDebug, "ride transition", "ride_id", r.ID, "from", string(r.State), "to", string(to))
	return next, nil
}

// release frees a driver; a failure is logged (the claim store is then
// holding a driver for a finished ride, which its own expiry must clear).
func (s *Service) release(ctx context.Context, driverID string, rideID int64) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	if err := s.deps.Claims.Release(ctx, driverID, rideID); err != nil {
		s.tel.logf(ctx, slog.LevelWarn, "releasing driver failed", "driver_id", driverID, "ride_id", rideID, "err", err)
	}
}

// assignDriver matches a requested ride to a claimed driver, on the ride's
// actor. applied is false when the ride is no longer requested (cancelled
// meanwhile); the caller then releases the driver.
func (s *Service) assignDriver(ctx context.Context, id int64, driverID string) (r Ride, applied bool, err error) {
	type res struct {
		r       Ride
		applied bool
	}
	out, err := do(ctx, s.actors, id, func(ctx context.Context) (res, error) {
		r, err := s.load(ctx, id)
		if err != nil {
			return res{}, err
		}
		if r.State != lifecycle.Requested {
			return res{r, false}, nil
		}
		r.DriverID = driverID
		r, err = s.apply(ctx, r, lifecycle.Matched, "")
		if err != nil {
			return res{r, false}, err
		}
		return res{r, true}, nil
	})
	return out.r, out.applied, err
}

// spanAttrRide labels a span with the ride id.
func spanAttrRide(id int64) attribute.KeyValue { return attribute.Int64("ride.id", id) }
