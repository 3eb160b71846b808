package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/carpoolsla/carpoolsla/services/hlc"
	"github.com/carpoolsla/carpoolsla/services/store"
)

func TestConfigValidation(t *testing.T) {
	tt := newTrueTime()
	a, b := newRegion(t, "a", tt, nil), newRegion(t, "b", tt, nil)
	base := Config{SourceRegion: "a", Source: NewLocalSource(a.store), Target: b.store}
	cases := map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"A pair without a source region is refused.": {func(c *Config) { c.SourceRegion = "" }, "source region is required"},
		"A pair without a source is refused.":        {func(c *Config) { c.Source = nil }, "source is required"},
		"A pair without a target is refused.":        {func(c *Config) { c.Target = nil }, "target is required"},
		"A region cannot replicate to itself.":       {func(c *Config) { c.Target = a.store }, "both region"},
		"A batch size over the outbox limit is refused.": {func(c *Config) { c.BatchSize = store.MaxScanLimit + 1 },
			"batch size"},
		"A retry maximum below the minimum is refused.": {func(c *Config) { c.RetryMin, c.RetryMax = time.Second, time.Millisecond },
			"retry back-off"},
		"A negative poll wait is refused.":            {func(c *Config) { c.PollWait = -time.Second }, "poll wait"},
		"Defaults make a source and a target enough.": {func(c *Config) {}, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := base
			c.mutate(&cfg)
			_, err := New(cfg)
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// A stalled target applies nothing while its backlog grows; once the
// stall ends it applies everything, and the metrics say so.
func TestStallHoldsAndResumes(t *testing.T) {
	tt := newTrueTime()
	reg := prometheus.NewRegistry()
	metrics, _ := NewMetrics(reg)
	a, b := newRegion(t, "a", tt, nil), newRegion(t, "b", tt, nil)
	var invalidated []string
	r := pair(t, a, b, func(c *Config) {
		c.Metrics, c.BatchSize = metrics, 3
		c.OnApply = func(_ context.Context, rec store.Record) { invalidated = append(invalidated, rec.Key) }
	})
	for i := range 5 {
		_, _ = a.store.Put(ctx, "rides", fmt.Sprint("r", i), []byte(`{}`))
	}
	b.stall(t, true)
	if n, err := r.Step(ctx); n != 0 || !errors.Is(err, ErrStalled) {
		t.Fatalf("stalled step = %d, %v", n, err)
	}
	_, _ = a.store.Put(ctx, "rides", "r5", []byte(`{}`))
	_, _ = r.Step(ctx)
	if got := metricValue(t, reg, "carpool_replication_backlog_events", pairLabels("a", "b")); got != 6 {
		t.Fatalf("backlog while stalled = %v, want 6", got)
	}
	if s := r.Stats(); s.Applied != 0 || s.Backlog() != 6 || !strings.Contains(s.LastError, "stalled") {
		t.Fatalf("stats while stalled: %+v", s)
	}
	if len(b.store.Dump()) != 0 {
		t.Fatal("a stalled target applied events")
	}
	b.stall(t, false)
	drain(t, r)
	if s := r.Stats(); s.Applied != 6 || s.Offset != 6 || s.Backlog() != 0 || s.LastError != "" {
		t.Fatalf("stats after the stall: %+v", s)
	}
	if got := metricValue(t, reg, "carpool_replication_applied_total", pairLabels("a", "b")); got != 6 {
		t.Fatalf("applied = %v", got)
	}
	if got := metricValue(t, reg, "carpool_replication_backlog_events", pairLabels("a", "b")); got != 0 {
		t.Fatalf("backlog = %v", got)
	}
	want := float64(tt.ms.Load()) / 1000
	if got := metricValue(t, reg, "carpool_replication_last_applied_timestamp_seconds", pairLabels("a", "b")); got != want {
		t.Fatalf("last applied = %v, want %v", got, want)
	}
	if strings.Join(invalidated, ",") != "r0,r1,r2,r3,r4,r5" {
		t.Fatalf("OnApply saw %v", invalidated)
	}
	if diff := sameState(a.store, b.store); diff != "" {
		t.Fatal(diff)
	}
}

// Conflicts are counted once per applied concurrent write and OnApply
// only sees writes that changed the target.
func TestConflictsAreCounted(t *testing.T) {
	tt := newTrueTime()
	reg := prometheus.NewRegistry()
	metrics, _ := NewMetrics(reg)
	a, b := newRegion(t, "a", tt, nil), newRegion(t, "b", tt, nil)
	var hooks int
	ab := pair(t, a, b, func(c *Config) { c.Metrics = metrics; c.OnApply = func(context.Context, store.Record) { hooks++ } })
	ba := pair(t, b, a, func(c *Config) { c.Metrics = metrics })
	_, _ = a.store.Put(ctx, "rides", "k", []byte(`"a"`)) // 1764028800000.0@a
	_, _ = b.store.Put(ctx, "rides", "k", []byte(`"b"`)) // 1764028800000.0@b: wins the tie
	drain(t, ab, ba)
	if diff := sameState(a.store, b.store); diff != "" {
		t.Fatal(diff)
	}
	if got, _, _ := a.store.Get(ctx, "rides", "k"); string(got.Value) != `"b"` {
		t.Fatalf("the tie went to %s", got.Value)
	}
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}} {
		if got := metricValue(t, reg, "carpool_replication_conflicts_total", pairLabels(p[0], p[1])); got != 1 {
			t.Fatalf("%s→%s conflicts = %v, want 1", p[0], p[1], got)
		}
	}
	if hooks != 0 {
		t.Fatalf("OnApply ran %d times for a write that lost", hooks)
	}
	// A causal overwrite is not a conflict.
	_, _ = a.store.Put(ctx, "rides", "k", []byte(`"a2"`))
	drain(t, ab, ba)
	if got := metricValue(t, reg, "carpool_replication_conflicts_total", pairLabels("a", "b")); got != 1 || hooks != 1 {
		t.Fatalf("after a causal overwrite: conflicts %v, hooks %d", got, hooks)
	}
}

