package chsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeStore is an Inserter that keeps what it is given, and can be taken
// down or made to hang.
type fakeStore[T any] struct {
	mu      sync.Mutex
	down    bool
	hang    chan struct{} // when set, Insert waits for it to close (or ctx)
	rows    []T
	batches []int
	fails   int
}

var errDown = errors.New("connection refused (fake)")

func (f *fakeStore[T]) Insert(ctx context.Context, rows []T) error {
	f.mu.Lock()
	hang := f.hang
	f.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		f.fails++
		return errDown
	}
	f.rows = append(f.rows, rows...)
	f.batches = append(f.batches, len(rows))
	return nil
}

func (f *fakeStore[T]) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeStore[T]) snapshot() (rows []T, batches []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]T(nil), f.rows...), append([]int(nil), f.batches...)
}

// testConfig is a small, fast configuration with its own registry.
func testConfig(t *testing.T, walDir string) (Config, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		QueueSize:      64,
		BatchSize:      16,
		FlushInterval:  20 * time.Millisecond,
		EnqueueTimeout: 2 * time.Millisecond,
		Retry:          RetryConfig{Attempts: 2, Initial: time.Millisecond, Max: 5 * time.Millisecond},
		WAL:            WALConfig{Dir: walDir, MaxBytes: 1 << 20, SegmentBytes: 16 << 10, Sync: SyncNever},
		Metrics:        m,
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, reg
}

// testWriter sends the pipeline's own warnings to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// start runs w until the test ends (or stop is called) and returns stop,
// which waits for Run to return and returns its error.
func start[T Row](t *testing.T, w *Writer[T]) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitUntil polls cond every 5ms for up to 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeN(t *testing.T, w *Writer[LogRecord], from, to int) (dropped int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := w.Write(LogRecord{Service: "svc", Region: "r1", Message: fmt.Sprint(i)}); err != nil {
			if !errors.Is(err, ErrDropped) {
				t.Fatalf("Write: %v, want nil or ErrDropped", err)
			}
			dropped++
		}
	}
	return dropped
}

func messages(rows []LogRecord) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Message
	}
	return out
}

