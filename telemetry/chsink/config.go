package chsink

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// Defaults of Config.
const (
	DefaultDatabase        = "carpoolsla"
	DefaultQueueSize       = 50_000
	DefaultBatchSize       = 10_000
	DefaultInserters       = 2
	DefaultFlushInterval   = time.Second
	DefaultEnqueueTimeout  = 5 * time.Millisecond
	DefaultInsertTimeout   = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultRetryAttempts   = 2
	DefaultRetryInitial    = 100 * time.Millisecond
	DefaultRetryMax        = 5 * time.Second
	DefaultRetryJitter     = 0.5
	DefaultWALMaxBytes     = 1 << 30
	DefaultWALSegmentBytes = 64 << 20
	DefaultWALSyncInterval = time.Second
)

// Config configures a Writer (and every writer of a Sink, each table with the
// same settings). The zero value of every field means its default.
type Config struct {
	// Database holds the tables (default carpoolsla).
	Database string
	// QueueSize bounds the in-memory queue, in records (default 50,000).
	QueueSize int
	// BatchSize is the most records one INSERT carries (default 10,000).
	BatchSize int
	// FlushInterval is the longest a record waits in a partial batch
	// (default 1s).
	FlushInterval time.Duration
	// Inserters is how many batch inserts may be in flight at once
	// (default 2: one encodes and sends while the server takes the other).
	Inserters int
	// EnqueueTimeout is the longest Write waits for room in a full queue
	// before it writes the record to the write-ahead log itself (or, without
	// one, drops and counts it). Default 5ms; negative: never wait.
	EnqueueTimeout time.Duration
	// InsertTimeout bounds one INSERT (default 30s).
	InsertTimeout time.Duration
	// ShutdownTimeout bounds the last inserts when Run's context ends; what
	// is not inserted by then goes to the write-ahead log (default 10s).
	ShutdownTimeout time.Duration
	// Retry paces the retries of a failing insert.
	Retry RetryConfig
	// WAL configures the write-ahead log; without WAL.Dir there is none and a
	// batch that fails its retries is dropped and counted.
	WAL WALConfig
	// Now is the clock that stamps records without a time (default time.Now).
	Now func() time.Time
	// Logger receives the pipeline's own messages (default: discarded). Do
	// not give it a logger that writes into this pipeline.
	Logger *slog.Logger
	// Metrics receives the counts (default: unregistered collectors).
	Metrics *Metrics
}

// RetryConfig paces retries: exponential backoff from Initial to Max, each
// wait randomised by ±Jitter (a fraction) so that many writers do not retry in
// step. A live batch gets Attempts tries before it goes to the write-ahead
// log; the write-ahead log's replay retries until it succeeds.
type RetryConfig struct {
	Attempts int           // default 2
	Initial  time.Duration // default 100ms
	Max      time.Duration // default 5s
	Jitter   float64       // default 0.5; 0 to 1
}

// WALConfig configures the write-ahead log (one folder per table under Dir).
type WALConfig struct {
	// Dir is the folder; "" means no write-ahead log.
	Dir string
	// MaxBytes bounds each table's log on disk (default 1 GiB). A record that
	// would pass it is lost and counted.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file starts
	// (default 64 MiB); at most MaxBytes.
	SegmentBytes int64
	// Sync is the fsync policy (default SyncInterval).
	Sync SyncPolicy
	// SyncInterval is the longest unsynced writes wait under SyncInterval
	// (default 1s).
	SyncInterval time.Duration
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Inserters == 0 {
		c.Inserters = DefaultInserters
	}
	if c.EnqueueTimeout == 0 {
		c.EnqueueTimeout = DefaultEnqueueTimeout
	}
	if c.InsertTimeout == 0 {
		c.InsertTimeout = DefaultInsertTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Retry.Attempts == 0 {
		c.Retry.Attempts = DefaultRetryAttempts
	}
	if c.Retry.Initial == 0 {
		c.Retry.Initial = DefaultRetryInitial
	}
	if c.Retry.Max == 0 {
		c.Retry.Max = max(DefaultRetryMax, c.Retry.Initial)
	}
	if c.Retry.Jitter == 0 {
		c.Retry.Jitter = DefaultRetryJitter
	}
	if c.WAL.MaxBytes == 0 {
		c.WAL.MaxBytes = DefaultWALMaxBytes
	}
	if c.WAL.SegmentBytes == 0 {
		c.WAL.SegmentBytes = min(DefaultWALSegmentBytes, c.WAL.MaxBytes)
	}
	if c.WAL.SyncInterval == 0 {
		c.WAL.SyncInterval = DefaultWALSyncInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks the configuration, defaults filled in, and says what to
// change.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("chsink: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !identRe.MatchString(c.Database) {
		bad("Database", "%q is not a plain identifier; use letters, digits and _", c.Database)
	}
	if c.QueueSize < 1 {
		bad("QueueSize", "is %d; give at least 1 record", c.QueueSize)
	}
	if c.BatchSize < 1 {
		bad("BatchSize", "is %d; give at least 1 record", c.BatchSize)
	}
	if c.Inserters < 1 || c.Inserters > 16 {
		bad("Inserters", "is %d; give 1 to 16 concurrent inserts", c.Inserters)
	}
	if c.FlushInterval < 0 {
		bad("FlushInterval", "is %s; give a positive duration", c.FlushInterval)
	}
	if c.EnqueueTimeout >= c.FlushInterval && c.FlushInterval > 0 {
		bad("EnqueueTimeout", "is %s, not below FlushInterval (%s); a caller would wait longer than a batch", c.EnqueueTimeout, c.FlushInterval)
	}
	if c.InsertTimeout < 0 || c.ShutdownTimeout < 0 {
		bad("InsertTimeout/ShutdownTimeout", "are %s and %s; give positive durations", c.InsertTimeout, c.ShutdownTimeout)
	}
	r := c.Retry
	if r.Attempts < 1 {
		bad("Retry.Attempts", "is %d; give at least 1", r.Attempts)
	}
	if r.Initial < 0 || r.Max < r.Initial {
		bad("Retry", "Initial %s and Max %s: want 0 < Initial <= Max", r.Initial, r.Max)
	}
	if r.Jitter < 0 || r.Jitter > 1 {
		bad("Retry.Jitter", "is %g; give a fraction from 0 to 1", r.Jitter)
	}
	w := c.WAL
	if w.Dir != "" {
		const minSegment = 4 << 10
		if w.SegmentBytes < minSegment {
			bad("WAL.SegmentBytes", "is %d; give at least %d", w.SegmentBytes, minSegment)
		}
		if w.MaxBytes < w.SegmentBytes {
			bad("WAL.MaxBytes", "is %d, below WAL.SegmentBytes (%d); the bound must hold at least one segment", w.MaxBytes, w.SegmentBytes)
		}
		if w.Sync < SyncInterval || w.Sync > SyncNever {
			bad("WAL.Sync", "is %s; use SyncInterval, SyncAlways or SyncNever", w.Sync)
		}
		if w.SyncInterval < 0 {
			bad("WAL.SyncInterval", "is %s; give a positive duration", w.SyncInterval)
		}
	}
	return errors.Join(errs...)
}