// offsetsLosingSaves is an OffsetStore that drops saves after a point, as
// a crash between applying a batch and saving its offset would.
type offsetsLosingSaves struct {
	*MemOffsets
	drop atomic.Bool
}

func (o *offsetsLosingSaves) SaveOffset(ctx context.Context, s, t string, off uint64) error {
	if o.drop.Load() {
		return nil
	}
	return o.MemOffsets.SaveOffset(ctx, s, t, off)
}

// gatedSource serves only the events up to a movable gate, so a test can
// stop a running replicator at a known point.
type gatedSource struct {
	s    Source
	gate atomic.Uint64
}

func (g *gatedSource) Pull(ctx context.Context, offset uint64, limit int, wait time.Duration) (Batch, error) {
	open := g.gate.Load()
	if offset >= open {
		limit = 0
	} else {
		limit = min(limit, int(open-offset))
	}
	b, err := g.s.Pull(ctx, offset, limit, 0)
	if err == nil && len(b.Events) == 0 && wait > 0 {
		t := time.NewTimer(time.Millisecond) // idle like a long poll, briefly
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return b, err
}

// A replicator stopped mid-stream resumes from its stored offset: nothing
// is lost and nothing applied twice, even when the last offset saves were
// lost (the target store recognises events it already applied).
func TestResumeAfterStop(t *testing.T) {
	cases := map[string]struct{ loseSaves bool }{
		"A clean stop resumes at the saved offset.":                   {false},
		"A crash that lost the last offset saves applies none twice.": {true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tt := newTrueTime()
			reg := prometheus.NewRegistry()
			metrics, _ := NewMetrics(reg)
			a, b := newRegion(t, "a", tt, nil), newRegion(t, "b", tt, nil)
			const total = 500
			for i := range total {
				_, _ = a.store.Put(ctx, "rides", fmt.Sprint("r", i%97), fmt.Appendf(nil, `{"n":%d}`, i))
			}
			offsets := &offsetsLosingSaves{MemOffsets: NewMemOffsets()}
			src := &gatedSource{s: NewLocalSource(a.store)}
			src.gate.Store(250)
			mk := func() *Replicator {
				return pair(t, a, b, func(cfg *Config) {
					cfg.Source, cfg.Offsets, cfg.Metrics, cfg.BatchSize = src, offsets, metrics, 7
				})
			}
			first := mk()
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- first.Run(rctx) }()
			waitFor(t, 10*time.Second, "the first replicator to reach offset 250", func() bool { return first.Stats().Offset == 250 })
			if c.loseSaves {
				offsets.drop.Store(true)
				src.gate.Store(350)
				waitFor(t, 10*time.Second, "unsaved batches up to offset 350", func() bool { return first.Stats().Offset == 350 })
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run = %v", err)
			}
			stoppedAt := first.Stats().Offset
			offsets.drop.Store(false)
			saved, _ := offsets.LoadOffset(ctx, "a", "b")
			if !c.loseSaves && saved != stoppedAt {
				t.Fatalf("saved offset %d, stopped at %d", saved, stoppedAt)
			}
			if c.loseSaves && saved > 250 {
				t.Fatalf("saved offset %d although saves were dropped after 250", saved)
			}

			src.gate.Store(total)
			second := mk()
			drain(t, second)
			if s := second.Stats(); s.Offset != total || s.Applied != total-stoppedAt || s.Duplicates != stoppedAt-saved {
				t.Fatalf("second run: %+v; stopped at %d, saved %d", s, stoppedAt, saved)
			}
			if got := metricValue(t, reg, "carpool_replication_applied_total", pairLabels("a", "b")); got != total {
				t.Fatalf("applied_total = %v, want %d", got, total)
			}
			if st := b.store.Stats(); st.Won+st.Lost != total || st.Duplicates != stoppedAt-saved {
				t.Fatalf("target applied %d events, want %d (%v)", st.Won+st.Lost, total, st)
			}
			if diff := sameState(a.store, b.store); diff != "" {
				t.Fatal(diff)
			}
		})
	}
}

