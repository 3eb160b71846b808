package chsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cenkalti/backoff/v5"
)

// Row is the set of record types a Writer carries, one per table.
type Row interface {
	LogRecord | SpanRecord | SLAEvent | SLIMinute | DrillResult | LoadRun
}

// Table names.
const (
	TableLogs         = "logs"
	TableSpans        = "spans"
	TableTraceIndex   = "trace_index"
	TableSLAEvents    = "sla_events"
	TableSLIMinutes   = "sli_minutes"
	TableDrillResults = "drill_results"
	TableLoadRuns     = "load_runs"
	TableMigrations   = "schema_migrations"
)

// tableFor returns the table of a record type.
func tableFor[T Row]() *table[T] {
	var zero T
	var t any
	switch any(zero).(type) {
	case LogRecord:
		t = logsTable
	case SpanRecord:
		t = spansTable
	case SLAEvent:
		t = slaEventsTable
	case SLIMinute:
		t = sliMinutesTable
	case DrillResult:
		t = drillResultsTable
	case LoadRun:
		t = loadRunsTable
	}
	return t.(*table[T])
}

// ErrDropped is returned by Write for a record the pipeline could not keep:
// the queue was full and the write-ahead log at its bound (or absent, or
// closed). The loss is counted (carpool_chsink_lost_records_total) and logged.
var ErrDropped = errors.New("chsink: record dropped")

// Inserter sends one batch of rows to a table. It must not keep rows after it
// returns. The writers use a ClickHouse connection; tests use fakes.
type Inserter[T any] interface {
	Insert(ctx context.Context, rows []T) error
}

// BatchConn is what a writer needs of a ClickHouse connection; clickhouse-go's
// driver.Conn has it.
type BatchConn interface {
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
}

// chInserter inserts with an explicit column list, column by column.
type chInserter[T any] struct {
	conn  BatchConn
	tbl   *table[T]
	query string
}

func newCHInserter[T any](conn BatchConn, database string, tbl *table[T]) chInserter[T] {
	q := fmt.Sprintf("INSERT INTO %s.%s (%s)", database, tbl.name, strings.Join(tbl.columns, ", "))
	return chInserter[T]{conn: conn, tbl: tbl, query: q}
}

// maxDaysPerInsert keeps an INSERT within the servers' default
// max_partitions_per_insert_block (100; newer servers refuse more, so a
// backdated batch would never go in): 99 UTC days are at most 100 days in
// any server time zone.
const maxDaysPerInsert = 99

