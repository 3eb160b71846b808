package synclag

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresConfig configures the PostgreSQL backend.
type PostgresConfig struct {
	// DSN is a libpq connection string or postgres:// URL, such as
	// "postgres://user:password@127.0.0.1:5432/ops". Required. Without a
	// connect_timeout it gets DefaultDialTimeout.
	DSN string
	// Table is the heartbeat table, "[schema.]name"; default DefaultTable.
	Table string
	// CreateTable creates the schema (when Table names one) and the table
	// if missing, before the first write. Use it on the writer's (primary)
	// side only.
	CreateTable bool
}

// Postgres is the HeartbeatBackend of PostgreSQL: the writer upserts its
// region's row on the primary, the reader reads every row on a standby
// (physical or logical replica). It holds one connection (a heartbeat a
// second needs no pool) and re-dials after any failure.
type Postgres struct {
	cfg        *pgx.ConnConfig
	create     bool
	schema     string
	table      string // quoted
	upsert     string
	selectRows string

	mu      sync.Mutex
	conn    *pgx.Conn
	created bool
}

// Postgres implements HeartbeatBackend.
var _ HeartbeatBackend = (*Postgres)(nil)

// OpenPostgres checks cfg and returns the backend. It does not connect:
// the first Write or Read does.
func OpenPostgres(cfg PostgresConfig) (*Postgres, error) {
	if cfg.DSN == "" {
		return nil, errors.New("postgres backend: the DSN is empty: give one like postgres://user:password@127.0.0.1:5432/ops")
	}
	cc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's message already hides the password.
		return nil, fmt.Errorf("postgres backend: the DSN does not parse (%w): give one like postgres://user:password@127.0.0.1:5432/ops", err)
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultDialTimeout
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	schema, name, err := splitTable(cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("postgres backend: %w", err)
	}
	p := &Postgres{cfg: cc, create: cfg.CreateTable, schema: schema, table: quoteTable(schema, name, `"`)}
	p.upsert = "INSERT INTO " + p.table + " (region, ts) VALUES ($1, $2) ON CONFLICT (region) DO UPDATE SET ts = EXCLUDED.ts"
	p.selectRows = "SELECT region, ts FROM " + p.table
	return p, nil
}

// Close closes the connection.
func (p *Postgres) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil
	}
	err := p.conn.Close(context.Background())
	p.conn = nil
	return err
}

// withConn runs fn on the connection, dialling it first when needed; after
// an error the connection is dropped and the next call dials again.
func (p *Postgres) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		c, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return fmt.Errorf("connecting to postgres at %s:%d: %w", p.cfg.Host, p.cfg.Port, err)
		}
		p.conn = c
	}
	err := fn(p.conn)
	if err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.conn.Close(closeCtx)
		cancel()
		p.conn = nil
	}
	return err
}

// Write implements HeartbeatWriter: an upsert of region's row.
func (p *Postgres) Write(ctx context.Context, region string, ts time.Time) error {
	return p.withConn(ctx, func(c *pgx.Conn) error {
		if p.create && !p.created {
			if p.schema != "" {
				if _, err := c.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS "`+p.schema+`"`); err != nil {
					return fmt.Errorf("creating the schema %s: %w", p.schema, err)
				}
			}
			if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+p.table+" (region VARCHAR(64) NOT NULL PRIMARY KEY, ts BIGINT NOT NULL)"); err != nil {
				return fmt.Errorf("creating the heartbeat table %s: %w", p.table, err)
			}
			p.created = true
		}
		if _, err := c.Exec(ctx, p.upsert, region, ts.UnixMicro()); err != nil {
			return fmt.Errorf("upserting the heartbeat of %s into %s: %w", region, p.table, hintPostgres(err))
		}
		return nil
	})
}

// Read implements HeartbeatReader.
func (p *Postgres) Read(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := p.withConn(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, p.selectRows)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p.table, hintPostgres(err))
		}
		defer rows.Close()
		for rows.Next() {
			var region string
			var us int64
			if err := rows.Scan(&region, &us); err != nil {
				return fmt.Errorf("reading %s: %w", p.table, err)
			}
			out[region] = time.UnixMicro(us)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading %s: %w", p.table, hintPostgres(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// hintPostgres adds what to do to a missing-table error.
func hintPostgres(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") {
		return fmt.Errorf("%w (create it: run the writer with --create-table on the primary)", err)
	}
	return err
}