// An event whose HLC timestamp is further ahead of the target's clock than
// the maximum offset is refused and counted. The pair holds at that event
// (it never skips it: that would lose the write), Run keeps retrying with
// back-off, and other pairs keep flowing. Once the clocks agree the event
// is applied.
func TestRemoteTooFarAheadIsRejected(t *testing.T) {
	tt := newTrueTime()
	reg := prometheus.NewRegistry()
	a, b, c := newRegion(t, "a", tt, reg), newRegion(t, "b", tt, reg), newRegion(t, "c", tt, reg)
	a.skew(t, 2*time.Second) // a's clock runs 2 s fast: beyond the 500 ms maximum offset
	_, _ = a.store.Put(ctx, "rides", "fast", []byte(`1`))
	_, _ = c.store.Put(ctx, "rides", "ok", []byte(`2`))
	ab := pair(t, a, b, func(cfg *Config) { cfg.RetryMin, cfg.RetryMax = time.Millisecond, 5*time.Millisecond })
	cb := pair(t, c, b, nil)

	if _, err := ab.Step(ctx); !errors.Is(err, hlc.ErrRemoteAhead) {
		t.Fatalf("step = %v, want ErrRemoteAhead", err)
	}
	if s := ab.Stats(); s.Offset != 0 || s.Rejected != 1 || s.Backlog() != 1 || !strings.Contains(s.LastError, "ahead") {
		t.Fatalf("stats after the refusal: %+v", s)
	}
	if n, err := cb.Step(ctx); n != 1 || err != nil {
		t.Fatalf("the healthy pair c→b: %d, %v", n, err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ab.Run(rctx) }()
	waitFor(t, 5*time.Second, "Run to retry the refused event", func() bool { return ab.Stats().Rejected >= 3 })
	if got := metricValue(t, reg, "carpool_hlc_remote_rejected_total", map[string]string{"region": "b"}); got < 3 {
		t.Fatalf("carpool_hlc_remote_rejected_total{region=b} = %v", got)
	}
	tt.add(2 * time.Second) // b's clock catches up with the event
	waitFor(t, 5*time.Second, "the event to be applied", func() bool { return ab.Stats().Offset == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.store.Get(ctx, "rides", "fast"); !ok {
		t.Fatal("the event was not applied after the clocks agreed")
	}
}

// A source whose outbox was truncated past the pair's offset is reported,
// not skipped.
func TestGapIsReported(t *testing.T) {
	tt := newTrueTime()
	a, b := newRegion(t, "a", tt, nil), newRegion(t, "b", tt, nil)
	for range 3 {
		_, _ = a.store.Put(ctx, "t", "k", []byte(`1`))
	}
	a.store.Truncate(2)
	r := pair(t, a, b, nil)
	if _, err := r.Step(ctx); !errors.Is(err, store.ErrTruncated) {
		t.Fatalf("step = %v, want ErrTruncated", err)
	}
	// A source that skips an event is caught too.
	r2 := pair(t, a, b, func(c *Config) { c.Source = skipping{NewLocalSource(a.store)} })
	if _, err := r2.Step(ctx); !errors.Is(err, ErrGap) {
		t.Fatalf("step = %v, want ErrGap", err)
	}
	r3 := pair(t, a, b, func(c *Config) { c.SourceRegion, c.Source = "x", skipping{NewLocalSource(a.store)} })
	if _, err := r3.Step(ctx); !errors.Is(err, ErrWrongSource) {
		t.Fatalf("step = %v, want ErrWrongSource", err)
	}
}

// skipping serves the outbox from offset 2 whatever is asked.
type skipping struct{ s *LocalSource }

func (k skipping) Pull(ctx context.Context, _ uint64, limit int, wait time.Duration) (Batch, error) {
	return k.s.Pull(ctx, 2, limit, wait)
}

// The heartbeat row replicates like data: the target reads the source's
// applied heartbeat; while the target is stalled it stays behind (the lag
// the sync-lag exporter reports grows).
func TestHeartbeatReplicates(t *testing.T) {
	tt := newTrueTime()
	a, b := newRegion(t, "a", tt, nil), newRegion(t, "b", tt, nil)
	hw, err := store.NewHeartbeatWriter(store.HeartbeatConfig{Store: a.store, Region: "a", Now: a.faults.Clock})
	if err != nil {
		t.Fatal(err)
	}
	r := pair(t, a, b, nil)
	beat := func() time.Time {
		hb, err := hw.Beat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tt.add(time.Second)
		return hb.Written
	}
	applied := func() time.Time {
		hb, _, ok, err := store.ReadHeartbeat(ctx, b.store, "a")
		if err != nil || !ok {
			t.Fatalf("no heartbeat of a in b: %v", err)
		}
		return hb.Written
	}
	first := beat()
	drain(t, r)
	if got := applied(); !got.Equal(first) {
		t.Fatalf("applied heartbeat %v, written %v", got, first)
	}
	b.stall(t, true)
	var last time.Time
	for range 3 {
		last = beat()
	}
	_, _ = r.Step(ctx)
	if got := applied(); !got.Equal(first) {
		t.Fatalf("a stalled target applied heartbeat %v", got)
	}
	if lag := last.Sub(applied()); lag != 3*time.Second {
		t.Fatalf("lag = %v, want 3s", lag)
	}
	b.stall(t, false)
	drain(t, r)
	if got := applied(); !got.Equal(last) {
		t.Fatalf("after the stall: %v, want %v", got, last)
	}
}

// Heartbeats written by a running writer reach the other region through a
// running replicator.
func TestHeartbeatWriterAndReplicatorRunTogether(t *testing.T) {
	a, b := newRegion(t, "a", newTrueTime(), nil), newRegion(t, "b", newTrueTime(), nil)
	var mu sync.Mutex
	physical := time.UnixMilli(1_764_028_800_000)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		physical = physical.Add(time.Millisecond)
		return physical
	}
	hw, _ := store.NewHeartbeatWriter(store.HeartbeatConfig{Store: a.store, Region: "a", Interval: 2 * time.Millisecond, Now: now})
	r := pair(t, a, b, func(c *Config) { c.PollWait = 20 * time.Millisecond })
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = hw.Run(rctx) })
	wg.Go(func() { _ = r.Run(rctx) })
	var seen []time.Time
	waitFor(t, 10*time.Second, "three distinct applied heartbeats", func() bool {
		if hb, _, ok, _ := store.ReadHeartbeat(ctx, b.store, "a"); ok && (len(seen) == 0 || hb.Written.After(seen[len(seen)-1])) {
			seen = append(seen, hb.Written)
		}
		return len(seen) >= 3
	})
	cancel()
	wg.Wait()
}

