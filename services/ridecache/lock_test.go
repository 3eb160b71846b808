package ridecache

import (
	"context"
	"errors"
	"testing"
	"time"
)

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestLocalLockerIsExclusive(t *testing.T) {
	l := NewLocalLocker()
	ctx := context.Background()
	unlockA, err := l.Lock(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Lock(cancelled(), "k", time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("a second holder: %v", err)
	}
	if _, err := l.Lock(cancelled(), "other", time.Minute); err != nil {
		t.Fatalf("another key is independent: %v", err)
	}
	got := make(chan error)
	go func() {
		unlock, err := l.Lock(ctx, "k", time.Minute)
		if err == nil {
			err = unlock(ctx)
		}
		got <- err
	}()
	if err := unlockA(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not woken by the unlock")
	}
	if err := unlockA(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("a second unlock: %v", err)
	}
	if _, err := l.Lock(ctx, "k", 0); err == nil {
		t.Fatal("a zero ttl was accepted")
	}
}

func TestLocalLockerTTL(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := &LocalLocker{Now: clk.Now}
	ctx := context.Background()
	unlockA, err := l.Lock(ctx, "k", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(999 * time.Millisecond)
	if _, err := l.Lock(cancelled(), "k", time.Second); err == nil {
		t.Fatal("taken before the ttl ran out")
	}
	clk.Add(time.Millisecond)
	unlockB, err := l.Lock(cancelled(), "k", time.Second)
	if err != nil {
		t.Fatalf("the lapsed lock could not be taken: %v", err)
	}
	// A's stale unlock must not release B's lock.
	if err := unlockA(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("stale unlock: %v", err)
	}
	if _, err := l.Lock(cancelled(), "k", time.Second); err == nil {
		t.Fatal("a stale unlock released the new holder's lock")
	}
	if err := unlockB(ctx); err != nil {
		t.Fatal(err)
	}
	// A holder whose lock lapsed unnoticed learns it at unlock.
	unlockC, _ := l.Lock(ctx, "k", time.Second)
	clk.Add(2 * time.Second)
	if err := unlockC(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("unlock after the ttl: %v", err)
	}
}
