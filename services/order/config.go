package order

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

// Config configures a Service. A zero field takes the default shown; New
// fills them in and then checks the fields against each other.
type Config struct {
	// Region is the region this service runs in (required). It labels
	// every metric and log line and is stamped on the rides it creates.
	Region string

	// Logger receives structured logs; nil discards them. The service adds
	// region and service attributes, and trace_id and span_id when a span
	// is active.
	Logger *slog.Logger
	// Registerer registers the service's metrics; nil uses a private
	// registry (the metrics are then not exposed).
	Registerer prometheus.Registerer
	// TracerProvider makes the spans; nil means no tracing.
	TracerProvider trace.TracerProvider
	// Faults is the region's fault injector: requests go through its
	// Middleware("order"), each dispatch attempt through Apply("dispatch").
	// nil injects nothing.
	Faults *faults.Injector
	// Now is the clock (the fault injector's Clock in a region, a fake in
	// tests); nil means time.Now.
	Now func() time.Time
	// DisableInstrumentation turns off metrics, spans and exemplars (trace
	// context is then not extracted either). For the overhead benchmark.
	DisableInstrumentation bool

	// MaxBodyBytes bounds a request body; larger is 413. Default 16 KiB.
	MaxBodyBytes int64
	// QuoteTimeout bounds the call to pricing on creation. Default 300ms.
	QuoteTimeout time.Duration
	// StoreTimeout bounds each store call. Default 1s.
	StoreTimeout time.Duration
	// MaxActors bounds the rides with a transition in flight at once; past
	// it a transition is refused with 503. Default 10000.
	MaxActors int
	// MailboxSize bounds the transitions waiting for one ride; past it a
	// transition is refused with 503. Default 64.
	MailboxSize int
	// IdempotencyTTL is how long an Idempotency-Key is remembered in
	// process. Default 24h.
	IdempotencyTTL time.Duration
	// IdempotencyMaxKeys bounds the keys remembered in process (oldest
	// forgotten first; a store with a KeyIndex still finds them).
	// Default 100000.
	IdempotencyMaxKeys int

	Dispatch DispatchConfig
	Payment  PaymentConfig
}

// DispatchConfig configures driver matching.
type DispatchConfig struct {
	// Workers is the number of goroutines matching drivers. Default 8.
	Workers int
	// QueueSize bounds the rides waiting for a worker (new and retried).
	// When it is full a new ride is refused at once with 503 and
	// Retry-After, before anything is written. Default 1024.
	QueueSize int
	// Candidates is how many nearby drivers one attempt asks the index
	// for and tries to claim. Default 5.
	Candidates int
	// NearbyTimeout bounds one call to the driver index. Default 300ms.
	NearbyTimeout time.Duration
	// MatchWait is how long creating a ride waits for the first match
	// attempt, so that the answer usually carries the driver. A negative
	// value answers at once (state requested). Default 200ms.
	MatchWait time.Duration
	// RetryInterval is the wait between attempts for a ride no driver was
	// found for. Default 2s.
	RetryInterval time.Duration
	// MaxAttempts and MaxWait bound the search: after MaxAttempts attempts
	// or once MaxWait has passed since creation, whichever comes first,
	// the ride is cancelled with reason "no driver available".
	// Defaults 5 and 30s.
	MaxAttempts int
	MaxWait     time.Duration
	// Tick is how often Run moves due retries into the queue. Default
	// 100ms; it must not exceed RetryInterval.
	Tick time.Duration
}

// PaymentConfig configures charging on completion.
type PaymentConfig struct {
	// Attempts is how many times a charge is tried, with the same
	// idempotency key, before the ride is compensated. Default 3.
	Attempts int
	// Timeout bounds each charge or refund call. Default 2s.
	Timeout time.Duration
	// Backoff is the wait between attempts; negative means none.
	// Default 100ms.
	Backoff time.Duration
}

func (c *Config) defaults() {
	setDefault(&c.MaxBodyBytes, 16<<10)
	setDefault(&c.QuoteTimeout, 300*time.Millisecond)
	setDefault(&c.StoreTimeout, time.Second)
	setDefault(&c.MaxActors, 10000)
	setDefault(&c.MailboxSize, 64)
	setDefault(&c.IdempotencyTTL, 24*time.Hour)
	setDefault(&c.IdempotencyMaxKeys, 100000)
	d := &c.Dispatch
	setDefault(&d.Workers, 8)
	setDefault(&d.QueueSize, 1024)
	setDefault(&d.Candidates, 5)
	setDefault(&d.NearbyTimeout, 300*time.Millisecond)
	setDefault(&d.MatchWait, 200*time.Millisecond)
	setDefault(&d.RetryInterval, 2*time.Second)
	setDefault(&d.MaxAttempts, 5)
	setDefault(&d.MaxWait, 30*time.Second)
	setDefault(&d.Tick, 100*time.Millisecond)
	p := &c.Payment
	setDefault(&p.Attempts, 3)
	setDefault(&p.Timeout, 2*time.Second)
	setDefault(&p.Backoff, 100*time.Millisecond)
}

func setDefault[T int | int64 | time.Duration](p *T, v T) {
	if *p == 0 {
		*p = v
	}
}

// Validate checks the fields, and the fields against each other. Call it
// after the defaults are filled (New does both).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Region == "" {
		bad("region is required")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_body_bytes", c.MaxBodyBytes}, {"max_actors", int64(c.MaxActors)}, {"mailbox_size", int64(c.MailboxSize)},
		{"idempotency_max_keys", int64(c.IdempotencyMaxKeys)}, {"dispatch.workers", int64(c.Dispatch.Workers)},
		{"dispatch.queue_size", int64(c.Dispatch.QueueSize)}, {"dispatch.candidates", int64(c.Dispatch.Candidates)},
		{"dispatch.max_attempts", int64(c.Dispatch.MaxAttempts)}, {"payment.attempts", int64(c.Payment.Attempts)},
	} {
		if f.v <= 0 {
			bad("%s is %d; it must be positive", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"quote_timeout", c.QuoteTimeout}, {"store_timeout", c.StoreTimeout}, {"idempotency_ttl", c.IdempotencyTTL},
		{"dispatch.nearby_timeout", c.Dispatch.NearbyTimeout}, {"dispatch.retry_interval", c.Dispatch.RetryInterval},
		{"dispatch.max_wait", c.Dispatch.MaxWait}, {"dispatch.tick", c.Dispatch.Tick}, {"payment.timeout", c.Payment.Timeout},
	} {
		if f.v <= 0 {
			bad("%s is %s; it must be positive", f.name, f.v)
		}
	}
	if c.Dispatch.Tick > c.Dispatch.RetryInterval {
		bad("dispatch.tick (%s) must not exceed dispatch.retry_interval (%s), or retries run late", c.Dispatch.Tick, c.Dispatch.RetryInterval)
	}
	if c.Dispatch.MaxWait < c.Dispatch.RetryInterval {
		bad("dispatch.max_wait (%s) must be at least dispatch.retry_interval (%s), or no retry ever runs", c.Dispatch.MaxWait, c.Dispatch.RetryInterval)
	}
	if c.Dispatch.NearbyTimeout >= c.Dispatch.MaxWait {
		bad("dispatch.nearby_timeout (%s) must be below dispatch.max_wait (%s)", c.Dispatch.NearbyTimeout, c.Dispatch.MaxWait)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("order config: %w", err)
	}
	return nil
}