// Applying an event continues the trace of its write: the apply span is a
// child of the span that made the write in the source region.
func TestApplyContinuesTheWritesTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(ctx) }()
	tt := newTrueTime()
	a, b := newRegion(t, "a", tt, nil), newRegion(t, "b", tt, nil)
	wctx, write := tp.Tracer("test").Start(ctx, "POST /v1/rides")
	_, _ = a.store.Put(wctx, "rides", "r1", []byte(`{}`))
	write.End()
	_, _ = a.store.Put(ctx, "rides", "untraced", []byte(`{}`))
	r := pair(t, a, b, func(c *Config) { c.TracerProvider = tp })
	drain(t, r)
	var applies []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == applySpanName {
			applies = append(applies, s)
		}
	}
	if len(applies) != 2 {
		t.Fatalf("%d apply spans, want 2", len(applies))
	}
	traced := applies[0]
	if traced.SpanContext().TraceID() != write.SpanContext().TraceID() || traced.Parent().SpanID() != write.SpanContext().SpanID() {
		t.Fatalf("apply span %v (parent %v) is not a child of the write %v", traced.SpanContext(), traced.Parent(), write.SpanContext())
	}
	if applies[1].SpanContext().TraceID() == write.SpanContext().TraceID() || applies[1].Parent().IsValid() {
		t.Fatal("an untraced write's apply joined another trace")
	}
	attrs := map[string]string{}
	for _, kv := range traced.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["replication.source_region"] != "a" || attrs["replication.target_region"] != "b" || attrs["replication.outcome"] != "won" || attrs["replication.key"] != "r1" {
		t.Fatalf("attributes %v", attrs)
	}
}

func TestMetricsShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewMetrics(reg)
	if err != nil || m1.applied != m2.applied {
		t.Fatalf("a second registration did not reuse the families: %v", err)
	}
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "carpool_replication_applied_total", Help: "x"}))
	if _, err := NewMetrics(clash); err == nil {
		t.Fatal("a clashing collector was accepted")
	}
}
