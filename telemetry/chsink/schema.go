package chsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ServerVersion is a ClickHouse server's version.
type ServerVersion struct{ Major, Minor, Patch uint64 }

func (v ServerVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v is major.minor or later.
func (v ServerVersion) AtLeast(major, minor uint64) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// HasTTL reports whether the server has table TTL (19.6 and later).
func (v ServerVersion) HasTTL() bool { return v.AtLeast(19, 6) }

// SchemaOptions configures Migrate and Migrations.
type SchemaOptions struct {
	// Database holds the tables (default carpoolsla).
	Database string
	// Retention is how long rows are kept (the spec's logs.retention), in
	// whole days, rounded up; at least one day. It sets each table's TTL
	// where the server has TTL; the RetentionJob enforces it everywhere.
	Retention time.Duration
	// Cluster, when set, creates every table ON CLUSTER as a
	// Replicated*MergeTree "<table>_local" with a Distributed "<table>" over
	// it, so that readers and writers use the same names as on one node.
	Cluster string
	// Now stamps schema_migrations.applied (default time.Now).
	Now func() time.Time
	// Logger receives one line per applied migration (default: discarded).
	Logger *slog.Logger
}

func (o SchemaOptions) withDefaults() SchemaOptions {
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate checks the options and says what to change.
func (o SchemaOptions) Validate() error {
	o = o.withDefaults()
	var errs []error
	if !identRe.MatchString(o.Database) {
		errs = append(errs, fmt.Errorf("chsink: schema: Database %q is not a plain identifier; use letters, digits and _", o.Database))
	}
	if o.Retention < 24*time.Hour {
		errs = append(errs, fmt.Errorf("chsink: schema: Retention is %s; give at least one day (the spec's logs.retention, e.g. 180d)", o.Retention))
	}
	if o.Cluster != "" && !identRe.MatchString(o.Cluster) {
		errs = append(errs, fmt.Errorf("chsink: schema: Cluster %q is not a plain identifier; give the cluster's name from remote_servers", o.Cluster))
	}
	return errors.Join(errs...)
}

// RetentionDays is the retention in whole days, rounded up.
func RetentionDays(d time.Duration) int {
	const day = 24 * time.Hour
	return int((d + day - 1) / day)
}

// Migration is one versioned step of the schema.
type Migration struct {
	Version    uint32
	Name       string
	Statements []string
}

// column is one column of a table definition.
type column struct{ name, typ string }

// tableDef is one table of the schema.
type tableDef struct {
	name      string
	columns   []column
	replacing bool   // ReplacingMergeTree: rows with the same sorting key (and so event id) are deduplicated
	timeCol   string // partitioned by day of it, and expired by it
	orderBy   string
	shardKey  string // Distributed sharding key: the same record always lands on the same shard
}

func cols(spec ...string) []column {
	out := make([]column, 0, len(spec)/2)
	for i := 0; i+1 < len(spec); i += 2 {
		out = append(out, column{spec[i], spec[i+1]})
	}
	return out
}

const byEventID = "cityHash64(toString(event_id))"

// schemaTables are the tables, in migration order. The column names and
// types are a contract with the readers (sla/report): add columns at the end,
// never rename or retype one.
var schemaTables = []tableDef{
	{
		name: TableLogs, replacing: true, timeCol: "ts", orderBy: "service, region, ts, event_id", shardKey: byEventID,
		columns: cols("event_id", "UUID", "ts", "DateTime", "ts_nano", "UInt32", "service", "String", "region", "String",
			"severity", "String", "trace_id", "String", "span_id", "String", "message", "String",
			"attr_keys", "Array(String)", "attr_values", "Array(String)"),
	},
	{
		name: TableSpans, replacing: true, timeCol: "start", orderBy: "trace_id, start, event_id", shardKey: "cityHash64(trace_id)",
		columns: cols("event_id", "UUID", "trace_id", "String", "span_id", "String", "parent_span_id", "String",
			"name", "String", "service", "String", "region", "String", "start", "DateTime", "start_nano", "UInt32",
			"duration_ns", "UInt64", "status_code", "String", "attr_keys", "Array(String)", "attr_values", "Array(String)"),
	},
	{
		// Not replacing: several rows share (trace_id, ts). A replayed batch
		// can add duplicate index rows; readers take DISTINCT.
		name: TableTraceIndex, timeCol: "ts", orderBy: "trace_id, ts", shardKey: "cityHash64(trace_id)",
		columns: cols("trace_id", "String", "ts", "DateTime", "service", "String", "region", "String", "source", "String"),
	},
	{
		name: TableSLAEvents, replacing: true, timeCol: "ts", orderBy: "ts, event_id", shardKey: byEventID,
		columns: cols("event_id", "UUID", "ts", "DateTime", "kind", "String", "region", "String", "service", "String",
			"slo", "String", "from_state", "String", "to_state", "String", "reason", "String",
			"value_keys", "Array(String)", "value_values", "Array(Float64)"),
	},
	{
		name: TableSLIMinutes, replacing: true, timeCol: "minute", orderBy: "service, slo, region, minute, event_id", shardKey: byEventID,
		columns: cols("event_id", "UUID", "minute", "DateTime", "service", "String", "slo", "String", "region", "String",
			"good", "UInt64", "total", "UInt64"),
	},
	{
		name: TableDrillResults, replacing: true, timeCol: "ts", orderBy: "scenario, ts, event_id", shardKey: byEventID,
		columns: cols("event_id", "UUID", "ts", "DateTime", "scenario", "String", "region", "String", "passed", "UInt8",
			"rto_seconds", "Float64", "rpo_seconds", "Float64", "detect_seconds", "Float64", "decide_seconds", "Float64",
			"shift_seconds", "Float64", "success_ratio", "Float64", "report", "String"),
	},
	{
		name: TableLoadRuns, replacing: true, timeCol: "ts", orderBy: "scenario, ts, event_id", shardKey: byEventID,
		columns: cols("event_id", "UUID", "ts", "DateTime", "scenario", "String", "target", "String",
			"target_rate", "Float64", "achieved_rate", "Float64", "duration_seconds", "Float64",
			"requests", "UInt64", "errors", "UInt64", "dropped", "UInt64",
			"p50_ms", "Float64", "p90_ms", "Float64", "p99_ms", "Float64", "p999_ms", "Float64",
			"passed", "UInt8", "summary", "String"),
	},
}

// RetentionTables are the day-partitioned tables the RetentionJob trims.
func RetentionTables() []string {
	out := make([]string, len(schemaTables))
	for i, t := range schemaTables {
		out[i] = t.name
	}
	return out
}

// ddl renders the statements of one schema for one server.
type ddl struct {
	o      SchemaOptions
	server ServerVersion
	days   int
}

func (d ddl) onCluster() string {
	if d.o.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + d.o.Cluster
}

// local is the name of the table that stores rows: <table>_local in a cluster.
func (d ddl) local(name string) string {
	if d.o.Cluster == "" {
		return d.o.Database + "." + name
	}
	return d.o.Database + "." + name + "_local"
}

func (d ddl) engine(t tableDef) string {
	e := "MergeTree"
	if t.replacing {
		e = "ReplacingMergeTree"
	}
	if d.o.Cluster == "" {
		return e + "()"
	}
	return fmt.Sprintf("Replicated%s('/clickhouse/tables/{shard}/%s/%s', '{replica}')", e, d.o.Database, t.name)
}

func (d ddl) createTable(t tableDef) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s\n(\n", d.local(t.name), d.onCluster())
	for i, c := range t.columns {
		sep := ","
		if i == len(t.columns)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "    %s %s%s\n", c.name, c.typ, sep)
	}
	fmt.Fprintf(&b, ")\nENGINE = %s\nPARTITION BY toYYYYMMDD(%s)\nORDER BY (%s)", d.engine(t), t.timeCol, t.orderBy)
	if d.server.HasTTL() {
		// By day, like the partitions: a row lives until its whole day is
		// older than the retention, the same on every server version.
		fmt.Fprintf(&b, "\nTTL toDate(%s) + INTERVAL %d DAY", t.timeCol, d.days)
	}
	out := []string{b.String()}
	if d.o.Cluster != "" {
		out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s AS %s\nENGINE = Distributed(%s, %s, %s_local, %s)",
			d.o.Database, t.name, d.onCluster(), d.local(t.name), d.o.Cluster, d.o.Database, t.name, t.shardKey))
	}
	return out
}

