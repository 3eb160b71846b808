// Package replication ships each region's outbox to the other regions. A
// Replicator serves one (source → target) region pair: it pulls the
// source's outbox events in order, from its remembered offset, and applies
// them in the target store, which resolves concurrent writes with
// last-writer-wins on the hybrid logical clock. After a stall or a restart
// it resumes exactly where it stopped.
//
// The source is read in process (LocalSource) or over HTTP (HTTPSource
// against the source region's OutboxHandler), which is what separate
// processes use. Each event carries the W3C trace context of its write, so
// applying it continues the write's trace in the target region.
package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/carpoolsla/carpoolsla/services/hlc"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// ServiceName is the service label and fault-injection name of
// replication.
const ServiceName = "replication"

// Target is where a replicator applies events; *store.Memory and every
// store.Store satisfy it.
type Target interface {
	Region() string
	Apply(ctx context.Context, ev store.Event) (store.ApplyResult, error)
}

// Stall reports whether the target region's replication is stalled;
// *faults.Injector satisfies it (a nil *faults.Injector never stalls).
type Stall interface {
	ReplicationStalled() bool
}

// Defaults of Config.
const (
	DefaultBatchSize  = 256
	DefaultPollWait   = 2 * time.Second
	DefaultStallPoll  = 200 * time.Millisecond
	DefaultRetryMin   = 100 * time.Millisecond
	DefaultRetryMax   = 5 * time.Second
	tracerName        = "github.com/carpoolsla/carpoolsla/services/replication"
	applySpanName     = "replication.apply"
	maxEventsPerBatch = store.MaxScanLimit
)

// Config configures a Replicator.
type Config struct {
	// SourceRegion names the source region. Required.
	SourceRegion string
	// Source reads the source region's outbox. Required.
	Source Source
	// Target is the target region's store. Required.
	Target Target
	// Stall is consulted before every event: while it reports a stall the
	// replicator applies nothing (events pile up in the source's outbox
	// and the backlog grows). Pass the target region's *faults.Injector;
	// nil never stalls.
	Stall Stall
	// Offsets remembers the pair's offset; default NewMemOffsets().
	Offsets OffsetStore
	// Metrics are the shared replication metrics; default unregistered.
	Metrics *Metrics
	// TracerProvider traces each applied event; default no-op.
	TracerProvider trace.TracerProvider
	// Logger receives errors; default discards.
	Logger *slog.Logger
	// OnApply is called after an event changed the target's state (it won
	// last-writer-wins), with the trace context of the apply and the
	// record now held; the ride cache invalidates there. It runs on the
	// replicator's goroutine: keep it short.
	OnApply func(ctx context.Context, rec store.Record)
	// BatchSize is the most events pulled at once; default
	// DefaultBatchSize.
	BatchSize int
	// PollWait is how long Run's pull waits for new events (a long poll)
	// before it pulls again; default DefaultPollWait. Over HTTP it must
	// not exceed the source handler's MaxWait.
	PollWait time.Duration
	// StallPoll is how often Run checks whether a stall has ended (and
	// refreshes the backlog meanwhile); default DefaultStallPoll.
	StallPoll time.Duration
	// RetryMin and RetryMax bound the exponential back-off after a failed
	// pull or apply; defaults DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
}

