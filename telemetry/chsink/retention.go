package chsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// DefaultRetentionInterval is how often the RetentionJob runs by default.
const DefaultRetentionInterval = time.Hour

// RetentionConfig configures a RetentionJob.
type RetentionConfig struct {
	// Database holds the tables (default carpoolsla).
	Database string
	// Retention is how long rows are kept, in whole days rounded up (the
	// spec's logs.retention). Required, at least one day.
	Retention time.Duration
	// Interval is the time between two runs (default 1h).
	Interval time.Duration
	// Tables are trimmed (default RetentionTables(): every table but
	// schema_migrations).
	Tables []string
	// Cluster, as in SchemaOptions: partitions are dropped ON CLUSTER from
	// the <table>_local tables.
	Cluster string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives a line per dropped partition and per failure.
	Logger *slog.Logger
	// Metrics receives the counts (default: unregistered collectors).
	Metrics *Metrics
}

// RetentionJob drops the day partitions that have left the retention
// window: with a retention of N days it keeps the partitions of the last N
// calendar days (today included, in the server's time zone, which is the one
// toYYYYMMDD partitions by) and drops older ones with ALTER TABLE … DROP
// PARTITION. That is the only retention ClickHouse 18.16 has (no TTL); on
// newer servers it runs beside the tables' TTL, which expires the same rows.
// A row is so kept between N−1 and N days: set N+1 to keep every row at least
// N full days.
type RetentionJob struct {
	conn DDLConn
	cfg  RetentionConfig
	days int
	m    *Metrics
}

