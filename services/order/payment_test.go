package order

import (
	"errors"
	"strings"
	"testing"

	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
)

func TestPaymentAndCompensation(t *testing.T) {
	errDown := errors.New("provider unavailable (test)")
	tests := map[string]struct {
		chargeErr     func(n int) error
		refundErr     func(n int) error
		wantState     lifecycle.State
		wantCharges   int
		wantRefunds   int
		wantRefunded  float64
		wantRefundBad float64
		wantReason    string
	}{
		"A charge that works at once pays the ride.": {
			wantState: lifecycle.Paid, wantCharges: 1,
		},
		"A charge that fails once is retried with the same key and pays the ride.": {
			chargeErr: func(n int) error { return errIf(n == 1, errDown) },
			wantState: lifecycle.Paid, wantCharges: 2,
		},
		"A charge that always fails is compensated: refunded by its key, payment_failed.": {
			chargeErr: func(int) error { return errDown },
			wantState: lifecycle.PaymentFailed, wantCharges: 3, wantRefunds: 1, wantRefunded: 1,
			wantReason: "payment failed after 3 attempts",
		},
		"A refund that fails once is retried.": {
			chargeErr: func(int) error { return errDown },
			refundErr: func(n int) error { return errIf(n == 1, errDown) },
			wantState: lifecycle.PaymentFailed, wantCharges: 3, wantRefunds: 2, wantRefunded: 1,
			wantReason: "any partial charge was refunded",
		},
		"When the refund fails too, the ride is payment_failed and counted refund_failed.": {
			chargeErr: func(int) error { return errDown },
			refundErr: func(int) error { return errDown },
			wantState: lifecycle.PaymentFailed, wantCharges: 3, wantRefunds: 3, wantRefundBad: 1,
			wantReason: "refund of any partial charge failed",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOpt{})
			e.payer.chargeErr, e.payer.refundErr = tc.chargeErr, tc.refundErr
			r := e.createRide(t)
			w := e.do("POST", "/v1/rides/"+itoa(r.ID)+"/complete", "")
			if w.Code != 200 {
				t.Fatalf("complete: %d %s", w.Code, w.Body)
			}
			got := decodeRide(t, w)
			if got.State != tc.wantState || !strings.Contains(got.Reason, tc.wantReason) {
				t.Fatalf("ride ended %s (%q); want %s with a reason containing %q", got.State, got.Reason, tc.wantState, tc.wantReason)
			}
			charges, refunds := e.payer.snapshot()
			if len(charges) != tc.wantCharges || len(refunds) != tc.wantRefunds {
				t.Fatalf("%d charges, %d refunds; want %d, %d", len(charges), len(refunds), tc.wantCharges, tc.wantRefunds)
			}
			for _, c := range charges {
				if c.IdempotencyKey != chargeKey(r.ID) || c.AmountMinor != r.Price.AmountMinor {
					t.Errorf("charge %+v; want %d under key %s", c, r.Price.AmountMinor, chargeKey(r.ID))
				}
			}
			for _, rf := range refunds {
				if rf.ChargeKey != chargeKey(r.ID) || rf.IdempotencyKey != refundKey(r.ID) || rf.RideID != r.ID {
					t.Errorf("refund %+v; want the charge key %s and refund key %s", rf, chargeKey(r.ID), refundKey(r.ID))
				}
			}
			if v := toFloat64(e.svc.tel.refunded); v != tc.wantRefunded {
				t.Errorf("compensations refunded = %v; want %v", v, tc.wantRefunded)
			}
			if v := toFloat64(e.svc.tel.refundFailed); v != tc.wantRefundBad {
				t.Errorf("compensations refund_failed = %v; want %v", v, tc.wantRefundBad)
			}
			if _, held := e.claims.Held(r.DriverID); held {
				t.Error("the driver is still held")
			}
			// Completing again changes nothing and charges nothing.
			again := e.do("POST", "/v1/rides/"+itoa(r.ID)+"/complete", "")
			if again.Code != 200 || decodeRide(t, again).State != tc.wantState {
				t.Fatalf("complete again: %d %s", again.Code, again.Body)
			}
			if c, _ := e.payer.snapshot(); len(c) != tc.wantCharges {
				t.Errorf("completing again charged again (%d charges)", len(c))
			}
		})
	}
}

// A ride whose paid write failed after a successful charge stays completed;
// the next complete charges again under the same key, which the provider
// answers with the same receipt, and the ride is paid once.
func TestALostPaidWriteIsRepairedByTheNextComplete(t *testing.T) {
	e := newEnv(t, envOpt{})
	r := e.createRide(t)
	paid := string(lifecycle.Paid)
	e.store.failPut.Store(&paid)
	w := e.do("POST", "/v1/rides/"+itoa(r.ID)+"/complete", "")
	if w.Code != 503 || !strings.Contains(w.Body.String(), ReasonStore) {
		t.Fatalf("complete with the paid write failing: %d %s", w.Code, w.Body)
	}
	if got, _, _ := e.store.GetRide(t.Context(), r.ID); got.State != lifecycle.Completed {
		t.Fatalf("ride is %s; want completed", got.State)
	}
	e.store.failPut.Store(nil)
	w = e.do("POST", "/v1/rides/"+itoa(r.ID)+"/complete", "")
	got := decodeRide(t, w)
	if w.Code != 200 || got.State != lifecycle.Paid || got.ReceiptID != "rcpt-"+itoa(r.ID) {
		t.Fatalf("complete again: %d %+v", w.Code, got)
	}
	charges, _ := e.payer.snapshot()
	if len(charges) != 2 || charges[0].IdempotencyKey != charges[1].IdempotencyKey {
		t.Fatalf("charges %+v; want two under one key", charges)
	}
	if v := e.transitions(lifecycle.Completed, lifecycle.Paid); v != 1 {
		t.Errorf("completed→paid counted %v; want 1", v)
	}
}

func errIf(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}
