package payment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"
)

// Provider is one payment rail. Charge takes the money or fails without
// taking it; a provider answers a repeated idempotency key with the first
// charge's reference instead of charging again. Refund gives back the money
// of a charge by its reference, once, however often it is asked.
type Provider interface {
	Name() string
	Charge(ctx context.Context, c ProviderCharge) (ref string, err error)
	Refund(ctx context.Context, ref string) error
}

// ProviderCharge is what the service asks of a provider.
type ProviderCharge struct {
	IdempotencyKey string
	Amount         int64
	Currency       string
}

// ErrProviderUnavailable is the simulated providers' failure: nothing was
// charged, and another provider may be tried.
var ErrProviderUnavailable = errors.New("payment provider unavailable")

// ProviderConfig is the latency and failure profile of a simulated provider.
type ProviderConfig struct {
	// Name identifies the provider in metrics, logs and receipts.
	Name string `json:"name" yaml:"name"`
	// Latency is how long every call takes, plus a uniform random extra in
	// [0, Jitter).
	Latency time.Duration `json:"latency" yaml:"latency"`
	Jitter  time.Duration `json:"jitter" yaml:"jitter"`
	// FailureRate is the share of calls, in [0, 1], that fail with
	// ErrProviderUnavailable after the latency, without charging.
	FailureRate float64 `json:"failure_rate" yaml:"failure_rate"`
}

// DefaultProviders are the simulated providers used when a Config names
// none, in priority order: a fast wallet and a slower, less reliable card
// network.
func DefaultProviders() []ProviderConfig {
	return []ProviderConfig{
		{Name: "alipay-sim", Latency: 20 * time.Millisecond, FailureRate: 0.005},
		{Name: "card-sim", Latency: 60 * time.Millisecond, FailureRate: 0.02},
	}
}

// Validate checks one provider profile.
func (p ProviderConfig) Validate() error {
	switch {
	case p.Name == "":
		return errors.New("a payment provider needs a name")
	case p.Latency < 0 || p.Jitter < 0:
		return fmt.Errorf("payment provider %s: latency and jitter must not be negative", p.Name)
	case p.FailureRate < 0 || p.FailureRate > 1:
		return fmt.Errorf("payment provider %s: failure_rate is %g; it must be in [0, 1]", p.Name, p.FailureRate)
	}
	return nil
}

// Sim is a simulated provider, in process: it keeps a ledger of what it
// charged and refunded, so tests can check that a rider was charged once.
// It implements Provider.
type Sim struct {
	cfg  ProviderConfig
	rand func() float64

	mu       sync.Mutex
	byKey    map[string]string // idempotency key → reference
	charges  map[string]int64  // reference → amount charged
	refunded map[string]bool   // reference → refunded
}

// NewSim returns a simulated provider with profile cfg; rnd draws its
// failures (nil: math/rand/v2).
func NewSim(cfg ProviderConfig, rnd func() float64) *Sim {
	if rnd == nil {
		rnd = mrand.Float64
	}
	return &Sim{cfg: cfg, rand: rnd, byKey: map[string]string{}, charges: map[string]int64{}, refunded: map[string]bool{}}
}

// Name implements Provider.
func (s *Sim) Name() string { return s.cfg.Name }

// wait spends the call's simulated latency, or returns ctx's error.
func (s *Sim) wait(ctx context.Context) error {
	d := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		d += time.Duration(s.rand() * float64(s.cfg.Jitter))
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Charge implements Provider: after the latency, it fails with
// ErrProviderUnavailable at the profile's rate, or charges (once per
// idempotency key).
func (s *Sim) Charge(ctx context.Context, c ProviderCharge) (string, error) {
	if err := s.wait(ctx); err != nil {
		return "", fmt.Errorf("%s: %w", s.cfg.Name, err)
	}
	if s.rand() < s.cfg.FailureRate {
		return "", fmt.Errorf("%s: %w", s.cfg.Name, ErrProviderUnavailable)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ref, ok := s.byKey[c.IdempotencyKey]; ok {
		return ref, nil
	}
	ref := s.cfg.Name + "_" + randomHex(8)
	s.byKey[c.IdempotencyKey] = ref
	s.charges[ref] = c.Amount
	return ref, nil
}

// Refund implements Provider: after the latency, it fails at the profile's
// rate, or refunds the charge (once).
func (s *Sim) Refund(ctx context.Context, ref string) error {
	if err := s.wait(ctx); err != nil {
		return fmt.Errorf("%s: %w", s.cfg.Name, err)
	}
	if s.rand() < s.cfg.FailureRate {
		return fmt.Errorf("%s: %w", s.cfg.Name, ErrProviderUnavailable)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.charges[ref]; !ok {
		return fmt.Errorf("%s: refunding %s: no such charge", s.cfg.Name, ref)
	}
	s.refunded[ref] = true
	return nil
}

// Ledger returns how many charges the provider made, their total amount,
// and how many of them it refunded.
func (s *Sim) Ledger() (charges int, amount int64, refunds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.charges {
		amount += a
	}
	return len(s.charges), amount, len(s.refunded)
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
