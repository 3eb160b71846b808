package location

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

// DefaultGroup is the consumer group that feeds the dispatch index.
const DefaultGroup = "dispatch-index"

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Region labels metrics and logs. Required.
	Region string
	// Group is the consumer group; default DefaultGroup.
	Group string
	// Name is this consumer's name within the group; default
	// "<hostname>-<pid>". Give every process its own name: a restarted one
	// reclaims its predecessor's pending messages after the claim timeout.
	Name string
	// Batch is the most messages read at once; default 128.
	Batch int
	// Block is how long one read waits for new messages; default 1 s. It
	// bounds how long Run takes to notice a cancelled context on Redis.
	Block time.Duration
	// PausePoll is how often a paused consumer checks whether it may go
	// on; default 100 ms.
	PausePoll time.Duration
	// MaxBackoff caps the wait between retries after a stream error (the
	// wait doubles from 100 ms); default 5 s.
	MaxBackoff time.Duration
	// AckTimeout bounds acknowledging a batch; default 2 s.
	AckTimeout time.Duration

	// Faults is the region's fault injector: ConsumerPaused and Down pause
	// the loop, injected latency slows it and injected errors skip reads.
	Faults *faults.Injector
	// Logger receives the consumer's logs; default slog.Default's handler.
	Logger *slog.Logger
	// TracerProvider makes the consume spans; default no-op.
	TracerProvider trace.TracerProvider
	// Metrics are the location metrics; default unregistered ones.
	Metrics *Metrics
}

func (c *ConsumerConfig) defaults() {
	setDefault(&c.Group, DefaultGroup)
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = host + "-" + strconv.Itoa(os.Getpid())
	}
	setDefault(&c.Batch, 128)
	setDefault(&c.Block, time.Second)
	setDefault(&c.PausePoll, 100*time.Millisecond)
	setDefault(&c.MaxBackoff, 5*time.Second)
	setDefault(&c.AckTimeout, 2*time.Second)
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
}

// Validate checks the configuration after defaults are applied.
func (c ConsumerConfig) Validate() error {
	switch {
	case c.Region == "":
		return errors.New("location consumer: the region is required")
	case c.Batch < 1:
		return fmt.Errorf("location consumer: batch is %d; it must be at least 1", c.Batch)
	case c.Block <= 0 || c.PausePoll <= 0 || c.MaxBackoff <= 0 || c.AckTimeout <= 0:
		return errors.New("location consumer: block, pause poll, max backoff and ack timeout must be positive")
	}
	return nil
}

// groupReader is what a Consumer needs of a Stream.
type groupReader interface {
	CreateGroup(ctx context.Context, group string) error
	Read(ctx context.Context, group, consumer string, max int, wait time.Duration) ([]Message, error)
	Ack(ctx context.Context, group string, ids ...string) error
}

// positionSink receives consumed positions; *Index is one.
type positionSink interface {
	Update(p Position)
}

// Consumer is one member of a consumer group: it reads positions from the
// stream, applies them to the sink (the dispatch index) and acknowledges
// them. A message whose consumer dies before acknowledging is reclaimed by
// another member after the stream's claim timeout; applying a position
// twice is harmless because the index keeps the newest.
type Consumer struct {
	cfg    ConsumerConfig
	stream groupReader
	sink   positionSink
	log    *slog.Logger
	tracer trace.Tracer
	prop   propagation.TraceContext
	m      *Metrics
	errLog *logLimiter

	paused atomic.Int64 // pause polls seen, for tests and debugging
}

// NewConsumer returns a consumer of stream's group that feeds sink.
func NewConsumer(cfg ConsumerConfig, stream groupReader, sink positionSink) (*Consumer, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		m, err := NewMetrics(nil, cfg.Region, streamName(stream), cfg.Group)
		if err != nil {
			return nil, err
		}
		cfg.Metrics = m
	}
	log := componentLogger(cfg.Logger, cfg.Region, "consumer").With("group", cfg.Group, "consumer", cfg.Name)
	return &Consumer{
		cfg: cfg, stream: stream, sink: sink, log: log, m: cfg.Metrics,
		tracer: cfg.TracerProvider.Tracer(tracerName),
		errLog: &logLimiter{log: log, every: 5 * time.Second},
	}, nil
}