// NewRetentionJob checks cfg and returns the job.
func NewRetentionJob(conn DDLConn, cfg RetentionConfig) (*RetentionJob, error) {
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultRetentionInterval
	}
	if cfg.Tables == nil {
		cfg.Tables = RetentionTables()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if conn == nil {
		errs = append(errs, errors.New("chsink: retention: the ClickHouse connection is nil; open one with clickhouse.Open"))
	}
	if !identRe.MatchString(cfg.Database) {
		errs = append(errs, fmt.Errorf("chsink: retention: Database %q is not a plain identifier", cfg.Database))
	}
	if cfg.Retention < 24*time.Hour {
		errs = append(errs, fmt.Errorf("chsink: retention: Retention is %s; give at least one day (the spec's logs.retention)", cfg.Retention))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("chsink: retention: Interval is %s; give a positive duration", cfg.Interval))
	}
	if cfg.Cluster != "" && !identRe.MatchString(cfg.Cluster) {
		errs = append(errs, fmt.Errorf("chsink: retention: Cluster %q is not a plain identifier", cfg.Cluster))
	}
	for _, t := range cfg.Tables {
		if !identRe.MatchString(t) {
			errs = append(errs, fmt.Errorf("chsink: retention: table %q is not a plain identifier", t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m := cfg.Metrics
	if m == nil {
		m, _ = NewMetrics(nil) // unregistered: cannot fail
	}
	return &RetentionJob{conn: conn, cfg: cfg, days: RetentionDays(cfg.Retention), m: m}, nil
}

// Partition is one day partition of a table.
type Partition struct {
	Table string
	Day   uint32 // YYYYMMDD, the partition's value
}

// RetentionResult says what one run did.
type RetentionResult struct {
	OldestKept uint32      // YYYYMMDD: partitions before it are dropped
	Dropped    []Partition // dropped by this run, oldest first per table
}

// OldestKeptDay returns the first day (YYYYMMDD) of the retention window at
// now in loc.
func OldestKeptDay(now time.Time, loc *time.Location, days int) uint32 {
	t := now.In(loc)
	first := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc).AddDate(0, 0, -(days - 1))
	return uint32(first.Year()*10000 + int(first.Month())*100 + first.Day())
}

// RunOnce drops every expired partition once. It goes on past a partition
// it cannot drop and returns the failures joined.
func (j *RetentionJob) RunOnce(ctx context.Context) (RetentionResult, error) {
	var res RetentionResult
	db := j.cfg.Database
	fail := func(err error) (RetentionResult, error) {
		j.m.retentionRuns.WithLabelValues(db, catalog.OutcomeError).Inc()
		return res, err
	}
	var tz []struct {
		TZ string `ch:"tz"`
	}
	if err := j.conn.Select(ctx, &tz, "SELECT timezone() AS tz"); err != nil || len(tz) != 1 {
		return fail(fmt.Errorf("chsink: retention: reading the server's time zone: %w", err))
	}
	loc, err := time.LoadLocation(tz[0].TZ)
	if err != nil {
		j.cfg.Logger.Warn("unknown server time zone; computing days in UTC", "tz", tz[0].TZ, "err", err)
		loc = time.UTC
	}
	res.OldestKept = OldestKeptDay(j.cfg.Now(), loc, j.days)

	local := make([]string, len(j.cfg.Tables))
	byLocal := map[string]string{}
	for i, t := range j.cfg.Tables {
		local[i] = t
		if j.cfg.Cluster != "" {
			local[i] = t + "_local"
		}
		byLocal[local[i]] = t
	}
	var parts []struct {
		Table     string `ch:"table"`
		Partition string `ch:"partition"`
	}
	if err := j.conn.Select(ctx, &parts, "SELECT DISTINCT table, partition FROM system.parts WHERE database = ? AND active AND has(?, table)", db, local); err != nil {
		return fail(fmt.Errorf("chsink: retention: listing the partitions of %s: %w", db, err))
	}
	var drop []Partition
	for _, p := range parts {
		day, err := strconv.ParseUint(strings.Trim(p.Partition, "'"), 10, 32)
		if err != nil {
			j.cfg.Logger.Warn("a partition that is not a day (YYYYMMDD); leaving it", "table", p.Table, "partition", p.Partition)
			continue
		}
		if uint32(day) < res.OldestKept {
			drop = append(drop, Partition{Table: p.Table, Day: uint32(day)})
		}
	}
	slices.SortFunc(drop, func(a, b Partition) int {
		if c := strings.Compare(a.Table, b.Table); c != 0 {
			return c
		}
		return compareSeq(uint64(a.Day), uint64(b.Day))
	})
	var errs []error
	onCluster := ""
	if j.cfg.Cluster != "" {
		onCluster = " ON CLUSTER " + j.cfg.Cluster
	}
	for _, p := range drop {
		q := fmt.Sprintf("ALTER TABLE %s.%s%s DROP PARTITION %d", db, p.Table, onCluster, p.Day)
		if err := j.conn.Exec(ctx, q); err != nil {
			j.cfg.Logger.Error("dropping an expired partition failed; a partition larger than the server's "+
				"max_partition_size_to_drop needs that setting raised (or the force_drop_table flag file)",
				"table", p.Table, "partition", p.Day, "err", err)
			errs = append(errs, fmt.Errorf("chsink: retention: %s: %w", q, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		t := byLocal[p.Table]
		j.m.retentionDropped.WithLabelValues(db, t).Inc()
		j.cfg.Logger.Info("dropped an expired partition", "table", t, "partition", p.Day, "oldest_kept", res.OldestKept)
		res.Dropped = append(res.Dropped, Partition{Table: t, Day: p.Day})
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	j.m.retentionRuns.WithLabelValues(db, catalog.OutcomeOK).Inc()
	j.m.retentionLastSuccess.WithLabelValues(db).Set(float64(j.cfg.Now().Unix()))
	return res, nil
}

// Run runs the job at once and then every Interval until ctx ends; a failed
// run is logged and counted, and the next one tries again. It returns nil
// when ctx ends.
func (j *RetentionJob) Run(ctx context.Context) error {
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := j.RunOnce(ctx); err != nil && ctx.Err() == nil {
			j.cfg.Logger.Error("retention run failed; retrying at the next interval", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}
