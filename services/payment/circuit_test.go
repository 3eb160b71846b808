package payment

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCircuit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Each step: at offset, call allow; if allowed, report ok or not.
	type step struct {
		at        time.Duration
		wantAllow bool
		ok        bool
	}
	tests := map[string][]step{
		"Fewer failures than the threshold keep the circuit closed.": {
			{0, true, false}, {1, true, false}, {2, true, true}, {3, true, false}, {4, true, false}, {5, true, true},
		},
		"Three consecutive failures open it until the cooldown ends.": {
			{0, true, false}, {1, true, false}, {2, true, false}, {3, false, false}, {9, false, false},
		},
		"After the cooldown one trial goes through, and its success closes the circuit.": {
			{0, true, false}, {0, true, false}, {0, true, false}, {10, true, true}, {10, true, true}, {10, true, false},
		},
		"A failed trial opens the circuit for another cooldown.": {
			{0, true, false}, {0, true, false}, {0, true, false}, {10, true, false}, {11, false, false}, {19, false, false}, {20, true, true},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			c := circuit{threshold: 3, cooldown: 10 * time.Second}
			for i, s := range steps {
				now := t0.Add(s.at * time.Second)
				if got := c.allow(now); got != s.wantAllow {
					t.Fatalf("step %d at +%ds: allow = %v", i, s.at, got)
				}
				if !s.wantAllow {
					continue
				}
				if s.ok {
					c.success()
				} else {
					c.failure(now)
				}
			}
		})
	}
}

func TestHalfOpenAllowsOneTrialAtATime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := circuit{threshold: 1, cooldown: time.Second}
	c.failure(t0)
	later := t0.Add(2 * time.Second)
	if !c.allow(later) {
		t.Fatal("no trial after the cooldown")
	}
	if c.allow(later) {
		t.Fatal("a second call went through while the trial was in flight")
	}
	if !c.success() {
		t.Fatal("the trial's success did not report closing the circuit")
	}
	for range 2 {
		if !c.allow(later) {
			t.Fatal("a closed circuit refused calls")
		}
	}
}

func TestSimProvider(t *testing.T) {
	ctx := context.Background()
	draws := []float64{0.1, 0.9}
	i := 0
	s := NewSim(ProviderConfig{Name: "x", FailureRate: 0.5}, func() float64 { i++; return draws[(i-1)%2] })
	if _, err := s.Charge(ctx, ProviderCharge{IdempotencyKey: "k", Amount: 5}); !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("a draw under the failure rate: %v", err)
	}
	ref, err := s.Charge(ctx, ProviderCharge{IdempotencyKey: "k", Amount: 5})
	if err != nil {
		t.Fatal(err)
	}
	s.rand = func() float64 { return 0.9 }
	again, err := s.Charge(ctx, ProviderCharge{IdempotencyKey: "k", Amount: 5})
	if err != nil || again != ref {
		t.Fatalf("a repeated key charged anew: %s vs %s, %v", again, ref, err)
	}
	if err := s.Refund(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := s.Refund(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := s.Refund(ctx, "nope"); err == nil {
		t.Fatal("refunded an unknown charge")
	}
	if c, amount, r := s.Ledger(); c != 1 || amount != 5 || r != 1 {
		t.Fatalf("ledger %d %d %d", c, amount, r)
	}
	slow := NewSim(ProviderConfig{Name: "slow", Latency: time.Hour}, nil)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := slow.Charge(cctx, ProviderCharge{IdempotencyKey: "k"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("latency ignored the context: %v", err)
	}
	if c, _, _ := slow.Ledger(); c != 0 {
		t.Fatal("a cancelled call charged")
	}
}
