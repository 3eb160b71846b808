// Package verify is the multi-active verification engine: it compares a
// table between two regions and reports the rows that are missing, extra
// or different in the target, with the statements that would repair them.
//
// A table is compared in primary-key chunks, several at once: for each
// chunk both regions compute a row count and the sum (modulo 2^64) of
// salted 64-bit row hashes — in the database for SQL backends, so a
// matching chunk's rows never cross the network. A chunk that differs is
// split in two by key, and the halves compared again, down to a few rows,
// whose hashes are compared one by one. Rows that differ are not reported
// at once: writes may merely be in flight between the regions. Each is
// re-read after a delay at least as long as the sync lag, and only a
// difference that is still there, unchanged, is reported. Progress is kept
// in a checkpoint (the last compared key per table), so that a restarted
// run continues where the last one stopped.
//
// Backends: the region stores (services/store), MySQL/MariaDB and
// PostgreSQL. The Verifier is an exporters.Scraper: its metrics are the
// counts of its runs, read at scrape time; Run verifies on a timer, and
// Verify runs once and returns a Report.
package verify

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults of Config.
const (
	DefaultChunkSize    = 1000
	DefaultLeafRows     = 32
	DefaultWorkers      = 4
	DefaultRecheckAfter = 10 * time.Second
	DefaultRechecks     = 3
	DefaultInterval     = 10 * time.Minute
	DefaultMaxSuspects  = 100_000
	// DefaultSourceRegion and DefaultTargetRegion label the metrics when
	// the regions are not named.
	DefaultSourceRegion = "source"
	DefaultTargetRegion = "target"
)

// rowsBatch bounds the keys of one Rows call.
const rowsBatch = 500