func TestBatchesAreCutBySizeAndByTime(t *testing.T) {
	cfg, _ := testConfig(t, "")
	cfg.FlushInterval, cfg.Inserters = 200*time.Millisecond, 1
	store := &fakeStore[LogRecord]{}
	w, err := NewWriterFor[LogRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	writeN(t, w, 0, 40) // two full batches of 16 go at once, 8 wait for the interval
	waitUntil(t, "two full batches", func() bool { _, b := store.snapshot(); return len(b) >= 2 })
	began := time.Now()
	waitUntil(t, "the partial batch", func() bool { r, _ := store.snapshot(); return len(r) == 40 })
	rows, batches := store.snapshot()
	if batches[0] != 16 || batches[1] != 16 || batches[len(batches)-1] != 8 && len(batches) == 3 {
		t.Errorf("batch sizes %v, want 16, 16, then the rest", batches)
	}
	if waited := time.Since(began); waited > 2*time.Second {
		t.Errorf("the partial batch took %s after the full ones, flush interval 200ms", waited)
	}
	for i, r := range rows {
		if r.Message != fmt.Sprint(i) || r.EventID.String() == "00000000-0000-0000-0000-000000000000" || r.Time.IsZero() {
			t.Fatalf("row %d: %+v", i, r)
		}
	}
}

func TestAFailingStoreFillsTheWALWhichReplaysInOrder(t *testing.T) {
	cfg, reg := testConfig(t, t.TempDir())
	// A queue that never fills and one inserter: every record reaches the
	// WAL through the batcher, in write order (Write's own spills, when the
	// queue is full, may overtake records still queued, and so may the
	// batches of concurrent inserters).
	cfg.QueueSize, cfg.Inserters = 1024, 1
	store := &fakeStore[LogRecord]{down: true}
	w, err := NewWriterFor[LogRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	if d := writeN(t, w, 0, 500); d != 0 {
		t.Fatalf("%d records dropped with room in the WAL", d)
	}
	waitUntil(t, "every record in the WAL", func() bool { return w.Stats().WALRecords == 500 })
	if s := w.Stats(); !s.Degraded || s.Inserted != 0 {
		t.Fatalf("with the store down: %+v", s)
	}
	if got := testutil.ToFloat64(cfg.Metrics.degraded.WithLabelValues("logs")); got != 1 {
		t.Errorf("carpool_chsink_degraded is %v while the store is down", got)
	}
	store.setDown(false)
	waitUntil(t, "the WAL replayed", func() bool { return w.Stats().Inserted == 500 })
	writeN(t, w, 500, 600)
	waitUntil(t, "live records after recovery", func() bool { return w.Stats().Inserted == 600 })
	rows, _ := store.snapshot()
	got := messages(rows)
	for i := range 500 {
		if got[i] != fmt.Sprint(i) {
			t.Fatalf("replay out of order at %d: %v", i, got[max(0, i-3):i+3])
		}
	}
	s := w.Stats()
	if s.Lost != 0 || s.WALRecords != 0 || s.Degraded || s.Replayed != 500 {
		t.Errorf("after recovery: %+v", s)
	}
	if n := testutil.ToFloat64(cfg.Metrics.inserted.WithLabelValues("logs", "replay")); n != 500 {
		t.Errorf("carpool_chsink_inserted_records_total{path=replay} = %v, want 500", n)
	}
	lost := 0.0
	for _, r := range []string{"wal_full", "wal_error", "wal_corrupt", "no_wal", "closed"} {
		lost += testutil.ToFloat64(cfg.Metrics.lost.WithLabelValues("logs", r))
	}
	if lost != 0 {
		t.Errorf("carpool_chsink_lost_records_total sums to %v", lost)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP carpool_chsink_written_records_total Records handed to the ClickHouse pipeline, per table.
# TYPE carpool_chsink_written_records_total counter
carpool_chsink_written_records_total{table="logs"} 600
`), "carpool_chsink_written_records_total"); err != nil {
		t.Error(err)
	}
}

func TestWriteNeverWaitsLongerThanTheEnqueueTimeout(t *testing.T) {
	cfg, _ := testConfig(t, t.TempDir())
	cfg.QueueSize, cfg.BatchSize, cfg.EnqueueTimeout = 8, 4, 5*time.Millisecond
	store := &fakeStore[LogRecord]{hang: make(chan struct{})}
	w, err := NewWriterFor[LogRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	var slowest time.Duration
	for i := range 200 {
		began := time.Now()
		if err := w.Write(LogRecord{Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(began))
	}
	// 5ms of waiting plus a WAL append; the bar leaves room for a loaded machine.
	if slowest > 250*time.Millisecond {
		t.Errorf("the slowest Write took %s with a hung store; the enqueue timeout is 5ms", slowest)
	}
	if s := w.Stats(); s.Spilled < 150 {
		t.Errorf("with the store hung, %d of 200 records went to the WAL; want nearly all", s.Spilled)
	}
	if n := testutil.ToFloat64(cfg.Metrics.spilled.WithLabelValues("logs", "queue_full")); n < 150 {
		t.Errorf("spilled{reason=queue_full} = %v", n)
	}
	close(store.hang)
	waitUntil(t, "everything inserted", func() bool { return w.Stats().Inserted == 200 })
	rows, _ := store.snapshot()
	if ids := distinctIDs(rows); ids != 200 {
		t.Errorf("%d distinct event ids for 200 records", ids)
	}
}

// newTestLogger logs text lines into b, guarded by mu.
func newTestLogger(mu *sync.Mutex, b *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, b}, nil))
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func distinctIDs(rows []LogRecord) int {
	seen := map[[16]byte]bool{}
	for _, r := range rows {
		seen[r.EventID] = true
	}
	return len(seen)
}

func TestOverflowingTheWALIsCountedNeverSilent(t *testing.T) {
	cfg, _ := testConfig(t, t.TempDir())
	cfg.WAL.MaxBytes, cfg.WAL.SegmentBytes = 8<<10, 4<<10
	store := &fakeStore[LogRecord]{down: true}
	w, err := NewWriterFor[LogRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	w.losses.log = newTestLogger(&mu, &logs)
	start(t, w)
	writeN(t, w, 0, 2000)
	waitUntil(t, "the queue drained into the WAL or the loss counter", func() bool {
		s := w.Stats()
		return s.Queued == 0 && uint64(s.WALRecords)+s.Lost == 2000
	})
	s := w.Stats()
	if s.Lost == 0 || s.WALBytes > 8<<10 {
		t.Fatalf("2000 records into an 8 KiB WAL: %+v", s)
	}
	if got := testutil.ToFloat64(cfg.Metrics.lost.WithLabelValues("logs", "wal_full")); got != float64(s.Lost) {
		t.Errorf("lost{reason=wal_full} = %v, stats say %d", got, s.Lost)
	}
	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	if !strings.Contains(logged, "lost records") || !strings.Contains(logged, "WAL.MaxBytes") {
		t.Errorf("the loss was not logged: %q", logged)
	}
	store.setDown(false)
	waitUntil(t, "the WAL replayed", func() bool { return w.Stats().WALRecords == 0 })
	waitUntil(t, "every kept record inserted", func() bool { s := w.Stats(); return s.Inserted+s.Lost == 2000 })
}

func TestWithoutAWALAFailedBatchIsDroppedAndCounted(t *testing.T) {
	cfg, _ := testConfig(t, "")
	store := &fakeStore[LogRecord]{down: true}
	w, err := NewWriterFor[LogRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	writeN(t, w, 0, 16)
	waitUntil(t, "the batch dropped", func() bool { return w.Stats().Lost == 16 })
	if got := testutil.ToFloat64(cfg.Metrics.lost.WithLabelValues("logs", "no_wal")); got != 16 {
		t.Errorf("lost{reason=no_wal} = %v, want 16", got)
	}
	store.mu.Lock()
	fails := store.fails
	store.mu.Unlock()
	if fails != cfg.Retry.Attempts {
		t.Errorf("the batch was tried %d times, want Retry.Attempts = %d", fails, cfg.Retry.Attempts)
	}
}

func TestStoppingKeepsTheQueueInTheWALForTheNextProcess(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := testConfig(t, dir)
	cfg.ShutdownTimeout = 50 * time.Millisecond
	cfg.QueueSize, cfg.Inserters = 1024, 1 // every record reaches the WAL in write order (see above)
	store := &fakeStore[LogRecord]{down: true}
	w, err := NewWriterFor[LogRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, w)
	writeN(t, w, 0, 300)
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if err := w.Write(LogRecord{Message: "late"}); !errors.Is(err, ErrDropped) {
		t.Errorf("Write after Run returned gave %v, want ErrDropped", err)
	}
	if s := w.Stats(); s.Lost != 1 || s.WALRecords != 300 {
		t.Fatalf("after stopping with the store down: %+v; want 300 in the WAL and the late record lost", s)
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("a writer ran twice")
	}

	// The next process: same folder, the store is back.
	cfg2, _ := testConfig(t, dir)
	store2 := &fakeStore[LogRecord]{}
	w2, err := NewWriterFor[LogRecord](store2, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if s := w2.Stats(); s.WALRecords != 300 {
		t.Fatalf("the next writer finds %d records in the WAL, want 300", s.WALRecords)
	}
	start(t, w2)
	waitUntil(t, "the WAL replayed by the next writer", func() bool { return w2.Stats().Inserted == 300 })
	rows, _ := store2.snapshot()
	got := messages(rows)
	for i := range 300 {
		if got[i] != fmt.Sprint(i) {
			t.Fatalf("the next writer replayed out of order at %d: %v", i, got[max(0, i-3):i+3])
		}
	}
}

func TestConfigValidationSaysWhatToChange(t *testing.T) {
	cases := map[string]struct {
		cfg  Config
		want string
	}{
		"A database name with a dot should fail.":            {Config{Database: "a.b"}, "Database"},
		"A negative queue size should fail.":                 {Config{QueueSize: -1}, "QueueSize"},
		"An enqueue timeout above the flush interval fails.": {Config{EnqueueTimeout: 2 * time.Second}, "EnqueueTimeout"},
		"A jitter above one should fail.":                    {Config{Retry: RetryConfig{Jitter: 2}}, "Retry.Jitter"},
		"A WAL bound below one segment should fail.":         {Config{WAL: WALConfig{Dir: "/x", MaxBytes: 8 << 10, SegmentBytes: 16 << 10}}, "WAL.MaxBytes"},
		"A tiny WAL segment should fail.":                    {Config{WAL: WALConfig{Dir: "/x", SegmentBytes: 100}}, "WAL.SegmentBytes"},
		"An unknown sync policy should fail.":                {Config{WAL: WALConfig{Dir: "/x", Sync: 7}}, "WAL.Sync"},
		"The zero config is valid.":                          {Config{}, ""},
	}
	for name, c := range cases {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s got %v", name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s got %v, want an error naming %s", name, err, c.want)
		}
	}
}

func TestFlushSendsThePartialBatchAtOnce(t *testing.T) {
	cfg, _ := testConfig(t, "")
	cfg.FlushInterval = time.Hour
	store := &fakeStore[LogRecord]{}
	w, err := NewWriterFor[LogRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop := start(t, w)
	writeN(t, w, 0, 5)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if rows, _ := store.snapshot(); len(rows) != 5 {
		t.Fatalf("after Flush the store holds %d rows, want 5 (the flush interval is an hour)", len(rows))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if err := w.Flush(short); err == nil || !strings.Contains(err.Error(), "running") {
		t.Errorf("Flush on a stopped writer: %v, want an error asking whether it runs", err)
	}
}

// countingStore counts the inserts in flight and holds each until released.
type countingStore struct {
	mu             sync.Mutex
	inFlight, peak int
	release        chan struct{}
	inserted       int
}

func (c *countingStore) Insert(ctx context.Context, rows []LogRecord) error {
	c.mu.Lock()
	c.inFlight++
	c.peak = max(c.peak, c.inFlight)
	c.mu.Unlock()
	select {
	case <-c.release:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight--
	c.inserted += len(rows)
	return ctx.Err()
}

func TestTwoInsertsAreInFlightWhileTheNextBatchFills(t *testing.T) {
	cfg, _ := testConfig(t, "")
	cfg.QueueSize = 1024 // Inserters defaults to 2
	store := &countingStore{release: make(chan struct{})}
	w, err := NewWriterFor[LogRecord](store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, w)
	writeN(t, w, 0, 4*16)
	waitUntil(t, "two inserts in flight", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.inFlight == 2
	})
	close(store.release)
	waitUntil(t, "every batch inserted", func() bool { return w.Stats().Inserted == 64 })
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.peak != 2 {
		t.Errorf("at most %d inserts were in flight at once, want Inserters = 2", store.peak)
	}
}