// Run creates the group if needed, then consumes until ctx ends and returns
// nil. Stream errors are logged and retried with backoff.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.createGroup(ctx) {
		return nil
	}
	failures := 0
	for ctx.Err() == nil {
		if c.cfg.Faults.ConsumerPaused() || c.cfg.Faults.Down() {
			c.paused.Add(1)
			sleep(ctx, c.cfg.PausePoll)
			continue
		}
		if err := c.cfg.Faults.Apply(ctx, ServiceName); err != nil {
			sleep(ctx, c.cfg.PausePoll) // an injected error: this poll fails
			continue
		}
		msgs, err := c.stream.Read(ctx, c.cfg.Group, c.cfg.Name, c.cfg.Batch, c.cfg.Block)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrStreamClosed) {
				return fmt.Errorf("location consumer %s: %w", c.cfg.Name, err)
			}
			c.errLog.warn("reading the location stream failed; retrying", "err", err)
			if errors.Is(err, ErrUnknownGroup) { // the stream was deleted or Redis restarted empty
				_ = c.stream.CreateGroup(ctx, c.cfg.Group)
			}
			sleep(ctx, backoff(failures, 100*time.Millisecond, c.cfg.MaxBackoff))
			failures++
			continue
		}
		failures = 0
		c.handle(ctx, msgs)
	}
	return nil
}

// createGroup retries CreateGroup with backoff until it succeeds (true) or
// ctx ends (false).
func (c *Consumer) createGroup(ctx context.Context) bool {
	for attempt := 0; ; attempt++ {
		err := c.stream.CreateGroup(ctx, c.cfg.Group)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.errLog.warn("creating the consumer group failed; retrying", "err", err)
		if !sleep(ctx, backoff(attempt, 100*time.Millisecond, c.cfg.MaxBackoff)) {
			return false
		}
	}
}

// handle applies a batch to the sink, each message in a consume span that
// continues the position's trace, and acknowledges it.
func (c *Consumer) handle(ctx context.Context, msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	ids := make([]string, 0, len(msgs))
	applied, redelivered := 0, 0
	for _, msg := range msgs {
		ids = append(ids, msg.ID)
		if msg.Err != nil {
			c.errLog.warn("dropping an undecodable stream entry", "id", msg.ID, "err", msg.Err)
			continue
		}
		sctx := ctx
		if msg.Position.TraceParent != "" {
			sctx = c.prop.Extract(ctx, propagation.MapCarrier{"traceparent": msg.Position.TraceParent})
		}
		_, span := c.tracer.Start(sctx, "location.consume", trace.WithSpanKind(trace.SpanKindConsumer))
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("carpool.driver_id", msg.Position.DriverID),
				attribute.String("messaging.message.id", msg.ID),
				attribute.String("messaging.consumer.group.name", c.cfg.Group),
				attribute.Bool("carpool.redelivered", msg.Redelivered))
		}
		c.sink.Update(msg.Position)
		span.End()
		applied++
		if msg.Redelivered {
			redelivered++
		}
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.AckTimeout)
	defer cancel()
	if err := c.stream.Ack(actx, c.cfg.Group, ids...); err != nil {
		// Not fatal: the messages are redelivered after the claim timeout
		// and the index ignores positions it already has.
		c.errLog.warn("acknowledging positions failed; they will be redelivered", "messages", len(ids), "err", err)
		return
	}
	c.m.consumed.Add(float64(applied))
	c.m.redelivered.Add(float64(redelivered))
}

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff returns the attempt's wait: base doubling up to limit, with the
// upper half jittered ("equal jitter") so reconnecting clients spread out.
func backoff(attempt int, base, limit time.Duration) time.Duration {
	d := base
	for i := 0; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}
