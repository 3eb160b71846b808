package synclag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
)

// Backend and role names of the standalone exporter's flags.
const (
	BackendMySQL    = "mysql"
	BackendPostgres = "postgres"
	BackendRedis    = "redis"

	RoleWriter = "writer"
	RoleReader = "reader"
	RoleBoth   = "both"
)

// Flags are the standalone exporter's flags (`carpoolsla exporter synclag`).
type Flags struct {
	Backend       string
	Role          string
	Region        string
	TargetRegion  string
	Sources       []string
	SourceDSN     string
	TargetDSN     string
	SourceAddr    string
	TargetAddr    string
	Table         string
	RedisKey      string
	Interval      time.Duration
	CreateTable   bool
	ScrapeTimeout time.Duration
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.Backend, "backend", "", "heartbeat backend: mysql (also MariaDB), postgres or redis (required)")
	fs.StringVar(&f.Role, "role", RoleBoth, "writer (stamp the heartbeat on the source), reader (report lag from the target) or both")
	fs.StringVar(&f.Region, "region", "", "the source region: the writer's region, the row it stamps (required for writer and both; for reader, names the expected source)")
	fs.StringVar(&f.TargetRegion, "target-region", "", "the reader's (target) region name (required for reader and both)")
	fs.StringSliceVar(&f.Sources, "sources", nil, "source regions expected in the target (default --region); one without a heartbeat reports the lag since start")
	fs.StringVar(&f.SourceDSN, "source-dsn", "", "mysql/postgres: the source (primary) DSN the writer upserts into; with role reader, read for the written timestamp")
	fs.StringVar(&f.TargetDSN, "target-dsn", "", "mysql/postgres: the target (replica) DSN the reader reads")
	fs.StringVar(&f.SourceAddr, "source-addr", "", "redis: the source host:port or redis:// URL the writer writes to")
	fs.StringVar(&f.TargetAddr, "target-addr", "", "redis: the target (replica) host:port or redis:// URL the reader reads")
	fs.StringVar(&f.Table, "table", DefaultTable, "mysql/postgres: the heartbeat table, [database.]name")
	fs.StringVar(&f.RedisKey, "redis-key", DefaultRedisKey, "redis: the heartbeat hash")
	fs.DurationVar(&f.Interval, "interval", DefaultInterval, "how often the writer stamps the heartbeat")
	fs.BoolVar(&f.CreateTable, "create-table", false, "mysql/postgres: create the heartbeat table (and its database or schema) on the source if missing")
	fs.DurationVar(&f.ScrapeTimeout, "scrape-timeout", exporters.DefaultScrapeTimeout, "bound on one scrape's reads")
}

// Exporter is a built standalone sync-lag exporter: register Collectors in
// a registry, serve it with exporters.Handler(reg, Sets...), and Run it.
type Exporter struct {
	Collectors []prometheus.Collector
	Sets       []*vmetrics.Set
	// Reader and Writer are the parts built for the role (nil when not).
	Reader *Reader
	Writer *Writer

	closers []io.Closer
}

// Run runs the writer (when there is one) until ctx ends, then closes the
// backends' connections. It returns nil on cancel; a nil Exporter returns
// at once.
func (e *Exporter) Run(ctx context.Context) error {
	if e == nil {
		return nil
	}
	if e.Writer != nil {
		_ = e.Writer.Run(ctx)
	} else {
		<-ctx.Done()
	}
	return e.Close()
}

// Close closes the backends' connections.
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