func (c *Config) defaults() {
	if c.Offsets == nil {
		c.Offsets = NewMemOffsets()
	}
	if c.Metrics == nil {
		c.Metrics, _ = NewMetrics(nil) // cannot fail without a registry
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.PollWait == 0 {
		c.PollWait = DefaultPollWait
	}
	if c.StallPoll == 0 {
		c.StallPoll = DefaultStallPoll
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
}

// Validate checks the configuration after defaults are filled in.
func (c Config) Validate() error {
	switch {
	case c.SourceRegion == "":
		return errors.New("replication config: source region is required")
	case c.Source == nil:
		return errors.New("replication config: source is required")
	case c.Target == nil:
		return errors.New("replication config: target is required")
	case c.Target.Region() == c.SourceRegion:
		return fmt.Errorf("replication config: source and target are both region %q", c.SourceRegion)
	case c.BatchSize < 1 || c.BatchSize > maxEventsPerBatch:
		return fmt.Errorf("replication config: batch size is %d; it must be in [1, %d]", c.BatchSize, maxEventsPerBatch)
	case c.PollWait < 0 || c.StallPoll <= 0:
		return fmt.Errorf("replication config: poll wait (%v) must not be negative and stall poll (%v) must be positive", c.PollWait, c.StallPoll)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("replication config: retry back-off must satisfy 0 < min (%v) <= max (%v)", c.RetryMin, c.RetryMax)
	}
	return nil
}

// Errors a step reports.
var (
	// ErrStalled: the target region's replication is stalled; nothing was
	// applied.
	ErrStalled = errors.New("replication stalled by fault injection")
	// ErrGap: the source returned an event that does not follow the
	// offset (its outbox lost events, or belongs to another incarnation).
	ErrGap = errors.New("replication gap: the source's next event does not follow the applied offset")
	// ErrWrongSource: the source answered for another region than
	// configured (a wiring mistake).
	ErrWrongSource = errors.New("replication source answered for another region")
)

// Stats are a replicator's running counts.
type Stats struct {
	// Offset is the sequence number of the last source event applied.
	Offset uint64
	// HighWater is the source's high-water mark at the last pull.
	HighWater uint64
	// Applied counts events applied (won or lost last-writer-wins);
	// Conflicts the applied events that were concurrent writes; Won those
	// that changed the target; Duplicates events the target had already
	// applied (not counted as applied).
	Applied, Conflicts, Won, Duplicates uint64
	// Rejected counts apply attempts refused because the event's HLC
	// timestamp was too far ahead of the target's clock.
	Rejected uint64
	// LastError is the last step's error, "" after a successful step.
	LastError string
}

// Backlog is the number of source events not yet applied.
func (s Stats) Backlog() uint64 { return s.HighWater - min(s.Offset, s.HighWater) }

// Replicator replicates one (source → target) region pair.
type Replicator struct {
	cfg    Config
	target string
	log    *slog.Logger
	tracer trace.Tracer
	m      pairMetrics
	attrs  []attribute.KeyValue

	stepMu sync.Mutex // one step at a time; guards loaded
	loaded bool

	offset, highWater                         atomic.Uint64
	applied, conflicts, won, dups, rejections atomic.Uint64
	lastErr                                   atomic.Pointer[string]
}

// New returns the replicator of a region pair. It does no I/O: the offset
// is loaded at the first step.
func New(cfg Config) (*Replicator, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	target := cfg.Target.Region()
	return &Replicator{
		cfg:    cfg,
		target: target,
		log:    cfg.Logger.With("service", ServiceName, "region", target, "source_region", cfg.SourceRegion, "target_region", target),
		tracer: cfg.TracerProvider.Tracer(tracerName),
		m:      cfg.Metrics.pair(cfg.SourceRegion, target),
		attrs: []attribute.KeyValue{
			attribute.String("replication.source_region", cfg.SourceRegion),
			attribute.String("replication.target_region", target),
		},
	}, nil
}

// Stats returns the replicator's running counts.
func (r *Replicator) Stats() Stats {
	s := Stats{
		Offset: r.offset.Load(), HighWater: r.highWater.Load(),
		Applied: r.applied.Load(), Conflicts: r.conflicts.Load(), Won: r.won.Load(),
		Duplicates: r.dups.Load(), Rejected: r.rejections.Load(),
	}
	if p := r.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// Step pulls one batch without waiting and applies it. It returns how many
// events it applied; ErrStalled while the target's replication is
// stalled; an error wrapping hlc.ErrRemoteAhead when an event's timestamp
// is too far ahead of the target's clock (the pair holds at that event and
// a later step retries it). Tests drive replicators with Step; Run loops
// over it.
func (r *Replicator) Step(ctx context.Context) (int, error) { return r.step(ctx, 0) }

func (r *Replicator) step(ctx context.Context, wait time.Duration) (int, error) {
	r.stepMu.Lock()
	defer r.stepMu.Unlock()
	n, err := r.stepLocked(ctx, wait)
	if err != nil {
		msg := err.Error()
		r.lastErr.Store(&msg)
	} else {
		r.lastErr.Store(nil)
	}
	return n, err
}

func (r *Replicator) stepLocked(ctx context.Context, wait time.Duration) (int, error) {
	if !r.loaded {
		off, err := r.cfg.Offsets.LoadOffset(ctx, r.cfg.SourceRegion, r.target)
		if err != nil {
			return 0, fmt.Errorf("loading the offset of %s→%s: %w", r.cfg.SourceRegion, r.target, err)
		}
		r.offset.Store(off)
		r.loaded = true
	}
	offset := r.offset.Load()
	if r.stalled() {
		// Apply nothing, but keep the backlog gauge honest.
		if b, err := r.cfg.Source.Pull(ctx, offset, 0, 0); err == nil {
			r.setHighWater(b.HighWater)
		}
		return 0, ErrStalled
	}
	b, err := r.cfg.Source.Pull(ctx, offset, r.cfg.BatchSize, wait)
	if err != nil {
		return 0, fmt.Errorf("pulling the outbox of %s from offset %d: %w", r.cfg.SourceRegion, offset, err)
	}
	if b.Region != r.cfg.SourceRegion {
		return 0, fmt.Errorf("pulling the outbox of %s: the source is region %q: %w", r.cfg.SourceRegion, b.Region, ErrWrongSource)
	}
	n := 0
	var stepErr error
	for _, ev := range b.Events {
		if r.stalled() {
			stepErr = ErrStalled
			break
		}
		if ev.Seq != offset+1 {
			stepErr = fmt.Errorf("applying the outbox of %s: got event %d after offset %d: %w", r.cfg.SourceRegion, ev.Seq, offset, ErrGap)
			break
		}
		if err := r.apply(ctx, ev); err != nil {
			stepErr = err
			break
		}
		offset = ev.Seq
		n++
	}
	if n > 0 {
		r.offset.Store(offset)
		if err := r.cfg.Offsets.SaveOffset(ctx, r.cfg.SourceRegion, r.target, offset); err != nil && stepErr == nil {
			// The target store dedupes by sequence number, so events
			// re-pulled after a lost save are not applied twice.
			stepErr = fmt.Errorf("saving the offset %d of %s→%s: %w", offset, r.cfg.SourceRegion, r.target, err)
		}
	}
	r.setHighWater(b.HighWater)
	return n, stepErr
}

func (r *Replicator) stalled() bool {
	return r.cfg.Stall != nil && r.cfg.Stall.ReplicationStalled()
}

func (r *Replicator) setHighWater(hw uint64) {
	r.highWater.Store(hw)
	r.m.backlog.Set(float64(hw - min(r.offset.Load(), hw)))
}

// apply applies one event in its own span, a child of the write's trace.
func (r *Replicator) apply(ctx context.Context, ev store.Event) error {
	if len(ev.Trace) > 0 {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier(ev.Trace))
	}
	ctx, span := r.tracer.Start(ctx, applySpanName, trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	recording := span.IsRecording()
	if recording {
		span.SetAttributes(r.attrs...)
		span.SetAttributes(
			attribute.String("replication.table", ev.Record.Table),
			attribute.String("replication.key", ev.Record.Key),
			attribute.Int64("replication.seq", int64(ev.Seq)),
			attribute.String("replication.version", ev.Record.Version.String()),
		)
	}
	res, err := r.cfg.Target.Apply(ctx, ev)
	if err != nil {
		if errors.Is(err, hlc.ErrRemoteAhead) {
			r.rejections.Add(1)
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, "apply failed")
		return fmt.Errorf("applying event %d of %s in %s: %w", ev.Seq, r.cfg.SourceRegion, r.target, err)
	}
	if recording {
		span.SetAttributes(attribute.String("replication.outcome", res.Outcome.String()), attribute.Bool("replication.conflict", res.Conflict))
	}
	if res.Outcome == store.Duplicate {
		r.dups.Add(1)
		return nil
	}
	r.applied.Add(1)
	r.m.applied.Inc()
	if res.Conflict {
		r.conflicts.Add(1)
		r.m.conflicts.Inc()
	}
	r.m.lastApplied.Set(float64(ev.Record.Version.WallMS) / 1000)
	if res.Outcome == store.Won {
		r.won.Add(1)
		if r.cfg.OnApply != nil {
			r.cfg.OnApply(ctx, res.Current)
		}
	}
	return nil
}

// Run replicates until ctx ends, then returns nil. It long-polls the
// source for new events; while the target is stalled it checks every
// StallPoll; after an error (source unreachable, an event refused as too
// far ahead, a gap) it logs, backs off exponentially between RetryMin and
// RetryMax and tries again from the same offset, so nothing is skipped.
func (r *Replicator) Run(ctx context.Context) error {
	backoff := r.cfg.RetryMin
	for ctx.Err() == nil {
		_, err := r.step(ctx, r.cfg.PollWait)
		var pause time.Duration
		switch {
		case err == nil:
			backoff = r.cfg.RetryMin
			continue
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrStalled):
			pause = r.cfg.StallPoll
		default:
			r.log.Warn("replication step failed; retrying", "err", err, "offset", r.offset.Load(), "retry_in", backoff)
			pause = backoff
			backoff = min(2*backoff, r.cfg.RetryMax)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}