// Insert implements Inserter. A batch spanning more days than
// maxDaysPerInsert goes in several INSERTs; if one fails the whole batch is
// retried, and the event ids deduplicate what went in twice.
func (c chInserter[T]) Insert(ctx context.Context, rows []T) error {
	for len(rows) > 0 {
		n := withinDays(rows, c.tbl.day, maxDaysPerInsert)
		if err := c.insert(ctx, rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// withinDays returns the length of the longest prefix of rows whose times
// fall on at most limit distinct UTC days.
func withinDays[T any](rows []T, day func(*T) int64, limit int) int {
	first := day(&rows[0])
	i := 1
	for i < len(rows) && day(&rows[i]) == first {
		i++
	}
	if i == len(rows) {
		return i
	}
	seen := map[int64]bool{first: true}
	for ; i < len(rows); i++ {
		d := day(&rows[i])
		if !seen[d] {
			if len(seen) == limit {
				return i
			}
			seen[d] = true
		}
	}
	return len(rows)
}

func (c chInserter[T]) insert(ctx context.Context, rows []T) error {
	b, err := c.conn.PrepareBatch(ctx, c.query)
	if err != nil {
		return fmt.Errorf("preparing the insert into %s: %w", c.tbl.name, err)
	}
	defer b.Close()
	if err := c.tbl.appendColumns(b, rows); err != nil {
		return fmt.Errorf("appending %d rows to the insert into %s: %w", len(rows), c.tbl.name, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("sending %d rows to %s: %w", len(rows), c.tbl.name, err)
	}
	return nil
}

// Writer carries records of one table to ClickHouse: Write puts a record in a
// bounded in-memory queue (never waiting longer than EnqueueTimeout); Run
// takes them out in batches (BatchSize records, or what FlushInterval
// gathered), inserts each with an explicit column list and retries with
// jittered backoff. A batch that still fails goes to the write-ahead log, and
// so do the next ones until an insert succeeds again; the log is replayed in
// order, beside the live inserts, as soon as ClickHouse takes rows. Every
// record carries an event id, so a batch inserted twice (the server took it
// but the answer was lost) is one set of rows after deduplication. Records
// are lost only when the write-ahead log is at its bound (or failing, or not
// configured), and every loss is counted and logged.
type Writer[T Row] struct {
	tbl *table[T]
	cfg Config
	ins Inserter[T]
	log *slog.Logger
	m   writerMetrics

	queue chan T
	wal   *wal // nil without a write-ahead log

	mu     sync.RWMutex // Write holds it shared while enqueueing; Run's shutdown exclusively to close
	closed bool

	running  atomic.Bool
	degraded atomic.Bool
	flushReq chan chan struct{} // Flush asks the batcher to cut the batch now

	written, insertedLive, insertedReplay, spilled, lost atomic.Uint64

	frames sync.Pool // *[]byte frame buffers for spills
	losses lossLog
}

// NewWriter returns a writer into the table of T over conn.
func NewWriter[T Row](conn BatchConn, cfg Config) (*Writer[T], error) {
	if conn == nil {
		return nil, errors.New("chsink: the ClickHouse connection is nil; open one with clickhouse.Open")
	}
	tbl := tableFor[T]()
	cfg = cfg.withDefaults()
	return NewWriterFor[T](newCHInserter(conn, cfg.Database, tbl), cfg)
}

// NewWriterFor returns a writer of T's records into ins (another store, a
// test double). It opens the write-ahead log, if any, in cfg.WAL.Dir/<table>
// and counts what it holds as pending.
func NewWriterFor[T Row](ins Inserter[T], cfg Config) (*Writer[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tbl := tableFor[T]()
	m := cfg.Metrics
	if m == nil {
		var err error
		if m, err = NewMetrics(nil); err != nil {
			return nil, err
		}
	}
	w := &Writer[T]{
		tbl:      tbl,
		cfg:      cfg,
		ins:      ins,
		log:      cfg.Logger.With("table", tbl.name),
		m:        m.forTable(tbl.name),
		queue:    make(chan T, cfg.QueueSize),
		flushReq: make(chan chan struct{}),
	}
	w.losses.log = w.log
	if cfg.WAL.Dir != "" {
		dir := filepath.Join(cfg.WAL.Dir, tbl.name)
		wl, corrupt, err := openWAL(dir, cfg.WAL.MaxBytes, cfg.WAL.SegmentBytes, cfg.WAL.Sync, w.log)
		if err != nil {
			return nil, fmt.Errorf("chsink: opening the write-ahead log of %s in %s: %w", tbl.name, dir, err)
		}
		w.wal = wl
		w.m.walLimit.Set(float64(cfg.WAL.MaxBytes))
		if corrupt > 0 {
			w.lose(corrupt, w.m.lostCorrupt, "the write-ahead log held corrupt frames; their records are lost")
		}
		w.walGauges()
	}
	return w, nil
}

// closeWAL closes the write-ahead log of a writer that will not run.
func (w *Writer[T]) closeWAL() {
	if w != nil && w.wal != nil {
		_ = w.wal.close()
	}
}

// Table returns the name of the table the writer fills.
func (w *Writer[T]) Table() string { return w.tbl.name }

// Write hands rec to the pipeline. It fills a zero event id and a zero time,
// puts the record in the queue, waiting at most EnqueueTimeout for room, and
// otherwise writes it to the write-ahead log itself. It returns ErrDropped
// (wrapped) only when the record could be kept nowhere; that loss is counted.
// Safe for concurrent use; the record's slices must not be modified after.
func (w *Writer[T]) Write(rec T) error {
	w.tbl.prepare(&rec, w.cfg.Now)
	w.written.Add(1)
	w.m.written.Inc()
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return w.spillOne(rec)
	}
	select {
	case w.queue <- rec:
		w.mu.RUnlock()
		return nil
	default:
	}
	if w.cfg.EnqueueTimeout > 0 {
		t := time.NewTimer(w.cfg.EnqueueTimeout)
		select {
		case w.queue <- rec:
			t.Stop()
			w.mu.RUnlock()
			return nil
		case <-t.C:
		}
	}
	w.mu.RUnlock()
	return w.spillOne(rec)
}

// spillOne writes a record that found no room (or no running writer) to the
// write-ahead log.
func (w *Writer[T]) spillOne(rec T) error {
	w.mu.RLock()
	closed := w.closed
	w.mu.RUnlock()
	reason := w.m.spillQueueFull
	if closed {
		reason = w.m.spillShutdown
	}
	return w.spill([]T{rec}, reason)
}

// spill writes rows to the write-ahead log as one frame, or counts them lost.
func (w *Writer[T]) spill(rows []T, reason interface{ Add(float64) }) error {
	n := len(rows)
	if w.wal == nil {
		w.lose(n, w.m.lostNoWAL, "no write-ahead log is configured; records that could not be inserted are dropped")
		return fmt.Errorf("%w: no write-ahead log", ErrDropped)
	}
	bp, _ := w.frames.Get().(*[]byte)
	if bp == nil {
		b := newFrame(4 << 10)
		bp = &b
	}
	frame := encodeFrame((*bp)[:frameHeader], w.tbl, rows)
	err := w.wal.append(frame, n)
	if cap(frame) <= 8<<20 { // keep the buffers of ordinary batches
		*bp = frame
		w.frames.Put(bp)
	}
	switch {
	case err == nil:
		w.spilled.Add(uint64(n))
		reason.Add(float64(n))
		w.walGauges()
		return nil
	case errors.Is(err, errWALFull):
		w.lose(n, w.m.lostFull, "the write-ahead log is at its bound (WAL.MaxBytes); records are dropped until ClickHouse takes rows again")
		return fmt.Errorf("%w: write-ahead log full", ErrDropped)
	case errors.Is(err, errWALClosed):
		w.lose(n, w.m.lostClosed, "records written after the writer stopped are dropped")
		return fmt.Errorf("%w: writer stopped", ErrDropped)
	default:
		w.lose(n, w.m.lostError, "the write-ahead log cannot be written; records are dropped", "err", err)
		return fmt.Errorf("%w: %w", ErrDropped, err)
	}
}

// lose counts n lost records and logs it (rate-limited).
func (w *Writer[T]) lose(n int, c interface{ Add(float64) }, msg string, args ...any) {
	w.lost.Add(uint64(n))
	c.Add(float64(n))
	w.losses.note(n, msg, args...)
}

// lossLog logs losses at error level: the first at once, then at most one
// summary every lossLogEvery, so that a long outage does not flood the log.
type lossLog struct {
	log        *slog.Logger
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const lossLogEvery = 10 * time.Second

func (l *lossLog) note(n int, msg string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.suppressed += n
	if !l.last.IsZero() && now.Sub(l.last) < lossLogEvery {
		return
	}
	l.log.Error("log pipeline lost records: "+msg, append([]any{"records", l.suppressed}, args...)...)
	l.last, l.suppressed = now, 0
}

// Flush sends the partial batch and everything queued now, without waiting
// for FlushInterval, and returns once they are inserted or in the write-ahead
// log (or lost and counted), or when ctx ends. Records the write-ahead log
// already holds are not waited for. It is for the end of a run (a load test,
// a drill, a test): Run's own batching needs no help.
func (w *Writer[T]) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case w.flushReq <- done:
	case <-ctx.Done():
		return fmt.Errorf("chsink: flushing %s: %w (is the writer running?)", w.tbl.name, ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("chsink: flushing %s: %w", w.tbl.name, ctx.Err())
	}
}

// Stats is a snapshot of a writer's counts.
type Stats struct {
	Written  uint64 // records handed to Write
	Inserted uint64 // records ClickHouse acknowledged, live and replayed
	Replayed uint64 // of Inserted, those replayed from the write-ahead log
	Spilled  uint64 // records written to the write-ahead log
	Lost     uint64 // records dropped (counted in the metrics too)
	Queued   int    // records in the in-memory queue now
	// WALBytes and WALRecords are what the write-ahead log holds now (bytes
	// on disk, records not yet replayed).
	WALBytes   int64
	WALRecords int64
	Degraded   bool // inserts are failing and new batches go to the write-ahead log
}

// Stats returns the writer's counts.
func (w *Writer[T]) Stats() Stats {
	s := Stats{
		Written:  w.written.Load(),
		Replayed: w.insertedReplay.Load(),
		Spilled:  w.spilled.Load(),
		Lost:     w.lost.Load(),
		Queued:   len(w.queue),
		Degraded: w.degraded.Load(),
	}
	s.Inserted = w.insertedLive.Load() + s.Replayed
	if w.wal != nil {
		s.WALBytes, s.WALRecords = w.wal.stats()
	}
	return s
}

func (w *Writer[T]) walGauges() {
	b, r := w.wal.stats()
	w.m.walBytes.Set(float64(b))
	w.m.walRecords.Set(float64(r))
}

func (w *Writer[T]) setDegraded(on bool) {
	if w.degraded.Swap(on) == on {
		return
	}
	if on {
		w.m.degraded.Set(1)
		w.log.Warn("inserts into ClickHouse fail; new batches go to the write-ahead log until one succeeds")
	} else {
		w.m.degraded.Set(0)
		w.log.Info("inserts into ClickHouse succeed again")
	}
}

// Run moves records from the queue to ClickHouse (and the write-ahead log)
// until ctx ends. Then it stops taking records into the queue, inserts what
// is left within ShutdownTimeout (or writes it to the write-ahead log), syncs
// and closes the log, and returns nil. Records written after that go to the
// write-ahead log until it is closed, then are lost and counted. A writer
// runs once.
func (w *Writer[T]) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return fmt.Errorf("chsink: the writer of %s runs already (or ran): a writer runs once", w.tbl.name)
	}
	var wg sync.WaitGroup
	bgCtx, stopBackground := context.WithCancel(ctx)
	if w.wal != nil {
		wg.Go(func() { w.replayLoop(bgCtx) })
		if w.cfg.WAL.Sync == SyncInterval {
			wg.Go(func() { w.syncLoop(bgCtx) })
		}
	}
	// Inserts outlive ctx by at most ShutdownTimeout: a batch in flight when
	// the writer is stopped finishes, and so does the drain of the queue.
	insCtx, cancelInserts := context.WithCancel(context.WithoutCancel(ctx))
	flushed := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-flushed:
		}
		t := time.NewTimer(w.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
		case <-flushed:
		}
		cancelInserts()
	}()
	w.flushLoop(ctx, insCtx)
	close(flushed)
	stopBackground()
	wg.Wait()
	if w.wal != nil {
		if err := w.wal.close(); err != nil {
			w.log.Error("closing the write-ahead log", "err", err)
			return fmt.Errorf("chsink: closing the write-ahead log of %s: %w", w.tbl.name, err)
		}
		w.walGauges()
	}
	return nil
}