// traceIndexViews feed trace_index from logs and spans (each node's local
// tables in a cluster).
func (d ddl) traceIndexViews() []string {
	return []string{
		fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s.trace_index_from_logs%s TO %s\nAS SELECT trace_id, ts, service, region, 'log' AS source\nFROM %s\nWHERE trace_id != ''",
			d.o.Database, d.onCluster(), d.local(TableTraceIndex), d.local(TableLogs)),
		fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s.trace_index_from_spans%s TO %s\nAS SELECT trace_id, start AS ts, service, region, 'span' AS source\nFROM %s",
			d.o.Database, d.onCluster(), d.local(TableTraceIndex), d.local(TableSpans)),
	}
}

// bootstrap creates the database and schema_migrations, before any
// migration runs. In a cluster schema_migrations is replicated to every node
// of every shard (one ZooKeeper path without {shard}).
func (d ddl) bootstrap() []string {
	engine := "ReplacingMergeTree()"
	if d.o.Cluster != "" {
		engine = fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/all/%s/%s', '{replica}')", d.o.Database, TableMigrations)
	}
	return []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s%s", d.o.Database, d.onCluster()),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s\n(\n    version UInt32,\n    name String,\n    applied DateTime\n)\nENGINE = %s\nORDER BY version",
			d.o.Database, TableMigrations, d.onCluster(), engine),
	}
}

