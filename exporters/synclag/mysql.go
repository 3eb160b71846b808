package synclag

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQLConfig configures the MySQL/MariaDB backend.
type MySQLConfig struct {
	// DSN is a github.com/go-sql-driver/mysql DSN, such as
	// "user:password@tcp(127.0.0.1:3306)/ops". Required. Without a dial
	// timeout (timeout=) it gets DefaultDialTimeout.
	DSN string
	// Table is the heartbeat table, "[database.]name"; default
	// DefaultTable. When the DSN names no database, the table must name
	// one.
	Table string
	// CreateTable creates the database (when Table names one) and the
	// table if missing, before the first write. Use it on the writer's
	// (source) side only: the statements replicate to the replicas.
	CreateTable bool
	// Logger receives the driver's own messages (such as "closing bad
	// idle connection") at debug level; default discards. Failures reach
	// the caller as errors either way.
	Logger *slog.Logger
}

// DefaultDialTimeout bounds connecting to a SQL backend when its DSN sets
// no timeout.
const DefaultDialTimeout = 3 * time.Second

// MySQL is the HeartbeatBackend of MySQL and MariaDB: the writer upserts
// its region's row on the source (the primary), the reader reads every row
// on the target (a replica). Connections are pooled by database/sql and
// re-dialled after a failure.
type MySQL struct {
	db         *sql.DB
	create     bool
	database   string // to create, "" for none
	table      string // quoted
	upsert     string
	selectRows string

	mu      sync.Mutex
	created bool
}

// MySQL implements HeartbeatBackend.
var _ HeartbeatBackend = (*MySQL)(nil)

// OpenMySQL checks cfg and returns the backend. It does not connect: the
// first Write or Read does, and a database down at start is an error of
// that call, not of OpenMySQL.
func OpenMySQL(cfg MySQLConfig) (*MySQL, error) {
	if cfg.DSN == "" {
		return nil, errors.New("mysql backend: the DSN is empty: give one like user:password@tcp(127.0.0.1:3306)/ops")
	}
	dsn, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		// The DSN is not repeated: it may hold a password.
		return nil, fmt.Errorf("mysql backend: the DSN does not parse (%w): give one like user:password@tcp(127.0.0.1:3306)/ops", err)
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	db, name, err := splitTable(cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("mysql backend: %w", err)
	}
	if db == "" && dsn.DBName == "" {
		return nil, fmt.Errorf("mysql backend: the DSN names no database and the table %q names none either: add /DATABASE to the DSN or qualify the table as DATABASE.%s", cfg.Table, name)
	}
	if dsn.Timeout == 0 {
		dsn.Timeout = DefaultDialTimeout
	}
	dsn.Logger = &mysql.NopLogger{}
	if cfg.Logger != nil {
		dsn.Logger = driverLog{cfg.Logger}
	}
	conn, err := mysql.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql backend: %w", err)
	}
	m := &MySQL{db: sql.OpenDB(conn), create: cfg.CreateTable, database: db, table: quoteTable(db, name, "`")}
	m.db.SetMaxOpenConns(2)
	m.db.SetMaxIdleConns(2)
	m.db.SetConnMaxLifetime(5 * time.Minute)
	m.upsert = "INSERT INTO " + m.table + " (region, ts) VALUES (?, ?) ON DUPLICATE KEY UPDATE ts = VALUES(ts)"
	m.selectRows = "SELECT region, ts FROM " + m.table
	return m, nil
}

// driverLog passes the driver's messages to slog at debug level.
type driverLog struct{ l *slog.Logger }

func (d driverLog) Print(v ...any) { d.l.Debug("mysql driver: " + fmt.Sprint(v...)) }

// Close closes the connections.
func (m *MySQL) Close() error { return m.db.Close() }

// ensureTable creates the table once, when asked to.
func (m *MySQL) ensureTable(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.create || m.created {
		return nil
	}
	if m.database != "" {
		if _, err := m.db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+m.database+"`"); err != nil {
			return fmt.Errorf("creating the database %s: %w", m.database, err)
		}
	}
	if _, err := m.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+m.table+
		" (region VARCHAR(64) NOT NULL PRIMARY KEY, ts BIGINT NOT NULL COMMENT 'Unix microseconds of the writer clock')"); err != nil {
		return fmt.Errorf("creating the heartbeat table %s: %w", m.table, err)
	}
	m.created = true
	return nil
}

// Write implements HeartbeatWriter: an upsert of region's row.
func (m *MySQL) Write(ctx context.Context, region string, ts time.Time) error {
	if err := m.ensureTable(ctx); err != nil {
		return err
	}
	if _, err := m.db.ExecContext(ctx, m.upsert, region, ts.UnixMicro()); err != nil {
		return fmt.Errorf("upserting the heartbeat of %s into %s: %w", region, m.table, hintMySQL(err))
	}
	return nil
}

// Read implements HeartbeatReader.
func (m *MySQL) Read(ctx context.Context) (map[string]time.Time, error) {
	rows, err := m.db.QueryContext(ctx, m.selectRows)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", m.table, hintMySQL(err))
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var region string
		var us int64
		if err := rows.Scan(&region, &us); err != nil {
			return nil, fmt.Errorf("reading %s: %w", m.table, err)
		}
		out[region] = time.UnixMicro(us)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", m.table, err)
	}
	return out, nil
}

// hintMySQL adds what to do to a missing-table error.
func hintMySQL(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049) {
		return fmt.Errorf("%w (create it: run the writer with --create-table on the source)", err)
	}
	return err
}