// flushLoop batches the queue until ctx ends, then drains it. Inserts run
// under insCtx.
func (w *Writer[T]) flushLoop(ctx, insCtx context.Context) {
	// Inserters goroutines insert (or spill) full batches while this one
	// fills the next: the client's encoding overlaps the server's work.
	// Batch buffers circulate through free, so memory stays at
	// (Inserters+1) × BatchSize records beyond the queue.
	n := w.cfg.Inserters
	work := make(chan []T)
	free := make(chan []T, n+1)
	for range n + 1 {
		free <- make([]T, 0, w.cfg.BatchSize)
	}
	var inflight, workers sync.WaitGroup
	for range n {
		workers.Go(func() {
			for b := range work {
				w.flush(insCtx, b)
				clear(b)
				free <- b[:0]
				inflight.Done()
			}
		})
	}
	defer func() {
		close(work)
		workers.Wait()
	}()

	batch := <-free
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	flush := func() {
		if armed {
			timer.Stop()
			armed = false
		}
		w.m.queue.Set(float64(len(w.queue)))
		inflight.Add(1)
		work <- batch
		batch = <-free
	}
	for {
		select {
		case r := <-w.queue:
			batch = append(batch, r)
		fill:
			for len(batch) < w.cfg.BatchSize {
				select {
				case r := <-w.queue:
					batch = append(batch, r)
				default:
					break fill
				}
			}
			if len(batch) >= w.cfg.BatchSize {
				flush()
			} else if !armed {
				timer.Reset(w.cfg.FlushInterval)
				armed = true
			}
		case <-timer.C:
			armed = false
			if len(batch) > 0 {
				flush()
			}
		case done := <-w.flushReq:
			// Everything written before Flush was called is in the queue
			// or the batch: send it all and wait for the inserts.
			for more := true; more; {
				select {
				case r := <-w.queue:
					batch = append(batch, r)
					if len(batch) >= w.cfg.BatchSize {
						flush()
					}
				default:
					more = false
				}
			}
			if len(batch) > 0 {
				flush()
			}
			inflight.Wait()
			close(done)
		case <-ctx.Done():
			inflight.Wait()
			w.shutdown(insCtx, batch)
			return
		}
	}
}