// Validate checks the flags against each other.
func (f *Flags) Validate() error {
	backends := []string{BackendMySQL, BackendPostgres, BackendRedis}
	switch {
	case f.Backend == "":
		return errors.New("synclag: --backend is required: mysql, postgres or redis")
	case !slices.Contains(backends, f.Backend):
		return fmt.Errorf("synclag: --backend %q is unknown: use mysql, postgres or redis", f.Backend)
	case f.Role != RoleWriter && f.Role != RoleReader && f.Role != RoleBoth:
		return fmt.Errorf("synclag: --role %q is unknown: use writer, reader or both", f.Role)
	case f.Interval <= 0:
		return fmt.Errorf("synclag: --interval %v must be positive", f.Interval)
	case f.ScrapeTimeout <= 0:
		return fmt.Errorf("synclag: --scrape-timeout %v must be positive", f.ScrapeTimeout)
	}
	redisBackend := f.Backend == BackendRedis
	source, target := f.SourceDSN, f.TargetDSN
	srcFlag, tgtFlag := "--source-dsn", "--target-dsn"
	if redisBackend {
		source, target = f.SourceAddr, f.TargetAddr
		srcFlag, tgtFlag = "--source-addr", "--target-addr"
		if f.SourceDSN != "" || f.TargetDSN != "" {
			return errors.New("synclag: the redis backend takes --source-addr and --target-addr, not --source-dsn or --target-dsn")
		}
		if f.CreateTable {
			return errors.New("synclag: --create-table applies to mysql and postgres only (a Redis hash needs no table)")
		}
	} else if f.SourceAddr != "" || f.TargetAddr != "" {
		return fmt.Errorf("synclag: the %s backend takes --source-dsn and --target-dsn, not --source-addr or --target-addr", f.Backend)
	}
	writes := f.Role != RoleReader
	reads := f.Role != RoleWriter
	if writes {
		switch {
		case f.Region == "":
			return fmt.Errorf("synclag: --region is required with --role %s: the region whose heartbeat the writer stamps", f.Role)
		case source == "":
			return fmt.Errorf("synclag: %s is required with --role %s: where the writer stamps the heartbeat", srcFlag, f.Role)
		}
	} else if f.CreateTable {
		return errors.New("synclag: --create-table needs --role writer or both: the table is created on the source by the writer")
	}
	if reads {
		switch {
		case f.TargetRegion == "":
			return fmt.Errorf("synclag: --target-region is required with --role %s: the region the reader reports lag into", f.Role)
		case target == "":
			return fmt.Errorf("synclag: %s is required with --role %s: where the reader reads the applied heartbeats", tgtFlag, f.Role)
		case f.TargetRegion == f.Region:
			return fmt.Errorf("synclag: --region and --target-region are both %q: the source and target regions must differ", f.Region)
		}
		if !writes && source != "" && f.Region == "" {
			return fmt.Errorf("synclag: %s with --role reader needs --region, the source region whose written heartbeat it reads", srcFlag)
		}
	} else if target != "" || f.TargetRegion != "" || len(f.Sources) > 0 {
		return fmt.Errorf("synclag: %s, --target-region and --sources need --role reader or both", tgtFlag)
	}
	return nil
}

// Build validates the flags and builds the exporter; it connects to
// nothing (an unreachable backend shows as up 0 at scrape time).
func (f *Flags) Build(log *slog.Logger) (*Exporter, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{}
	fail := func(err error) (*Exporter, error) {
		_ = e.Close()
		return nil, err
	}
	open := func(dsnOrAddr string, create bool) (HeartbeatBackend, error) {
		switch f.Backend {
		case BackendMySQL:
			b, err := OpenMySQL(MySQLConfig{DSN: dsnOrAddr, Table: f.Table, CreateTable: create, Logger: log})
			if err == nil {
				e.closers = append(e.closers, b)
			}
			return b, err
		case BackendPostgres:
			b, err := OpenPostgres(PostgresConfig{DSN: dsnOrAddr, Table: f.Table, CreateTable: create})
			if err == nil {
				e.closers = append(e.closers, b)
			}
			return b, err
		default:
			b, err := OpenRedis(RedisConfig{Addr: dsnOrAddr, Key: f.RedisKey})
			if err == nil {
				e.closers = append(e.closers, b)
			}
			return b, err
		}
	}
	source, target := f.SourceDSN, f.TargetDSN
	srcFlag, tgtFlag := "--source-dsn", "--target-dsn"
	if f.Backend == BackendRedis {
		source, target = f.SourceAddr, f.TargetAddr
		srcFlag, tgtFlag = "--source-addr", "--target-addr"
	}
	cfg := Config{Logger: log}
	if f.Role != RoleReader {
		b, err := open(source, f.CreateTable)
		if err != nil {
			return fail(fmt.Errorf("synclag: %s: %w", srcFlag, err))
		}
		if e.Writer, err = NewWriter(WriterConfig{Region: f.Region, Backend: b, Interval: f.Interval, Logger: log}); err != nil {
			return fail(err)
		}
		cfg.Written = append(cfg.Written, e.Writer)
		e.Collectors = append(e.Collectors, e.Writer)
	} else if source != "" {
		b, err := open(source, false)
		if err != nil {
			return fail(fmt.Errorf("synclag: %s: %w", srcFlag, err))
		}
		cfg.Written = append(cfg.Written, OnlyRegion(f.Region, b))
	}
	if f.Role != RoleWriter {
		b, err := open(target, false)
		if err != nil {
			return fail(fmt.Errorf("synclag: %s: %w", tgtFlag, err))
		}
		sources := f.Sources
		if len(sources) == 0 && f.Region != "" {
			sources = []string{f.Region}
		}
		cfg.Targets = []Target{{Region: f.TargetRegion, Applied: b, Sources: sources}}
	}
	r, err := New(cfg)
	if err != nil {
		return fail(err)
	}
	e.Reader = r
	e.Collectors = append(e.Collectors, exporters.NewCollector(r, f.ScrapeTimeout, log))
	if s := r.Set(); s != nil {
		e.Sets = append(e.Sets, s)
	}
	return e, nil
}
