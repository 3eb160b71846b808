// Package payment charges riders through several payment providers.
//
// Providers are tried in priority order. Each has a circuit: after
// Config.CircuitFailures consecutive failures it is skipped for
// Config.CircuitCooldown, then one trial call decides whether it is back.
// A charge carries an idempotency key: a retry with the same key returns
// the first charge's receipt and never charges again, and concurrent
// duplicates wait for the one charge in flight. A charge runs to its end even
// when the caller gives up, so the caller's retry finds its outcome.
//
// Compensation rule: money taken for a ride that is then cancelled or fails
// is given back. Refund refunds one charge, by its payment id or by its
// idempotency key; CompensateRide refunds every charge of a ride and
// refuses any later charge for it. Both are idempotent, wait for a charge
// still in flight, and refund on the provider that charged. A refund asked
// by key before any charge under that key succeeded voids the key, so a
// late retry of that charge cannot take money after its compensation.
//
// The providers are simulated in process (Sim), each with its own latency
// and failure rate; the ledger is in memory and keeps payments for
// Config.Retention. The service honours the region's fault injector for
// the service name "payment".
package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// ServiceName is the service's name in metrics, logs and fault injection.
const ServiceName = "payment"

// Operations, as the spec names them.
const (
	OpCharge = "charge"
	OpRefund = "refund"
)

// Errors of Charge and Refund; test for them with errors.Is.
var (
	// ErrPaymentFailed: every provider failed or was skipped; nothing was
	// charged, and a retry with the same key tries again.
	ErrPaymentFailed = errors.New("payment failed: no provider could charge")
	// ErrIdempotencyConflict: the key was used before for a different
	// charge.
	ErrIdempotencyConflict = errors.New("idempotency key already used for a different charge")
	// ErrKeyVoided: the key was refunded before any charge under it
	// succeeded, so it can no longer charge.
	ErrKeyVoided = errors.New("idempotency key voided by a refund; the charge was compensated")
	// ErrRideCompensated: the ride was compensated, so it takes no new
	// charge.
	ErrRideCompensated = errors.New("ride already compensated; it takes no new charge")
	// ErrNotFound: no payment with that id (or none in the retention window).
	ErrNotFound = errors.New("payment not found")
)

// ValidationError names the request field that is wrong.
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Msg }

// Status is a payment's state.
type Status string

// Payment states.
const (
	StatusCharged  Status = "charged"
	StatusRefunded Status = "refunded"
	// StatusVoided is an idempotency key refunded before it charged.
	StatusVoided Status = "voided"
)