// Migrations returns the bootstrap statements and the versioned migrations
// Migrate runs against a server of the given version. It is pure: tests
// compare its output with golden files.
func Migrations(opts SchemaOptions, server ServerVersion) (bootstrap []string, migrations []Migration, err error) {
	if err := opts.Validate(); err != nil {
		return nil, nil, err
	}
	d := ddl{o: opts.withDefaults(), server: server, days: RetentionDays(opts.Retention)}
	def := func(name string) tableDef {
		i := slices.IndexFunc(schemaTables, func(t tableDef) bool { return t.name == name })
		return schemaTables[i]
	}
	migrations = []Migration{
		{1, "create logs", d.createTable(def(TableLogs))},
		{2, "create spans", d.createTable(def(TableSpans))},
		{3, "create trace_index fed by logs and spans", append(d.createTable(def(TableTraceIndex)), d.traceIndexViews()...)},
		{4, "create sla_events", d.createTable(def(TableSLAEvents))},
		{5, "create sli_minutes", d.createTable(def(TableSLIMinutes))},
		{6, "create drill_results", d.createTable(def(TableDrillResults))},
		{7, "create load_runs", d.createTable(def(TableLoadRuns))},
	}
	return d.bootstrap(), migrations, nil
}

// DDLConn is what Migrate and the RetentionJob need of a ClickHouse
// connection; clickhouse-go's driver.Conn has it.
type DDLConn interface {
	ServerVersion() (*driver.ServerVersion, error)
	Exec(ctx context.Context, query string, args ...any) error
	Select(ctx context.Context, dest any, query string, args ...any) error
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
}

// MigrateResult says what Migrate found and did.
type MigrateResult struct {
	Server  ServerVersion
	TTL     bool     // the tables were created with TTL
	Applied []uint32 // versions applied by this call (none when up to date)
}