// flush inserts one batch, or writes it to the write-ahead log. ctx ends
// ShutdownTimeout after the writer is stopped.
func (w *Writer[T]) flush(ctx context.Context, batch []T) {
	if w.wal != nil && w.degraded.Load() {
		_ = w.spill(batch, w.m.spillDegraded)
		return
	}
	err := w.insert(ctx, batch, w.cfg.Retry.Attempts, false)
	if err == nil {
		return
	}
	if ctx.Err() != nil {
		// Stopped, and the shutdown deadline has passed: keep it on disk.
		_ = w.spill(batch, w.m.spillShutdown)
		return
	}
	w.log.Warn("batch insert failed after retries; keeping the batch in the write-ahead log",
		"records", len(batch), "attempts", w.cfg.Retry.Attempts, "err", err)
	w.setDegraded(true)
	_ = w.spill(batch, w.m.spillFailed)
}

// shutdown closes the queue and inserts what is left, or spills it once
// ctx (the shutdown deadline) ends.
func (w *Writer[T]) shutdown(ctx context.Context, batch []T) {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	// Nothing enters the queue any more; take what is there.
	for done := false; !done; {
		select {
		case r := <-w.queue:
			batch = append(batch, r)
		default:
			done = true
		}
	}
	w.m.queue.Set(0)
	if len(batch) == 0 {
		return
	}
	for start := 0; start < len(batch); start += w.cfg.BatchSize {
		part := batch[start:min(start+w.cfg.BatchSize, len(batch))]
		if !w.degraded.Load() && ctx.Err() == nil {
			err := w.insert(ctx, part, 1, false)
			if err == nil {
				continue
			}
			w.log.Warn("insert failed while stopping; keeping the records in the write-ahead log", "records", len(part), "err", err)
			w.setDegraded(true)
		}
		_ = w.spill(part, w.m.spillShutdown)
	}
}