// ChargeRequest asks for money for a ride. Amount is in the currency's
// minor units (cents, fen).
type ChargeRequest struct {
	RideID         string `json:"ride_id"`
	RiderID        string `json:"rider_id"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	IdempotencyKey string `json:"idempotency_key"`
}

// Limits of a ChargeRequest.
const (
	MaxAmount   = 1_000_000_000 // minor units
	maxIDLength = 255
)

// Validate checks a request; the error is a *ValidationError.
func (r ChargeRequest) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"ride_id", r.RideID}, {"rider_id", r.RiderID}, {"idempotency_key", r.IdempotencyKey},
	} {
		if f.v == "" {
			return &ValidationError{f.name, "is required"}
		}
		if len(f.v) > maxIDLength {
			return &ValidationError{f.name, fmt.Sprintf("is longer than %d bytes", maxIDLength)}
		}
		for _, c := range []byte(f.v) {
			if c < 0x21 || c > 0x7e {
				return &ValidationError{f.name, "must be printable ASCII without spaces"}
			}
		}
	}
	if r.Amount <= 0 || r.Amount > MaxAmount {
		return &ValidationError{"amount", fmt.Sprintf("must be in [1, %d] minor units", MaxAmount)}
	}
	if len(r.Currency) != 3 || !isUpper(r.Currency) {
		return &ValidationError{"currency", "must be an ISO 4217 code of three capital letters, such as CNY"}
	}
	return nil
}

func isUpper(s string) bool {
	for _, c := range []byte(s) {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// same reports whether two requests ask for the same charge.
func (r ChargeRequest) same(o ChargeRequest) bool { return r == o }

// Receipt is a payment's record.
type Receipt struct {
	ID             string     `json:"id"`
	RideID         string     `json:"ride_id,omitempty"`
	RiderID        string     `json:"rider_id,omitempty"`
	Amount         int64      `json:"amount,omitempty"`
	Currency       string     `json:"currency,omitempty"`
	IdempotencyKey string     `json:"idempotency_key"`
	Status         Status     `json:"status"`
	Provider       string     `json:"provider,omitempty"`
	ProviderRef    string     `json:"provider_ref,omitempty"`
	Attempts       int        `json:"attempts,omitempty"` // provider calls the charge took
	ChargedAt      time.Time  `json:"charged_at,omitzero"`
	RefundedAt     *time.Time `json:"refunded_at,omitempty"`
	RefundReason   string     `json:"refund_reason,omitempty"`
}

// RefundRequest names the charge to refund: by PaymentID, or by the
// ChargeKey it was made under when its receipt is unknown.
type RefundRequest struct {
	PaymentID string
	ChargeKey string
	Reason    string
}

// Config configures a Service.
type Config struct {
	// Region labels metrics and logs.
	Region string
	// Providers are the simulated providers in priority order (default
	// DefaultProviders).
	Providers []ProviderConfig
	// CircuitFailures consecutive failures open a provider's circuit
	// (default 5); it stays open for CircuitCooldown (default 30s).
	CircuitFailures int
	CircuitCooldown time.Duration
	// AttemptTimeout bounds one provider call (default 2s); it must exceed
	// every provider's latency plus jitter.
	AttemptTimeout time.Duration
	// RefundAttempts is how often a refund is tried on the provider before
	// Refund fails (default 3); the caller may retry later.
	RefundAttempts int
	// Retention is how long payments and idempotency keys are kept
	// (default 24h); MaxPayments bounds their number (default 1,000,000),
	// dropping the oldest finished ones first.
	Retention   time.Duration
	MaxPayments int
	// MaxBodyBytes bounds an HTTP request body (default 16 KiB).
	MaxBodyBytes int64
	// Now is the clock of the circuits and receipts (default time.Now).
	Now func() time.Time
	// Rand draws the simulated providers' failures and jitter (default
	// math/rand/v2).
	Rand func() float64
	// Faults is the region's fault injector (nil: none).
	Faults *faults.Injector
	// TracerProvider makes the service's spans (default no-op).
	TracerProvider trace.TracerProvider
}

func (c *Config) defaults() {
	if c.Providers == nil {
		c.Providers = DefaultProviders()
	}
	if c.CircuitFailures == 0 {
		c.CircuitFailures = 5
	}
	if c.CircuitCooldown == 0 {
		c.CircuitCooldown = 30 * time.Second
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = 2 * time.Second
	}
	if c.RefundAttempts == 0 {
		c.RefundAttempts = 3
	}
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.MaxPayments == 0 {
		c.MaxPayments = 1_000_000
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 16 << 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
}

// Validate checks the configuration, fields against each other.
func (c Config) Validate() error {
	if len(c.Providers) == 0 {
		return errors.New("payment config: at least one provider is needed")
	}
	seen := map[string]bool{}
	for _, p := range c.Providers {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("payment config: %w", err)
		}
		if seen[p.Name] {
			return fmt.Errorf("payment config: provider %s is listed twice", p.Name)
		}
		seen[p.Name] = true
		if p.Latency+p.Jitter >= c.AttemptTimeout {
			return fmt.Errorf("payment config: provider %s takes up to %s, not less than the attempt timeout %s; raise attempt_timeout", p.Name, p.Latency+p.Jitter, c.AttemptTimeout)
		}
	}
	switch {
	case c.CircuitFailures < 1:
		return errors.New("payment config: circuit_failures must be at least 1")
	case c.CircuitCooldown < 0 || c.AttemptTimeout < 0 || c.Retention < 0:
		return errors.New("payment config: durations must not be negative")
	case c.RefundAttempts < 1:
		return errors.New("payment config: refund_attempts must be at least 1")
	case c.MaxPayments < 1 || c.MaxBodyBytes < 1:
		return errors.New("payment config: max_payments and max_body_bytes must be positive")
	}
	return nil
}

// provider is a Provider with its circuit and cached metric children.
type provider struct {
	Provider
	circuit             circuit
	ok, failed, skipped prometheus.Counter
	open                prometheus.Gauge
}

// entry is one idempotency key's charge.
type entry struct {
	req     ChargeRequest
	created time.Time
	done    chan struct{} // closed when the charge has ended
	err     error         // the charge's failure; set before done closes

	receipt Receipt // guarded by Service.mu once done is closed

	refundMu sync.Mutex // serialises refunds of this charge
}

// rideMark records a compensated ride.
type rideMark struct {
	ride string
	at   time.Time
}

// Service is the payment adapter. It is safe for concurrent use.
type Service struct {
	cfg       Config
	providers []*provider
	log       *slog.Logger
	tracer    trace.Tracer

	mu          sync.Mutex
	byKey       map[string]*entry
	byID        map[string]*entry
	byRide      map[string][]*entry
	order       []*entry // by creation, for retention
	compensated map[string]time.Time
	marks       []rideMark

	failovers                        prometheus.Counter
	charged, replayed, chargeFailed  prometheus.Counter
	refunded, voided, refundReplayed prometheus.Counter
	rfailed                          prometheus.Counter
	duration                         *prometheus.HistogramVec
	observers                        sync.Map // obsKey → prometheus.Observer, cached duration children
}

// New returns a payment service over cfg's simulated providers. It
// registers its metrics with reg (nil: unregistered), reusing
// carpool_request_duration_seconds if another service registered it there.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Service, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sims := make([]Provider, len(cfg.Providers))
	for i, p := range cfg.Providers {
		sims[i] = NewSim(p, cfg.Rand)
	}
	return newService(cfg, sims, reg, log)
}

// newService builds the service over any providers (tests pass fakes).
func newService(cfg Config, ps []Provider, reg prometheus.Registerer, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	attempts := telemetry.NewCounterVec(catalog.PaymentAttempts)
	failovers := telemetry.NewCounterVec(catalog.PaymentFailovers)
	charges := telemetry.NewCounterVec(catalog.PaymentCharges)
	refunds := telemetry.NewCounterVec(catalog.PaymentRefunds)
	open := telemetry.NewGaugeVec(catalog.PaymentCircuitOpen)
	duration := telemetry.NewHistogramVec(catalog.RequestDuration)
	if reg != nil {
		var err error
		if attempts, err = register(reg, attempts); err != nil {
			return nil, err
		}
		if failovers, err = register(reg, failovers); err != nil {
			return nil, err
		}
		if charges, err = register(reg, charges); err != nil {
			return nil, err
		}
		if refunds, err = register(reg, refunds); err != nil {
			return nil, err
		}
		if open, err = register(reg, open); err != nil {
			return nil, err
		}
		if duration, err = register(reg, duration); err != nil {
			return nil, err
		}
	}
	r := cfg.Region
	s := &Service{
		cfg:            cfg,
		log:            log.With(catalog.LabelRegion, r, catalog.LabelService, ServiceName),
		tracer:         cfg.TracerProvider.Tracer("github.com/carpoolsla/carpoolsla/services/payment"),
		byKey:          map[string]*entry{},
		byID:           map[string]*entry{},
		byRide:         map[string][]*entry{},
		compensated:    map[string]time.Time{},
		failovers:      failovers.WithLabelValues(r),
		charged:        charges.WithLabelValues(r, catalog.PaymentOutcomeCharged),
		replayed:       charges.WithLabelValues(r, catalog.PaymentOutcomeReplayed),
		chargeFailed:   charges.WithLabelValues(r, catalog.PaymentOutcomeFailed),
		refunded:       refunds.WithLabelValues(r, catalog.PaymentOutcomeRefunded),
		voided:         refunds.WithLabelValues(r, catalog.PaymentOutcomeVoided),
		refundReplayed: refunds.WithLabelValues(r, catalog.PaymentOutcomeReplayed),
		rfailed:        refunds.WithLabelValues(r, catalog.PaymentOutcomeFailed),
		duration:       duration,
	}
	for _, p := range ps {
		n := p.Name()
		s.providers = append(s.providers, &provider{
			Provider: p,
			circuit:  circuit{threshold: cfg.CircuitFailures, cooldown: cfg.CircuitCooldown},
			ok:       attempts.WithLabelValues(r, n, catalog.OutcomeOK),
			failed:   attempts.WithLabelValues(r, n, catalog.OutcomeError),
			skipped:  attempts.WithLabelValues(r, n, catalog.PaymentOutcomeCircuitOpen),
			open:     open.WithLabelValues(r, n),
		})
	}
	return s, nil
}

// register registers c, or returns the equal collector registered before
// (by another service of the region, or another payment service).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("registering the payment metrics: %w", err)
	}
	return c, nil
}

// Charge charges the rider once per idempotency key, trying the providers
// in priority order. It returns ErrPaymentFailed (wrapped) when none could
// charge, ErrIdempotencyConflict, ErrKeyVoided or ErrRideCompensated when
// the request may not charge, a *ValidationError for a bad request, and the
// fault injector's errors. When ctx ends first, Charge returns ctx's error
// while the charge goes on; a retry with the same key returns its outcome.
func (s *Service) Charge(ctx context.Context, req ChargeRequest) (Receipt, error) {
	start := time.Now()
	r, _, err := s.chargeWithFaults(ctx, req)
	s.observe(ctx, OpCharge, statusOf(err, 201), start)
	return r, err
}

func (s *Service) chargeWithFaults(ctx context.Context, req ChargeRequest) (Receipt, bool, error) {
	if err := s.cfg.Faults.Apply(ctx, ServiceName); err != nil {
		return Receipt{}, false, fmt.Errorf("charging ride %s: %w", req.RideID, err)
	}
	return s.charge(ctx, req)
}

// charge is Charge without faults and metrics of the request; replayed
// reports an earlier outcome returned for the key.
func (s *Service) charge(ctx context.Context, req ChargeRequest) (r Receipt, replayed bool, err error) {
	if err := req.Validate(); err != nil {
		return Receipt{}, false, err
	}
	now := s.cfg.Now()
	s.mu.Lock()
	s.expireLocked(now)
	e, found := s.byKey[req.IdempotencyKey]
	switch {
	case found && e.receipt.Status == StatusVoided:
		s.mu.Unlock()
		return Receipt{}, false, fmt.Errorf("charging ride %s under key %s: %w", req.RideID, req.IdempotencyKey, ErrKeyVoided)
	case found && !e.req.same(req):
		s.mu.Unlock()
		return Receipt{}, false, fmt.Errorf("charging ride %s under key %s (first used for ride %s, amount %d %s): %w",
			req.RideID, req.IdempotencyKey, e.req.RideID, e.req.Amount, e.req.Currency, ErrIdempotencyConflict)
	case found:
		s.mu.Unlock()
		r, err := s.await(ctx, e)
		if err == nil {
			s.replayed.Inc()
		}
		return r, true, err
	}
	if _, ok := s.compensated[req.RideID]; ok {
		s.mu.Unlock()
		return Receipt{}, false, fmt.Errorf("charging ride %s: %w", req.RideID, ErrRideCompensated)
	}
	e = &entry{req: req, created: now, done: make(chan struct{})}
	s.byKey[req.IdempotencyKey] = e
	s.byRide[req.RideID] = append(s.byRide[req.RideID], e)
	s.order = append(s.order, e)
	s.mu.Unlock()

	// The charge outlives the caller: a client that gives up and retries
	// must find its outcome, not a second charge.
	go s.execute(context.WithoutCancel(ctx), e)
	r, err = s.await(ctx, e)
	return r, false, err
}

// await waits for e's charge to end, or for ctx.
func (s *Service) await(ctx context.Context, e *entry) (Receipt, error) {
	select {
	case <-e.done:
	case <-ctx.Done():
		return Receipt{}, fmt.Errorf("waiting for the charge of ride %s under key %s: %w", e.req.RideID, e.req.IdempotencyKey, ctx.Err())
	}
	if e.err != nil {
		return Receipt{}, e.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.receipt, nil
}

// execute runs e's charge over the providers and records its outcome.
func (s *Service) execute(ctx context.Context, e *entry) {
	defer close(e.done)
	ctx, span := s.tracer.Start(ctx, "payment.charge", trace.WithAttributes(
		attribute.String("ride.id", e.req.RideID), attribute.Int64("payment.amount", e.req.Amount)))
	defer span.End()
	var errs []error
	attempts := 0
	for i, p := range s.providers {
		moveOn := func() {
			if i < len(s.providers)-1 {
				s.failovers.Inc()
			}
		}
		if !p.circuit.allow(s.cfg.Now()) {
			p.skipped.Inc()
			errs = append(errs, fmt.Errorf("%s: circuit open", p.Name()))
			moveOn()
			continue
		}
		attempts++
		ref, err := s.attempt(ctx, p, e.req)
		if err != nil {
			p.failed.Inc()
			if p.circuit.failure(s.cfg.Now()) {
				p.open.Set(1)
			}
			errs = append(errs, err)
			s.log.WarnContext(ctx, "payment provider failed", "provider", p.Name(), "ride_id", e.req.RideID, "err", err)
			moveOn()
			continue
		}
		p.ok.Inc()
		if p.circuit.success() {
			p.open.Set(0)
		}
		s.mu.Lock()
		e.receipt = Receipt{
			ID: "pay_" + randomHex(12), RideID: e.req.RideID, RiderID: e.req.RiderID, Amount: e.req.Amount,
			Currency: e.req.Currency, IdempotencyKey: e.req.IdempotencyKey, Status: StatusCharged,
			Provider: p.Name(), ProviderRef: ref, Attempts: attempts, ChargedAt: s.cfg.Now().UTC(),
		}
		s.byID[e.receipt.ID] = e
		s.mu.Unlock()
		s.charged.Inc()
		span.SetAttributes(attribute.String("payment.provider", p.Name()), attribute.Int("payment.attempts", attempts))
		return
	}
	e.err = fmt.Errorf("charging ride %s under key %s: %w: %w", e.req.RideID, e.req.IdempotencyKey, ErrPaymentFailed, errors.Join(errs...))
	span.SetStatus(codes.Error, e.err.Error())
	s.chargeFailed.Inc()
	s.log.ErrorContext(ctx, "charge failed on every provider", "ride_id", e.req.RideID, "err", e.err)
	// Nothing was charged: forget the key so that a retry tries again.
	s.mu.Lock()
	if s.byKey[e.req.IdempotencyKey] == e {
		delete(s.byKey, e.req.IdempotencyKey)
	}
	s.dropFromRideLocked(e)
	s.mu.Unlock()
}

// attempt makes one provider call, in a span, within AttemptTimeout.
func (s *Service) attempt(ctx context.Context, p *provider, req ChargeRequest) (string, error) {
	ctx, span := s.tracer.Start(ctx, "payment.attempt", trace.WithAttributes(attribute.String("payment.provider", p.Name())))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	ref, err := p.Charge(ctx, ProviderCharge{IdempotencyKey: req.IdempotencyKey, Amount: req.Amount, Currency: req.Currency})
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return ref, err
}

// Get returns the payment with id.
func (s *Service) Get(id string) (Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byID[id]; ok {
		return e.receipt, nil
	}
	return Receipt{}, fmt.Errorf("reading payment %q: %w", id, ErrNotFound)
}

// Refund refunds one charge in full, by payment id or by charge key (see
// the package's compensation rule). A second refund returns the same
// receipt. Refunding by key when nothing was charged under it voids the key
// and returns a receipt with StatusVoided.
func (s *Service) Refund(ctx context.Context, req RefundRequest) (Receipt, error) {
	start := time.Now()
	r, _, err := s.refundWithFaults(ctx, req)
	s.observe(ctx, OpRefund, statusOf(err, 200), start)
	return r, err
}

func (s *Service) refundWithFaults(ctx context.Context, req RefundRequest) (Receipt, bool, error) {
	if err := s.cfg.Faults.Apply(ctx, ServiceName); err != nil {
		return Receipt{}, false, fmt.Errorf("refunding %s%s: %w", req.PaymentID, req.ChargeKey, err)
	}
	return s.refund(ctx, req)
}

// refund is Refund without faults and request metrics; replayed reports a
// charge refunded (or voided) before.
func (s *Service) refund(ctx context.Context, req RefundRequest) (Receipt, bool, error) {
	var e *entry
	s.mu.Lock()
	switch {
	case req.PaymentID != "":
		e = s.byID[req.PaymentID]
		if e == nil {
			s.mu.Unlock()
			return Receipt{}, false, fmt.Errorf("refunding payment %q: %w", req.PaymentID, ErrNotFound)
		}
	case req.ChargeKey != "":
		e = s.byKey[req.ChargeKey]
		if e == nil {
			e = s.voidLocked(req.ChargeKey, req.Reason)
			s.mu.Unlock()
			s.voided.Inc()
			return e.receipt, false, nil
		}
	default:
		s.mu.Unlock()
		return Receipt{}, false, &ValidationError{"payment_id", "a refund names a payment id or a charge key"}
	}
	s.mu.Unlock()
	return s.refundEntry(ctx, e, req.Reason)
}

// voidLocked records key as voided: it will never charge.
func (s *Service) voidLocked(key, reason string) *entry {
	now := s.cfg.Now()
	e := &entry{created: now, done: make(chan struct{})}
	close(e.done)
	at := now.UTC()
	e.receipt = Receipt{IdempotencyKey: key, Status: StatusVoided, RefundedAt: &at, RefundReason: reason}
	s.byKey[key] = e
	s.order = append(s.order, e)
	return e
}

// refundEntry waits for e's charge and refunds it on its provider, once.
func (s *Service) refundEntry(ctx context.Context, e *entry, reason string) (Receipt, bool, error) {
	select {
	case <-e.done:
	case <-ctx.Done():
		return Receipt{}, false, fmt.Errorf("waiting for the charge under key %s to refund it: %w", e.req.IdempotencyKey, ctx.Err())
	}
	if e.err != nil {
		// The charge failed, so nothing was taken; void the key unless a
		// retry is charging under it already.
		s.mu.Lock()
		defer s.mu.Unlock()
		if cur := s.byKey[e.req.IdempotencyKey]; cur != nil && cur != e {
			return Receipt{}, false, fmt.Errorf("refunding the charge under key %s: a retry of the charge is in flight; refund again once it ends", e.req.IdempotencyKey)
		}
		v := s.voidLocked(e.req.IdempotencyKey, reason)
		s.voided.Inc()
		return v.receipt, false, nil
	}
	e.refundMu.Lock()
	defer e.refundMu.Unlock()
	s.mu.Lock()
	r := e.receipt
	s.mu.Unlock()
	if r.Status != StatusCharged {
		s.refundReplayed.Inc()
		return r, true, nil
	}
	p := s.provider(r.Provider)
	if p == nil {
		s.rfailed.Inc()
		return Receipt{}, false, fmt.Errorf("refunding payment %s: provider %s is no longer configured", r.ID, r.Provider)
	}
	ctx, span := s.tracer.Start(ctx, "payment.refund", trace.WithAttributes(attribute.String("payment.provider", r.Provider), attribute.String("ride.id", r.RideID)))
	defer span.End()
	var err error
	for range s.cfg.RefundAttempts {
		actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
		err = p.Refund(actx, r.ProviderRef)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		s.rfailed.Inc()
		span.SetStatus(codes.Error, err.Error())
		s.log.ErrorContext(ctx, "refund failed", "payment_id", r.ID, "ride_id", r.RideID, "err", err)
		return Receipt{}, false, fmt.Errorf("refunding payment %s on %s: %w", r.ID, r.Provider, err)
	}
	at := s.cfg.Now().UTC()
	s.mu.Lock()
	e.receipt.Status, e.receipt.RefundedAt, e.receipt.RefundReason = StatusRefunded, &at, reason
	r = e.receipt
	s.mu.Unlock()
	s.refunded.Inc()
	s.log.InfoContext(ctx, "payment refunded", "payment_id", r.ID, "ride_id", r.RideID, "reason", reason)
	return r, false, nil
}

func (s *Service) provider(name string) *provider {
	for _, p := range s.providers {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// CompensateRide applies the compensation rule to a ride that was cancelled
// or failed: it refuses every later charge for the ride, waits for charges
// in flight, and refunds every charge of the ride. It returns the refunded
// receipts; calling it again refunds nothing twice.
func (s *Service) CompensateRide(ctx context.Context, rideID, reason string) ([]Receipt, error) {
	if rideID == "" {
		return nil, &ValidationError{"ride_id", "is required"}
	}
	now := s.cfg.Now()
	s.mu.Lock()
	if _, ok := s.compensated[rideID]; !ok {
		s.compensated[rideID] = now
		s.marks = append(s.marks, rideMark{rideID, now})
	}
	entries := slices.Clone(s.byRide[rideID])
	s.mu.Unlock()
	var out []Receipt
	var errs []error
	for _, e := range entries {
		select {
		case <-e.done:
		case <-ctx.Done():
			return out, fmt.Errorf("compensating ride %s: %w", rideID, ctx.Err())
		}
		if e.err != nil {
			continue // nothing was charged
		}
		r, _, err := s.refundEntry(ctx, e, reason)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("compensating ride %s: %w", rideID, err)
	}
	return out, nil
}

// expireLocked drops the oldest finished payments past Retention or beyond
// MaxPayments, and compensation marks past Retention. It stops at the
// oldest charge still in flight.
func (s *Service) expireLocked(now time.Time) {
	n := 0
	for ; n < len(s.order); n++ {
		e := s.order[n]
		if now.Sub(e.created) <= s.cfg.Retention && len(s.order)-n <= s.cfg.MaxPayments {
			break
		}
		if !isDone(e) {
			break
		}
		s.forgetLocked(e)
		s.order[n] = nil
	}
	s.order = s.order[n:]
	m := 0
	for ; m < len(s.marks) && now.Sub(s.marks[m].at) > s.cfg.Retention; m++ {
		delete(s.compensated, s.marks[m].ride)
	}
	s.marks = s.marks[m:]
}

func isDone(e *entry) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// forgetLocked removes e from the indexes that still point at it.
func (s *Service) forgetLocked(e *entry) {
	key := e.req.IdempotencyKey
	if key == "" {
		key = e.receipt.IdempotencyKey // a voided key
	}
	if s.byKey[key] == e {
		delete(s.byKey, key)
	}
	if e.receipt.ID != "" && s.byID[e.receipt.ID] == e {
		delete(s.byID, e.receipt.ID)
	}
	s.dropFromRideLocked(e)
}

func (s *Service) dropFromRideLocked(e *entry) {
	id := e.req.RideID
	if id == "" {
		return
	}
	es := slices.DeleteFunc(s.byRide[id], func(x *entry) bool { return x == e })
	if len(es) == 0 {
		delete(s.byRide, id)
		return
	}
	s.byRide[id] = es
}