// Migrate brings the schema up to date: it reads the server's version,
// creates the database and schema_migrations, runs every migration not
// recorded there (each statement is IF NOT EXISTS, so a run cut short is
// safe to repeat) and records it, then checks that every table has the
// columns the writers insert. It is idempotent and safe to run from several
// processes at once.
//
// A table created before the retention changed keeps its old TTL; the
// RetentionJob applies the current retention on every server.
func Migrate(ctx context.Context, conn DDLConn, opts SchemaOptions) (MigrateResult, error) {
	opts = opts.withDefaults()
	var res MigrateResult
	sv, err := conn.ServerVersion()
	if err != nil {
		return res, fmt.Errorf("chsink: migrate: reading the server version: %w", err)
	}
	res.Server = ServerVersion{sv.Version.Major, sv.Version.Minor, sv.Version.Patch}
	res.TTL = res.Server.HasTTL()
	boot, migrations, err := Migrations(opts, res.Server)
	if err != nil {
		return res, err
	}
	for _, q := range boot {
		if err := conn.Exec(ctx, q); err != nil {
			return res, fmt.Errorf("chsink: migrate: %s: %w", firstLine(q), err)
		}
	}
	var applied []struct {
		Version uint32 `ch:"version"`
	}
	if err := conn.Select(ctx, &applied, fmt.Sprintf("SELECT DISTINCT version FROM %s.%s", opts.Database, TableMigrations)); err != nil {
		return res, fmt.Errorf("chsink: migrate: reading applied migrations: %w", err)
	}
	// A table of the same name made by someone else would make the later
	// statements (or every insert) fail obscurely: say so first.
	if err := checkColumns(ctx, conn, opts.Database, false); err != nil {
		return res, err
	}
	done := map[uint32]bool{}
	for _, a := range applied {
		done[a.Version] = true
	}
	for _, m := range migrations {
		if done[m.Version] {
			continue
		}
		for _, q := range m.Statements {
			if err := conn.Exec(ctx, q); err != nil {
				return res, fmt.Errorf("chsink: migrate: version %d (%s): %s: %w", m.Version, m.Name, firstLine(q), err)
			}
		}
		if err := recordMigration(ctx, conn, opts, m); err != nil {
			return res, err
		}
		res.Applied = append(res.Applied, m.Version)
		opts.Logger.Info("applied a ClickHouse migration", "database", opts.Database, "version", m.Version, "name", m.Name)
	}
	if err := checkColumns(ctx, conn, opts.Database, true); err != nil {
		return res, err
	}
	return res, nil
}

func recordMigration(ctx context.Context, conn DDLConn, opts SchemaOptions, m Migration) error {
	b, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (version, name, applied)", opts.Database, TableMigrations))
	if err != nil {
		return fmt.Errorf("chsink: migrate: recording version %d: %w", m.Version, err)
	}
	defer b.Close()
	if err := b.Append(m.Version, m.Name, opts.Now()); err != nil {
		return fmt.Errorf("chsink: migrate: recording version %d: %w", m.Version, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("chsink: migrate: recording version %d: %w", m.Version, err)
	}
	return nil
}

// checkColumns verifies that each table starts with the schema's columns, in
// order and with their types (columns added at the end are allowed). With
// all false, tables that do not exist yet pass.
func checkColumns(ctx context.Context, conn DDLConn, database string, all bool) error {
	var got []struct {
		Table string `ch:"table"`
		Name  string `ch:"name"`
		Type  string `ch:"type"`
	}
	if err := conn.Select(ctx, &got, "SELECT table, name, type FROM system.columns WHERE database = ?", database); err != nil {
		return fmt.Errorf("chsink: migrate: reading the columns of %s: %w", database, err)
	}
	have := map[string][]column{}
	for _, c := range got {
		have[c.Table] = append(have[c.Table], column{c.Name, c.Type})
	}
	var errs []error
	for _, t := range schemaTables {
		h, ok := have[t.name]
		if !ok && !all {
			continue
		}
		if len(h) < len(t.columns) || !slices.Equal(h[:len(t.columns)], t.columns) {
			errs = append(errs, fmt.Errorf("chsink: migrate: table %s.%s has columns %v, want %v first; "+
				"it was not created by this schema: rename or drop it and run the migration again", database, t.name, h, t.columns))
		}
	}
	return errors.Join(errs...)
}

func firstLine(q string) string {
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		return q[:i]
	}
	return q
}
