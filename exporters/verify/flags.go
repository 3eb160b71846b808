package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
)

// Flags are the standalone verifier's flags (`carpoolsla exporter verify`).
type Flags struct {
	SourceDSN      string
	TargetDSN      string
	SourceRegion   string
	TargetRegion   string
	Tables         []string
	Key            string
	Columns        []string
	ChunkSize      int
	LeafRows       int
	Workers        int
	CheckpointFile string
	RecheckAfter   time.Duration
	Rechecks       int
	MaxSuspects    int
	Interval       time.Duration
	ScrapeTimeout  time.Duration
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.SourceDSN, "source-dsn", "", "the reference region's database: mysql://user:password@host:3306/db (MySQL, MariaDB; or the driver's user:password@tcp(host:3306)/db) or postgres://user:password@host:5432/db?sslmode=disable (required)")
	fs.StringVar(&f.TargetDSN, "target-dsn", "", "the checked region's database, same engine and schema as --source-dsn (required)")
	fs.StringVar(&f.SourceRegion, "source-region", DefaultSourceRegion, "the source region's name, in metrics and reports")
	fs.StringVar(&f.TargetRegion, "target-region", DefaultTargetRegion, "the target region's name, in metrics and reports")
	fs.StringSliceVar(&f.Tables, "table", nil, "table to compare, [database.]name or [schema.]name; repeat or comma-separate for several (required)")
	fs.StringVar(&f.Key, "key", "", "the unique, non-null column to chunk by (default: the table's single-column primary key); applies to every --table")
	fs.StringSliceVar(&f.Columns, "columns", nil, "the columns to compare (default: all); applies to every --table")
	fs.IntVar(&f.ChunkSize, "chunk-size", DefaultChunkSize, "source rows per chunk")
	fs.IntVar(&f.LeafRows, "leaf-rows", DefaultLeafRows, "a differing range of at most this many rows is compared row by row instead of split again")
	fs.IntVar(&f.Workers, "workers", DefaultWorkers, "chunks compared at once (each queries both databases)")
	fs.StringVar(&f.CheckpointFile, "checkpoint-file", "", "JSON file keeping each table's last verified key, so a restarted run resumes (default: in memory only)")
	fs.DurationVar(&f.RecheckAfter, "recheck-after", DefaultRecheckAfter, "wait before re-reading a differing row; must exceed the replication's sync lag, or writes in flight are reported")
	fs.IntVar(&f.Rechecks, "rechecks", DefaultRechecks, "re-reads of a row that keeps changing before it is counted unsettled")
	fs.IntVar(&f.MaxSuspects, "max-suspects", DefaultMaxSuspects, "differing rows one pass over a table may hold before it gives up (a target that far off needs a fresh copy)")
	fs.DurationVar(&f.Interval, "interval", DefaultInterval, "time between two verification runs")
	fs.DurationVar(&f.ScrapeTimeout, "scrape-timeout", exporters.DefaultScrapeTimeout, "bound on one scrape (scrapes read counters only)")
}

// Validate checks the flags against each other.
func (f *Flags) Validate() error {
	if f.SourceDSN == "" || f.TargetDSN == "" {
		return errors.New("verify: --source-dsn and --target-dsn are required: mysql://user:password@host:3306/db or postgres://user:password@host:5432/db")
	}
	se, err := EngineOf(f.SourceDSN)
	if err != nil {
		return fmt.Errorf("verify: --source-dsn: %w", err)
	}
	te, err := EngineOf(f.TargetDSN)
	if err != nil {
		return fmt.Errorf("verify: --target-dsn: %w", err)
	}
	switch {
	case se != te:
		return fmt.Errorf("verify: --source-dsn is %s and --target-dsn %s: both regions must run the same engine (rows are hashed in their text form)", se, te)
	case len(f.Tables) == 0:
		return errors.New("verify: --table is required: the table(s) to compare")
	case f.SourceRegion == "" || f.TargetRegion == "":
		return errors.New("verify: --source-region and --target-region must not be empty")
	case f.SourceRegion == f.TargetRegion:
		return fmt.Errorf("verify: --source-region and --target-region are both %q: they must differ", f.SourceRegion)
	case f.ChunkSize < 2:
		return fmt.Errorf("verify: --chunk-size %d: it must be at least 2", f.ChunkSize)
	case f.LeafRows < 1 || f.LeafRows > f.ChunkSize:
		return fmt.Errorf("verify: --leaf-rows %d: it must be in [1, --chunk-size %d]", f.LeafRows, f.ChunkSize)
	case f.Workers < 1 || f.Workers > 256:
		return fmt.Errorf("verify: --workers %d: it must be in [1, 256]", f.Workers)
	case f.RecheckAfter < 0:
		return fmt.Errorf("verify: --recheck-after %v must not be negative", f.RecheckAfter)
	case f.Rechecks < 1:
		return fmt.Errorf("verify: --rechecks %d: at least one re-check is needed to tell a write in flight from a mismatch", f.Rechecks)
	case f.MaxSuspects < 1:
		return fmt.Errorf("verify: --max-suspects %d must be at least 1", f.MaxSuspects)
	case f.Interval <= 0:
		return fmt.Errorf("verify: --interval %v must be positive", f.Interval)
	case f.ScrapeTimeout <= 0:
		return fmt.Errorf("verify: --scrape-timeout %v must be positive", f.ScrapeTimeout)
	}
	seen := map[string]bool{}
	for _, t := range f.Tables {
		if _, _, err := splitName(t); err != nil {
			return fmt.Errorf("verify: --table: %w", err)
		}
		if seen[t] {
			return fmt.Errorf("verify: --table %q is given twice", t)
		}
		seen[t] = true
	}
	if f.CheckpointFile != "" {
		dir := filepath.Dir(f.CheckpointFile)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("verify: --checkpoint-file %s: its folder %s does not exist: create it or choose another path", f.CheckpointFile, dir)
		}
	}
	return nil
}

