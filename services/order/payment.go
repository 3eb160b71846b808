package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
)

// chargeKey and refundKey are the idempotency keys of a ride's charge and
// refund: the same on every retry and in every region, so a provider
// charges a ride at most once however often it is asked.
func chargeKey(id int64) string { return fmt.Sprintf("ride-%d-charge", id) }
func refundKey(id int64) string { return fmt.Sprintf("ride-%d-refund", id) }

// settle charges a completed ride, on its actor. The charge is tried up to
// Payment.Attempts times with the same idempotency key. When every attempt
// fails the ride is compensated: a refund is asked for whatever the charge
// key may have taken (an attempt whose answer was lost may have gone
// through), also up to Payment.Attempts times, and the ride moves to
// payment_failed with the reason. The driver was already released when the
// ride completed. A ride whose paid write fails stays completed; completing
// it again charges again under the same key, which the provider answers
// with the same receipt.
func (s *Service) settle(ctx context.Context, r Ride) (Ride, error) {
	key := chargeKey(r.ID)
	var lastErr error
	for attempt := range s.cfg.Payment.Attempts {
		if attempt > 0 {
			s.backoff()
		}
		rcpt, err := s.charge(ctx, r, key)
		if err == nil {
			r.ReceiptID = rcpt.ID
			return s.apply(ctx, r, lifecycle.Paid, "")
		}
		lastErr = err
		s.tel.logf(ctx, slog.LevelWarn, "charge failed", "ride_id", r.ID, "attempt", attempt+1, "err", err)
	}

	reason := fmt.Sprintf("payment failed after %d attempts: %v", s.cfg.Payment.Attempts, lastErr)
	var refundErr error
	for attempt := range s.cfg.Payment.Attempts {
		if attempt > 0 {
			s.backoff()
		}
		if refundErr = s.refund(ctx, r, key); refundErr == nil {
			break
		}
	}
	if refundErr != nil {
		s.tel.inc(s.tel.refundFailed)
		reason += fmt.Sprintf("; refund of any partial charge failed: %v", refundErr)
		s.tel.logf(ctx, slog.LevelError, "ride compensation incomplete: refund failed", "ride_id", r.ID, "err", refundErr)
	} else {
		s.tel.inc(s.tel.refunded)
		reason += "; any partial charge was refunded"
	}
	return s.apply(ctx, r, lifecycle.PaymentFailed, reason)
}

func (s *Service) charge(ctx context.Context, r Ride, key string) (Receipt, error) {
	ctx, span := s.tel.span(ctx, "payment.Charge", clientSpan, trace.WithAttributes(spanAttrRide(r.ID)))
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Payment.Timeout)
	rcpt, err := s.deps.Payer.Charge(ctx, ChargeRequest{
		RideID: r.ID, RiderID: r.RiderID, AmountMinor: r.Price.AmountMinor, Currency: r.Price.Currency, IdempotencyKey: key,
	})
	cancel()
	if err == nil && rcpt.ID == "" {
		err = errors.New("the payer answered without a receipt id")
	}
	endSpan(span, err)
	return rcpt, err
}

func (s *Service) refund(ctx context.Context, r Ride, key string) error {
	ctx, span := s.tel.span(ctx, "payment.Refund", clientSpan, trace.WithAttributes(spanAttrRide(r.ID)))
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Payment.Timeout)
	err := s.deps.Payer.Refund(ctx, RefundRequest{RideID: r.ID, ChargeKey: key, IdempotencyKey: refundKey(r.ID)})
	cancel()
	endSpan(span, err)
	return err
}

// backoff waits between payment attempts (the actor's context has no
// cancellation; the wait is bounded by Payment.Backoff).
func (s *Service) backoff() {
	if d := s.cfg.Payment.Backoff; d > 0 {
		time.Sleep(d)
	}
}