// Config configures a Verifier.
type Config struct {
	// Source is the region whose data is the reference; Target the region
	// checked against it. Required.
	Source, Target Backend
	// SourceRegion and TargetRegion name them in metrics and reports;
	// defaults DefaultSourceRegion and DefaultTargetRegion.
	SourceRegion, TargetRegion string
	// Tables to compare, one after the other. Required.
	Tables []Table
	// ChunkSize is the number of source rows per chunk; default
	// DefaultChunkSize.
	ChunkSize int
	// LeafRows: a mismatching range with at most this many rows (on the
	// larger side) is compared row by row instead of split again; default
	// DefaultLeafRows.
	LeafRows int
	// Workers bounds the chunks compared at once (each queries both
	// regions at once); default DefaultWorkers.
	Workers int
	// Checkpoints keeps each table's progress; default in memory
	// (MemoryCheckpoints). Use FileCheckpoints to resume across restarts.
	Checkpoints Checkpoints
	// RecheckAfter is the delay before a row found different is read
	// again; it must be at least the replication's sync lag (a row still
	// in flight after it would be reported). Default DefaultRecheckAfter.
	RecheckAfter time.Duration
	// Lag, when set, returns the current sync lag from the source to the
	// target; the re-check then waits max(RecheckAfter, lag + RecheckAfter/2).
	Lag func(ctx context.Context) (time.Duration, error)
	// Rechecks bounds the re-reads of a row that keeps changing; after
	// them it is counted unsettled, neither confirmed nor cleared. Default
	// DefaultRechecks.
	Rechecks int
	// MaxSuspects bounds the differing rows one pass over a table holds
	// (their keys and rows are kept for the re-check); past it the table's
	// pass fails: a target that far from the source needs a fresh copy,
	// not row repairs. Default DefaultMaxSuspects.
	MaxSuspects int
	// Interval between two runs of Run; default DefaultInterval.
	Interval time.Duration
	// Now is the clock of reports and metrics; default time.Now.
	Now func() time.Time
	// After waits (the re-check delay, Run's interval); default
	// time.After. Tests inject it to control time.
	After func(time.Duration) <-chan time.Time
	// Salt returns each run's salt; default 64 random bits.
	Salt func() uint64
	// Logger receives mismatches, failures and progress; default discards.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.SourceRegion == "" {
		c.SourceRegion = DefaultSourceRegion
	}
	if c.TargetRegion == "" {
		c.TargetRegion = DefaultTargetRegion
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.LeafRows == 0 {
		c.LeafRows = DefaultLeafRows
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Checkpoints == nil {
		c.Checkpoints = &MemoryCheckpoints{}
	}
	if c.RecheckAfter == 0 {
		c.RecheckAfter = DefaultRecheckAfter
	}
	if c.Rechecks == 0 {
		c.Rechecks = DefaultRechecks
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.MaxSuspects == 0 {
		c.MaxSuspects = DefaultMaxSuspects
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.Salt == nil {
		c.Salt = randomSalt
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration after defaults are filled in.
func (c Config) Validate() error {
	switch {
	case c.Source == nil || c.Target == nil:
		return errors.New("verify config: source and target backends are required")
	case len(c.Tables) == 0:
		return errors.New("verify config: no table to compare: give at least one")
	case c.SourceRegion == c.TargetRegion:
		return fmt.Errorf("verify config: source and target region are both %q: they must differ", c.SourceRegion)
	case c.ChunkSize < 2:
		return fmt.Errorf("verify config: chunk size %d: it must be at least 2", c.ChunkSize)
	case c.LeafRows < 1 || c.LeafRows > c.ChunkSize:
		return fmt.Errorf("verify config: leaf rows %d: it must be in [1, chunk size %d]", c.LeafRows, c.ChunkSize)
	case c.Workers < 1 || c.Workers > 256:
		return fmt.Errorf("verify config: workers %d: it must be in [1, 256]", c.Workers)
	case c.RecheckAfter < 0:
		return fmt.Errorf("verify config: recheck-after %v must not be negative", c.RecheckAfter)
	case c.Rechecks < 1:
		return fmt.Errorf("verify config: rechecks %d: at least one re-check is needed to tell a write in flight from a mismatch", c.Rechecks)
	case c.Interval <= 0:
		return fmt.Errorf("verify config: interval %v must be positive", c.Interval)
	case c.MaxSuspects < 1:
		return fmt.Errorf("verify config: max suspects %d must be at least 1", c.MaxSuspects)
	}
	seen := map[string]bool{}
	for i, t := range c.Tables {
		if t.Name == "" {
			return fmt.Errorf("verify config: table %d has no name", i)
		}
		if seen[t.Name] {
			return fmt.Errorf("verify config: table %q is listed twice", t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

func randomSalt() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return binary.LittleEndian.Uint64(b[:])
}

// Kind is the kind of a mismatched row, the kind label's value.
type Kind string

// Kinds of mismatch, seen from the target region.
const (
	// Missing: the source has the row, the target does not.
	Missing Kind = "missing"
	// Extra: the target has a row the source does not.
	Extra Kind = "extra"
	// Differ: both have the row, with different values.
	Differ Kind = "differ"
)

// Kinds lists every Kind, in label order.
var Kinds = []Kind{Missing, Extra, Differ}

// kindOf classifies a key from its two rows (nil: absent).
func kindOf(src, tgt Row) Kind {
	switch {
	case tgt == nil:
		return Missing
	case src == nil:
		return Extra
	}
	return Differ
}

// Mismatch is a confirmed difference of one row: still there, unchanged,
// after the re-check.
type Mismatch struct {
	Table Table  `json:"table"`
	Key   string `json:"key"`
	Kind  Kind   `json:"kind"`
	// Source and Target are the row's values in each region (nil: absent),
	// in the order of Table.Columns.
	Source Row `json:"source"`
	Target Row `json:"target"`
	// Repair is the statement that makes the target equal to the source
	// (empty when the target backend cannot write).
	Repair string    `json:"repair,omitempty"`
	Found  time.Time `json:"found"`
}

// TableReport is one table's part of a Report.
type TableReport struct {
	Table Table `json:"table"`
	// ResumedFrom is the checkpoint the pass continued from (nil: from the
	// first key).
	ResumedFrom *Checkpoint `json:"resumed_from,omitempty"`
	// Complete: every chunk was compared and every suspect re-checked; the
	// checkpoint was cleared.
	Complete         bool  `json:"complete"`
	RowsVerified     int64 `json:"rows_verified"`
	Chunks           int64 `json:"chunks"`
	ChunksMismatched int64 `json:"chunks_mismatched"`
	// Suspects differed at first sight; InFlight of them matched when
	// re-checked; Unsettled kept changing.
	Suspects   int        `json:"suspects"`
	InFlight   int        `json:"in_flight"`
	Unsettled  []string   `json:"unsettled,omitempty"`
	Mismatches []Mismatch `json:"mismatches"`
	Error      string     `json:"error,omitempty"`
}

// Report is the result of one verification run; it encodes as JSON.
type Report struct {
	SourceRegion string        `json:"source_region"`
	TargetRegion string        `json:"target_region"`
	Started      time.Time     `json:"started"`
	Finished     time.Time     `json:"finished"`
	Duration     time.Duration `json:"duration_ns"`
	Tables       []TableReport `json:"tables"`
}

// Mismatches returns every table's confirmed mismatches.
func (r Report) Mismatches() []Mismatch {
	var out []Mismatch
	for _, t := range r.Tables {
		out = append(out, t.Mismatches...)
	}
	return out
}

// Err joins the tables' errors; nil when every table was compared.
func (r Report) Err() error {
	var errs []error
	for _, t := range r.Tables {
		if t.Error != "" {
			errs = append(errs, fmt.Errorf("table %s: %s", t.Table.Name, t.Error))
		}
	}
	return errors.Join(errs...)
}

// Verifier compares tables between two regions. It implements
// exporters.Scraper (see metrics.go). Its methods are safe for concurrent
// use; runs do not overlap.
type Verifier struct {
	cfg Config
	run sync.Mutex // one run at a time

	mu    sync.Mutex
	stats map[string]*tableStats // by table name
	open  map[string]map[string]Mismatch
	runs  struct {
		ok, failed  float64
		lastErr     error
		duration    time.Duration
		lastSuccess time.Time
	}
	last *Report
}

// tableStats are a table's running counts, for metrics.
type tableStats struct {
	rows, chunks, chunksMismatched, inFlight, unsettled float64
	mismatched                                          map[Kind]float64
}

// New checks cfg and returns a Verifier. It connects to nothing.
func New(cfg Config) (*Verifier, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{cfg: cfg, stats: map[string]*tableStats{}, open: map[string]map[string]Mismatch{}}
	for _, t := range cfg.Tables {
		v.stats[t.Name] = &tableStats{mismatched: map[Kind]float64{}}
		v.open[t.Name] = map[string]Mismatch{}
	}
	return v, nil
}

// Source and Target return the backends, for a repair job.
func (v *Verifier) Source() Backend { return v.cfg.Source }

// Target returns the target backend.
func (v *Verifier) Target() Backend { return v.cfg.Target }

// Regions returns the source and target region names.
func (v *Verifier) Regions() (source, target string) { return v.cfg.SourceRegion, v.cfg.TargetRegion }

// Run verifies at once and then every Interval until ctx ends. A failed
// run is logged and counted, and the next one tries again. It returns nil
// when ctx ends.
func (v *Verifier) Run(ctx context.Context) error {
	for {
		rep, err := v.Verify(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			v.cfg.Logger.Warn("verification failed; retrying at the next interval", "err", err.Error(), "interval", v.cfg.Interval)
		} else {
			v.cfg.Logger.Info("verification done", "mismatches", len(rep.Mismatches()), "took", rep.Duration)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-v.cfg.After(v.cfg.Interval):
		}
	}
}

// Verify runs one pass over every table (continuing from each table's
// checkpoint) and returns its report. The error joins the tables' errors
// (a backend unreachable, a bad schema) and ctx's; the report holds what
// was done before them.
func (v *Verifier) Verify(ctx context.Context) (Report, error) {
	v.run.Lock()
	defer v.run.Unlock()
	salt := v.cfg.Salt()
	rep := Report{SourceRegion: v.cfg.SourceRegion, TargetRegion: v.cfg.TargetRegion, Started: v.cfg.Now()}
	for _, t := range v.cfg.Tables {
		if ctx.Err() != nil {
			break
		}
		rep.Tables = append(rep.Tables, v.verifyTable(ctx, t, salt))
	}
	rep.Finished = v.cfg.Now()
	rep.Duration = rep.Finished.Sub(rep.Started)
	err := rep.Err()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	v.mu.Lock()
	v.runs.duration = rep.Duration
	v.runs.lastErr = err
	if err != nil {
		v.runs.failed++
	} else {
		v.runs.ok++
		v.runs.lastSuccess = rep.Finished
	}
	v.last = &rep
	v.mu.Unlock()
	return rep, err
}

// LastReport returns the report of the last run (nil before the first).
func (v *Verifier) LastReport() *Report {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last
}

// OpenMismatches returns the confirmed mismatches not yet resolved, by
// table then key.
func (v *Verifier) OpenMismatches() []Mismatch {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Mismatch
	for _, t := range v.cfg.Tables {
		m := v.open[t.Name]
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, m[k])
		}
	}
	return out
}

// Resolve drops a mismatch from the open ones (a repair fixed it, or it
// healed); a later pass reports it again if it is back.
func (v *Verifier) Resolve(m Mismatch) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.open[m.Table.Name], m.Key)
}

// checkpointID names a table's checkpoint: a file may hold several pairs.
func (v *Verifier) checkpointID(t Table) string {
	return v.cfg.SourceRegion + ">" + v.cfg.TargetRegion + ":" + t.Name
}

// suspect is a key whose rows differed at first sight.
type suspect struct {
	key      string
	src, tgt Row
	seen     bool // src and tgt hold an observation
}

// tableRun is one pass over one table.
type tableRun struct {
	v    *Verifier
	t    Table
	salt uint64
	id   string
	rep  *TableReport

	mu       sync.Mutex
	suspects map[string]struct{}
}

func (v *Verifier) verifyTable(ctx context.Context, t Table, salt uint64) TableReport {
	rep := TableReport{Table: t, Mismatches: []Mismatch{}}
	fail := func(err error) TableReport {
		rep.Error = err.Error()
		v.cfg.Logger.Warn("verifying a table failed", "table", t.Name, "err", rep.Error)
		return rep
	}
	// The source's schema names the columns; the target reads it too (a
	// SQL backend learns its key's type), so a missing column fails here.
	if d, ok := v.cfg.Source.(Describer); ok {
		desc, err := d.Describe(ctx, t)
		if err != nil {
			return fail(fmt.Errorf("reading the source's schema: %w", err))
		}
		t = desc
	}
	if d, ok := v.cfg.Target.(Describer); ok {
		if _, err := d.Describe(ctx, t); err != nil {
			return fail(fmt.Errorf("reading the target's schema: %w", err))
		}
	}
	rep.Table = t
	tr := &tableRun{v: v, t: t, salt: salt, id: v.checkpointID(t), rep: &rep, suspects: map[string]struct{}{}}
	cp, resumed, err := v.cfg.Checkpoints.Load(ctx, tr.id)
	if err != nil {
		return fail(fmt.Errorf("loading the checkpoint: %w", err))
	}
	if resumed {
		rep.ResumedFrom = &cp
		for _, k := range cp.Pending {
			tr.suspects[k] = struct{}{}
		}
		v.cfg.Logger.Info("resuming from the checkpoint", "table", t.Name, "after", cp.After, "scanned", cp.Scanned, "pending", len(cp.Pending))
	}
	if !cp.Scanned {
		start := Range{Lo: cp.After, HasLo: cp.HasAfter}
		if err := tr.compareChunks(ctx, start); err != nil {
			return fail(err)
		}
	}
	if err := tr.recheck(ctx); err != nil {
		return fail(err)
	}
	if err := v.cfg.Checkpoints.Clear(ctx, tr.id); err != nil {
		return fail(fmt.Errorf("clearing the checkpoint: %w", err))
	}
	rep.Complete = true
	v.mu.Lock()
	open := v.open[t.Name]
	if !resumed {
		clear(open) // a full pass: what it did not find is not open any more
	}
	for _, m := range rep.Mismatches {
		open[m.Key] = m
	}
	v.mu.Unlock()
	return rep
}

// chunk is one range of keys to compare; src is the source's checksum when
// the producer already computed it.
type chunk struct {
	seq int
	r   Range
	src *Checksum
}

// compareChunks compares every chunk from start to the end of the table,
// Workers at a time, advancing the checkpoint over the chunks done in key
// order.
func (tr *tableRun) compareChunks(ctx context.Context, start Range) error {
	cfg := tr.v.cfg
	g, gctx := errgroup.WithContext(ctx)
	chunks := make(chan chunk, cfg.Workers)
	g.Go(func() error {
		defer close(chunks)
		return tr.produce(gctx, start, chunks)
	})
	done := newProgress(start)
	for range cfg.Workers {
		g.Go(func() error {
			for c := range chunks {
				if err := tr.compareChunk(gctx, c); err != nil {
					return err
				}
				if adv, ok := done.finish(c); ok {
					if err := tr.save(gctx, adv, false); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return tr.save(ctx, done.last(), true)
}

// produce cuts the table into chunks of ChunkSize source rows.
func (tr *tableRun) produce(ctx context.Context, start Range, out chan<- chunk) error {
	cfg := tr.v.cfg
	b, bounded := cfg.Source.(Bounder)
	lo := start
	for seq := 0; ; seq++ {
		c := chunk{seq: seq}
		if bounded {
			key, ok, err := b.Boundary(ctx, tr.t, lo, cfg.ChunkSize-1)
			if err != nil {
				return fmt.Errorf("finding chunk %d's end in the source: %w", seq, err)
			}
			c.r = lo
			if ok {
				c.r = lo.below(key)
			}
		} else {
			cs, last, err := cfg.Source.Chunk(ctx, tr.t, lo, cfg.ChunkSize, tr.salt)
			if err != nil {
				return fmt.Errorf("checksumming chunk %d in the source: %w", seq, err)
			}
			c.r, c.src = lo, &cs
			if cs.Rows == int64(cfg.ChunkSize) {
				c.r = lo.below(last)
			}
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !c.r.HasHi {
			return nil // the last chunk runs to the end of the key space
		}
		lo = Range{Lo: c.r.Hi, HasLo: true}
	}
}

// both runs f on the source and the target at once.
func both[T any](ctx context.Context, f func(ctx context.Context, b Backend) (T, error), src, tgt Backend) (T, T, error) {
	var s T
	var serr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		s, serr = f(ctx, src)
	}()
	t, terr := f(ctx, tgt)
	<-done
	if serr != nil {
		return s, t, fmt.Errorf("source: %w", serr)
	}
	if terr != nil {
		return s, t, fmt.Errorf("target: %w", terr)
	}
	return s, t, nil
}

// compareChunk compares one chunk and splits it when it differs.
func (tr *tableRun) compareChunk(ctx context.Context, c chunk) error {
	cfg := tr.v.cfg
	var src, tgt Checksum
	var err error
	if c.src != nil {
		src = *c.src
		tgt, err = cfg.Target.Checksum(ctx, tr.t, c.r, tr.salt)
		if err != nil {
			err = fmt.Errorf("target: %w", err)
		}
	} else {
		src, tgt, err = both(ctx, func(ctx context.Context, b Backend) (Checksum, error) {
			return b.Checksum(ctx, tr.t, c.r, tr.salt)
		}, cfg.Source, cfg.Target)
	}
	if err != nil {
		return fmt.Errorf("checksumming chunk %s: %w", c.r, err)
	}
	mismatched := src != tgt
	if mismatched {
		tr.v.cfg.Logger.Debug("chunk differs", "table", tr.t.Name, "range", c.r.String(), "source", src, "target", tgt)
		if err := tr.split(ctx, c.r, src, tgt, 0); err != nil {
			return err
		}
	}
	tr.mu.Lock()
	tr.rep.RowsVerified += src.Rows
	tr.rep.Chunks++
	if mismatched {
		tr.rep.ChunksMismatched++
	}
	tr.mu.Unlock()
	tr.v.count(tr.t.Name, func(s *tableStats) {
		s.rows += float64(src.Rows)
		s.chunks++
		if mismatched {
			s.chunksMismatched++
		}
	})
	return nil
}

// maxDepth bounds the splitting of a range (a range of 2^64 rows splits 64
// times); past it the rows are compared one by one whatever their number.
const maxDepth = 64

// split finds the differing rows of r, whose checksums differ: it halves r
// at the larger side's middle key and recurses into the halves that
// differ, down to LeafRows rows.
func (tr *tableRun) split(ctx context.Context, r Range, src, tgt Checksum, depth int) error {
	cfg := tr.v.cfg
	if max(src.Rows, tgt.Rows) <= int64(cfg.LeafRows) || depth >= maxDepth {
		return tr.leaf(ctx, r)
	}
	big, other := cfg.Source, cfg.Target
	bigSum, otherSum := src, tgt
	if tgt.Rows > src.Rows {
		big, other, bigSum, otherSum = other, big, otherSum, bigSum
	}
	lowBig, mid, err := big.Chunk(ctx, tr.t, r, int(bigSum.Rows/2), tr.salt)
	if err != nil {
		return fmt.Errorf("splitting %s: %w", r, err)
	}
	if lowBig.Rows == 0 {
		return tr.leaf(ctx, r) // the rows moved under us: compare what is there
	}
	lower, upper := r.below(mid), r.above(mid)
	lowOther, err := other.Checksum(ctx, tr.t, lower, tr.salt)
	if err != nil {
		return fmt.Errorf("splitting %s: %w", r, err)
	}
	highBig, highOther := bigSum.Minus(lowBig), otherSum.Minus(lowOther)
	if highBig.Rows < 0 || highOther.Rows < 0 { // rows changed since the parent's checksum: read again
		if highBig, highOther, err = both(ctx, func(ctx context.Context, b Backend) (Checksum, error) {
			return b.Checksum(ctx, tr.t, upper, tr.salt)
		}, big, other); err != nil {
			return fmt.Errorf("splitting %s: %w", r, err)
		}
	}
	unswap := func(b, o Checksum) (Checksum, Checksum) {
		if big == cfg.Source {
			return b, o
		}
		return o, b
	}
	if ls, lt := unswap(lowBig, lowOther); ls != lt {
		if err := tr.split(ctx, lower, ls, lt, depth+1); err != nil {
			return err
		}
	}
	if hs, ht := unswap(highBig, highOther); hs != ht {
		if err := tr.split(ctx, upper, hs, ht, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// leaf compares the rows of r one by one and records the differing keys as
// suspects.
func (tr *tableRun) leaf(ctx context.Context, r Range) error {
	hs, ht, err := both(ctx, func(ctx context.Context, b Backend) (map[string]uint64, error) {
		return b.RowHashes(ctx, tr.t, r, tr.salt)
	}, tr.v.cfg.Source, tr.v.cfg.Target)
	if err != nil {
		return fmt.Errorf("reading the row hashes of %s: %w", r, err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for k, h := range hs {
		if g, ok := ht[k]; !ok || g != h {
			tr.suspects[k] = struct{}{}
		}
	}
	for k := range ht {
		if _, ok := hs[k]; !ok {
			tr.suspects[k] = struct{}{}
		}
	}
	if n := len(tr.suspects); n > tr.v.cfg.MaxSuspects {
		return fmt.Errorf("more than %d rows differ (max suspects): the target is too far from the source to repair row by row; copy the table afresh", tr.v.cfg.MaxSuspects)
	}
	return nil
}

// save writes the checkpoint: chunks up to after are compared (scanned:
// all of them), plus the suspects found so far.
func (tr *tableRun) save(ctx context.Context, after Range, scanned bool) error {
	tr.mu.Lock()
	pending := slices.Sorted(maps.Keys(tr.suspects))
	tr.mu.Unlock()
	cp := Checkpoint{After: after.Lo, HasAfter: after.HasLo, Scanned: scanned, Pending: pending, Updated: tr.v.cfg.Now()}
	if err := tr.v.cfg.Checkpoints.Save(ctx, tr.id, cp); err != nil {
		return fmt.Errorf("saving the checkpoint: %w", err)
	}
	return nil
}

// progress tracks the chunks done, to advance the checkpoint over the
// longest run of finished chunks from the start.
type progress struct {
	mu   sync.Mutex
	next int
	done map[int]Range
	lo   Range // the start of the first unfinished chunk
}

func newProgress(start Range) *progress { return &progress{done: map[int]Range{}, lo: start} }

// finish marks c done and returns the new start when it moved.
func (p *progress) finish(c chunk) (Range, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[c.seq] = c.r
	moved := false
	for {
		r, ok := p.done[p.next]
		if !ok {
			break
		}
		delete(p.done, p.next)
		p.next++
		if r.HasHi {
			p.lo = Range{Lo: r.Hi, HasLo: true}
		}
		moved = true
	}
	return p.lo, moved
}

func (p *progress) last() Range {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lo
}

// recheck re-reads the suspects until each is settled: matching now (in
// flight: dropped), differing the same way twice across a wait of at least
// the sync lag (confirmed: reported), or still changing after Rechecks
// waits (unsettled).
func (tr *tableRun) recheck(ctx context.Context) error {
	cfg := tr.v.cfg
	if len(tr.suspects) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(tr.suspects))
	tr.rep.Suspects = len(keys)
	live := make(map[string]*suspect, len(keys))
	for _, k := range keys {
		live[k] = &suspect{key: k}
	}
	inFlight := 0
	// observe reads the live suspects, drops those that match, and
	// returns the keys whose rows stayed as last seen.
	observe := func() ([]string, error) {
		src, tgt, err := tr.readRows(ctx, slices.Sorted(maps.Keys(live)))
		if err != nil {
			return nil, err
		}
		var stable []string
		for _, k := range slices.Sorted(maps.Keys(live)) {
			s := live[k]
			sr, tg := src[k], tgt[k]
			if sameRow(sr, tg) {
				delete(live, k)
				inFlight++
				continue
			}
			if s.seen && sameRow(s.src, sr) && sameRow(s.tgt, tg) {
				stable = append(stable, k)
			}
			s.src, s.tgt, s.seen = sr, tg, true
		}
		return stable, nil
	}
	if _, err := observe(); err != nil {
		return err
	}
	for round := 0; round < cfg.Rechecks && len(live) > 0; round++ {
		delay := cfg.RecheckAfter
		if cfg.Lag != nil {
			if lag, err := cfg.Lag(ctx); err != nil {
				cfg.Logger.Warn("reading the sync lag for the re-check failed; waiting recheck-after only", "err", err.Error())
			} else if d := lag + cfg.RecheckAfter/2; d > delay {
				delay = d
			}
		}
		cfg.Logger.Debug("re-checking suspects after the sync lag", "table", tr.t.Name, "suspects", len(live), "delay", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cfg.After(delay):
		}
		stable, err := observe()
		if err != nil {
			return err
		}
		for _, k := range stable {
			tr.confirm(live[k])
			delete(live, k)
		}
	}
	tr.rep.InFlight = inFlight
	tr.rep.Unsettled = slices.Sorted(maps.Keys(live))
	tr.v.count(tr.t.Name, func(s *tableStats) {
		s.inFlight += float64(inFlight)
		s.unsettled += float64(len(live))
	})
	for _, k := range tr.rep.Unsettled {
		cfg.Logger.Warn("row kept changing through every re-check: not reported", "table", tr.t.Name, "key", k)
	}
	return nil
}

// confirm reports a suspect as a mismatch.
func (tr *tableRun) confirm(s *suspect) {
	cfg := tr.v.cfg
	m := Mismatch{Table: tr.t, Key: s.key, Kind: kindOf(s.src, s.tgt), Source: s.src, Target: s.tgt, Found: cfg.Now()}
	if r, ok := cfg.Target.(Repairer); ok {
		m.Repair = r.Statement(tr.t, s.key, s.tgt, s.src)
	}
	tr.rep.Mismatches = append(tr.rep.Mismatches, m)
	tr.v.count(tr.t.Name, func(st *tableStats) { st.mismatched[m.Kind]++ })
	cfg.Logger.Warn("row mismatch", "table", tr.t.Name, "key", s.key, "kind", string(m.Kind),
		"source_region", cfg.SourceRegion, "target_region", cfg.TargetRegion, "repair", m.Repair)
}

// readRows reads keys from both regions, rowsBatch keys per call.
func (tr *tableRun) readRows(ctx context.Context, keys []string) (src, tgt map[string]Row, err error) {
	src, tgt = map[string]Row{}, map[string]Row{}
	for batch := range slices.Chunk(keys, rowsBatch) {
		s, t, err := both(ctx, func(ctx context.Context, b Backend) (map[string]Row, error) {
			return b.Rows(ctx, tr.t, batch)
		}, tr.v.cfg.Source, tr.v.cfg.Target)
		if err != nil {
			return nil, nil, fmt.Errorf("re-reading suspect rows: %w", err)
		}
		maps.Copy(src, s)
		maps.Copy(tgt, t)
	}
	return src, tgt, nil
}

// count updates a table's stats under the lock.
func (v *Verifier) count(table string, f func(*tableStats)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f(v.stats[table])
}