// Exporter is a built standalone verifier: register Collectors in a
// registry, serve it with exporters.Handler(reg, Sets...), and Run it.
type Exporter struct {
	Collectors []prometheus.Collector
	// Sets is nil: the verifier's few series are client_golang const
	// metrics.
	Sets []*vmetrics.Set
	// Verifier runs the comparisons; Source and Target are its backends.
	Verifier       *Verifier
	Source, Target *SQL

	closers []io.Closer
}

// Config returns the verifier's configuration the flags describe, with
// the backends given (the flags' DSNs are not opened).
func (f *Flags) Config(source, target Backend, log *slog.Logger) (Config, error) {
	cfg := Config{
		Source: source, Target: target, SourceRegion: f.SourceRegion, TargetRegion: f.TargetRegion,
		ChunkSize: f.ChunkSize, LeafRows: f.LeafRows, Workers: f.Workers,
		RecheckAfter: f.RecheckAfter, Rechecks: f.Rechecks, MaxSuspects: f.MaxSuspects, Interval: f.Interval, Logger: log,
	}
	if f.RecheckAfter == 0 {
		cfg.RecheckAfter = time.Nanosecond // 0 means "default" in Config; the flag means "at once"
	}
	for _, t := range f.Tables {
		cfg.Tables = append(cfg.Tables, Table{Name: t, Key: f.Key, Columns: f.Columns})
	}
	if f.CheckpointFile != "" {
		cps, err := NewFileCheckpoints(f.CheckpointFile)
		if err != nil {
			return Config{}, fmt.Errorf("verify: --checkpoint-file: %w", err)
		}
		cfg.Checkpoints = cps
	}
	return cfg, nil
}

// Build validates the flags and builds the exporter. It connects to
// nothing: an unreachable database is a failed run (up 0, logged), and the
// next run tries again.
func (f *Flags) Build(log *slog.Logger) (*Exporter, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("exporter", Name)
	e := &Exporter{}
	fail := func(err error) (*Exporter, error) {
		_ = e.Close()
		return nil, err
	}
	conns := 2*f.Workers + 2
	var err error
	if e.Source, err = OpenSQL(SQLConfig{DSN: f.SourceDSN, MaxConns: conns}); err != nil {
		return fail(fmt.Errorf("verify: --source-dsn: %w", err))
	}
	e.closers = append(e.closers, e.Source)
	if e.Target, err = OpenSQL(SQLConfig{DSN: f.TargetDSN, MaxConns: conns}); err != nil {
		return fail(fmt.Errorf("verify: --target-dsn: %w", err))
	}
	e.closers = append(e.closers, e.Target)
	cfg, err := f.Config(e.Source, e.Target, log)
	if err != nil {
		return fail(err)
	}
	if e.Verifier, err = New(cfg); err != nil {
		return fail(fmt.Errorf("verify: %w", err))
	}
	e.Collectors = []prometheus.Collector{exporters.NewCollector(e.Verifier, f.ScrapeTimeout, log)}
	return e, nil
}

// Run verifies on the timer until ctx ends, then closes the connections.
// It returns nil on cancel; a nil Exporter returns at once.
func (e *Exporter) Run(ctx context.Context) error {
	if e == nil {
		return nil
	}
	err := e.Verifier.Run(ctx)
	return errors.Join(err, e.Close())
}

// Close closes the databases' connections.
func (e *Exporter) Close() error {
	if e == nil {
		return nil
	}
	var errs []error
	for _, c := range e.closers {
		errs = append(errs, c.Close())
	}
	e.closers = nil
	return errors.Join(errs...)
}