// insert tries rows up to attempts times with backoff between tries.
func (w *Writer[T]) insert(ctx context.Context, rows []T, attempts int, replay bool) error {
	bo := w.backoff()
	for i := 1; ; i++ {
		ictx, cancel := context.WithTimeout(ctx, w.cfg.InsertTimeout)
		began := time.Now()
		err := w.ins.Insert(ictx, rows)
		cancel()
		if err == nil {
			n := uint64(len(rows))
			if replay {
				w.insertedReplay.Add(n)
				w.m.insertedReplay.Add(float64(n))
				w.m.durReplay.Observe(time.Since(began).Seconds())
			} else {
				w.insertedLive.Add(n)
				w.m.insertedLive.Add(float64(n))
				w.m.durLive.Observe(time.Since(began).Seconds())
			}
			return nil
		}
		if replay {
			w.m.failReplay.Inc()
		} else {
			w.m.failLive.Inc()
		}
		if i >= attempts || ctx.Err() != nil {
			return err
		}
		w.log.Debug("batch insert failed; retrying", "records", len(rows), "attempt", i, "err", err)
		if !sleep(ctx, bo.NextBackOff()) {
			return err
		}
	}
}

func (w *Writer[T]) backoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval:     w.cfg.Retry.Initial,
		RandomizationFactor: w.cfg.Retry.Jitter,
		Multiplier:          2,
		MaxInterval:         w.cfg.Retry.Max,
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// replayLoop inserts the write-ahead log's frames in order, a batch at a
// time, retrying each batch with backoff until it is taken, until ctx ends.
func (w *Writer[T]) replayLoop(ctx context.Context) {
	bo := w.backoff()
	var rows []T
	for ctx.Err() == nil {
		if _, pending := w.wal.stats(); pending == 0 {
			// Nothing to replay: let live batches try ClickHouse again.
			w.setDegraded(false)
			select {
			case <-w.wal.notify:
			case <-ctx.Done():
				return
			}
			continue
		}
		clear(rows)
		rows = rows[:0]
		next, n, err := w.wal.read(w.cfg.BatchSize, func(payload []byte) error {
			before := len(rows)
			var err error
			if rows, err = decodeFrame(rows, w.tbl, payload); err != nil {
				clear(rows[before:])
				rows = rows[:before]
			}
			return err
		})
		if errors.Is(err, errCorrupt) {
			w.lose(1, w.m.lostCorrupt, "a write-ahead log frame failed its checksum; its records are lost", "err", err)
			if err := w.wal.consume(next, 0); err != nil {
				w.log.Error("moving the write-ahead log cursor", "err", err)
			}
			continue
		}
		if err != nil {
			w.log.Error("reading the write-ahead log", "err", err)
			if !sleep(ctx, bo.NextBackOff()) {
				return
			}
			continue
		}
		if n == 0 {
			// Nothing readable behind the cursor although records are
			// counted as pending: move on (this also resets the count once
			// the log is empty) and look again shortly.
			if err := w.wal.consume(next, 0); err != nil {
				w.log.Error("moving the write-ahead log cursor", "err", err)
			}
			if !sleep(ctx, w.cfg.Retry.Initial) {
				return
			}
			continue
		}
		for {
			err := w.insert(ctx, rows, 1, true)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			w.setDegraded(true)
			w.log.Debug("replaying the write-ahead log failed; retrying", "records", n, "err", err)
			if !sleep(ctx, bo.NextBackOff()) {
				return
			}
		}
		bo.Reset()
		w.setDegraded(false)
		if err := w.wal.consume(next, n); err != nil {
			w.log.Error("moving the write-ahead log cursor (the batch may be replayed again, harmlessly)", "err", err)
		}
		w.walGauges()
	}
}

// syncLoop fsyncs the write-ahead log every SyncInterval.
func (w *Writer[T]) syncLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.WAL.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := w.wal.flush(); err != nil {
				w.log.Error("syncing the write-ahead log", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}
