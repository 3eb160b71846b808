package gateway

import (
	"testing"
	"time"
)

func TestRetryBudget(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for sentence, tc := range map[string]struct {
		requests int
		want     int // retries allowed if every request asks for one
	}{
		"Every request failing gets at most one retry in ten.":     {requests: 200, want: 20},
		"The very first failure may retry.":                        {requests: 1, want: 1},
		"Ten requests allow one retry, the eleventh a second one.": {requests: 11, want: 2},
	} {
		t.Run(sentence, func(t *testing.T) {
			b := newRetryBudget(0.1, 10*time.Second, 0)
			got := 0
			for range tc.requests {
				b.request(t0)
				if b.tryRetry(t0) {
					got++
				}
			}
			if got != tc.want {
				t.Fatalf("%d retries for %d requests, want %d", got, tc.requests, tc.want)
			}
		})
	}
}

func TestRetryBudgetWindowSlides(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newRetryBudget(0.1, 10*time.Second, 0)
	for range 100 {
		b.request(now)
	}
	for range 10 {
		if !b.tryRetry(now) {
			t.Fatal("100 requests should allow 10 retries")
		}
	}
	if b.tryRetry(now) {
		t.Fatal("an 11th retry for 100 requests")
	}
	// 11 s later the window holds neither those requests nor those retries.
	now = now.Add(11 * time.Second)
	if b.tryRetry(now) {
		t.Fatal("a retry allowed on an empty window")
	}
	for range 10 {
		b.request(now)
	}
	if !b.tryRetry(now) {
		t.Fatal("fresh requests should refill the budget")
	}
}

// The floor allows minPerSecond × window retries whatever the traffic, on
// top of the ratio's share, and slides with the window like the rest.
func TestRetryBudgetFloor(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newRetryBudget(0.1, 10*time.Second, 0.5) // a floor of 5 retries per 10 s
	for i := range 5 {
		if !b.tryRetry(now) {
			t.Fatalf("retry %d refused; no request yet, but the floor allows 5", i+1)
		}
	}
	if b.tryRetry(now) {
		t.Fatal("a 6th retry without requests")
	}
	for range 20 { // the ratio's share comes on top: 2 more
		b.request(now)
	}
	for i := range 2 {
		if !b.tryRetry(now) {
			t.Fatalf("retry %d of the ratio's share refused", i+1)
		}
	}
	if b.tryRetry(now) {
		t.Fatal("a retry beyond floor + ratio")
	}
	if !b.tryRetry(now.Add(11 * time.Second)) {
		t.Fatal("the floor did not come back with the window")
	}
}
