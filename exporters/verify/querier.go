package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// querier runs the SQL backend's queries: database/sql for MySQL, a small
// pool of pgx connections for PostgreSQL (pgx's own pool would pull in
// another module).
type querier interface {
	// queryRow scans the first row into dest; no row is sql.ErrNoRows.
	queryRow(ctx context.Context, q string, args []any, dest ...any) error
	// query calls each for every row; scan reads the row.
	query(ctx context.Context, q string, args []any, each func(scan func(dest ...any) error) error) error
	exec(ctx context.Context, q string) error
	close() error
}

// sqlDB is the querier of a database/sql pool.
type sqlDB struct{ db *sql.DB }

func (s sqlDB) queryRow(ctx context.Context, q string, args []any, dest ...any) error {
	return s.db.QueryRowContext(ctx, q, args...).Scan(dest...)
}

func (s sqlDB) query(ctx context.Context, q string, args []any, each func(scan func(dest ...any) error) error) error {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (s sqlDB) exec(ctx context.Context, q string) error {
	_, err := s.db.ExecContext(ctx, q)
	return err
}

func (s sqlDB) close() error { return s.db.Close() }

// pgPool is a bounded pool of pgx connections, dialled on demand; a
// connection that broke is dropped and the next call dials again.
type pgPool struct {
	cfg   *pgx.ConnConfig
	slots chan struct{} // one per connection in use
	mu    sync.Mutex
	idle  []*pgx.Conn
	shut  bool
}

func newPgPool(cfg *pgx.ConnConfig, max int) *pgPool {
	return &pgPool{cfg: cfg, slots: make(chan struct{}, max)}
}

var errPoolClosed = errors.New("the postgres backend is closed")

func (p *pgPool) get(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.shut {
		p.mu.Unlock()
		<-p.slots
		return nil, errPoolClosed
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.slots
		return nil, fmt.Errorf("connecting: %w", err)
	}
	return c, nil
}

func (p *pgPool) put(c *pgx.Conn) {
	defer func() { <-p.slots }()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.IsClosed() || p.shut {
		_ = c.Close(context.Background())
		return
	}
	p.idle = append(p.idle, c)
}

func (p *pgPool) queryRow(ctx context.Context, q string, args []any, dest ...any) error {
	c, err := p.get(ctx)
	if err != nil {
		return err
	}
	defer p.put(c)
	return c.QueryRow(ctx, q, args...).Scan(dest...) // pgx.ErrNoRows is sql.ErrNoRows
}

func (p *pgPool) query(ctx context.Context, q string, args []any, each func(scan func(dest ...any) error) error) error {
	c, err := p.get(ctx)
	if err != nil {
		return err
	}
	defer p.put(c)
	rows, err := c.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (p *pgPool) exec(ctx context.Context, q string) error {
	c, err := p.get(ctx)
	if err != nil {
		return err
	}
	defer p.put(c)
	_, err = c.Exec(ctx, q)
	return err
}

func (p *pgPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shut = true
	for _, c := range p.idle {
		_ = c.Close(context.Background())
	}
	p.idle = nil
	return nil
}
