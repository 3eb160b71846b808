package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// DefaultDialTimeout bounds connecting to a SQL backend when its DSN sets
// no timeout.
const DefaultDialTimeout = 3 * time.Second

// SQLConfig configures a SQL backend.
type SQLConfig struct {
	// DSN says which database and how to reach it; its scheme picks the
	// engine:
	//
	//	mysql://user:password@host:3306/database?param=value   (MySQL, MariaDB; mariadb:// too)
	//	user:password@tcp(host:3306)/database                  (github.com/go-sql-driver/mysql's own form)
	//	postgres://user:password@host:5432/database?sslmode=disable   (PostgreSQL; postgresql:// too)
	//
	// MySQL parameters are the driver's (tls, timeout, ...); PostgreSQL's
	// are libpq's (sslmode, connect_timeout, ...). Required.
	DSN string
	// MaxConns bounds the open connections; default 8. Give at least
	// twice the verifier's workers.
	MaxConns int
}

// SQL is the Backend of MySQL/MariaDB and PostgreSQL. A row's hash is
// computed in the database: the first 64 bits of SHA-256 over the run's
// salt and every column, each written as N (NULL) or V<length>:<text>
// (so no separator can be forged and NULL differs from ”), and a chunk's
// checksum is COUNT(*) and SUM of those hashes, reduced modulo 2^64 here.
// Only chunks that differ have their keys read, and only rows that
// differ cross the network.
//
// Both regions must run the same engine with the same schema and
// collation: values are hashed in their text form. Sessions run in UTC,
// so that TIMESTAMP values read and repair the same everywhere. As a
// repair target it executes the INSERT, UPDATE or DELETE of Statement.
type SQL struct {
	db querier
	d  dialect

	mu     sync.Mutex
	tables map[string]*sqlTable
}

// SQL implements Backend, Bounder, Describer and Repairer.
var (
	_ Backend   = (*SQL)(nil)
	_ Bounder   = (*SQL)(nil)
	_ Describer = (*SQL)(nil)
	_ Repairer  = (*SQL)(nil)
)

// Engines of a DSN.
const (
	EngineMySQL    = "mysql"
	EnginePostgres = "postgres"
)

// EngineOf returns the engine a DSN names: "mysql" or "postgres".
func EngineOf(dsn string) (string, error) {
	scheme, _, ok := strings.Cut(dsn, "://")
	switch {
	case !ok && strings.Contains(dsn, "@tcp("), !ok && strings.HasPrefix(dsn, "tcp("):
		return EngineMySQL, nil
	case scheme == "mysql" || scheme == "mariadb":
		return EngineMySQL, nil
	case scheme == "postgres" || scheme == "postgresql":
		return EnginePostgres, nil
	case dsn == "":
		return "", errors.New("the DSN is empty: give one like mysql://user:password@127.0.0.1:3306/db or postgres://user:password@127.0.0.1:5432/db")
	}
	return "", errors.New("the DSN names no known engine: start it with mysql://, mariadb://, postgres:// or postgresql:// (or use the MySQL driver's user@tcp(host:port)/db form)")
}

// OpenSQL checks cfg and returns the backend. It does not connect: the
// first query does, and an unreachable database is that query's error.
func OpenSQL(cfg SQLConfig) (*SQL, error) {
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 8
	}
	engine, err := EngineOf(cfg.DSN)
	if err != nil {
		return nil, err
	}
	s := &SQL{tables: map[string]*sqlTable{}}
	switch engine {
	case EngineMySQL:
		mc, err := mysqlConfig(cfg.DSN)
		if err != nil {
			return nil, err
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("mysql DSN: %w", err)
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(cfg.MaxConns)
		db.SetMaxIdleConns(cfg.MaxConns)
		db.SetConnMaxLifetime(10 * time.Minute)
		s.db, s.d = sqlDB{db}, mysqlDialect{}
	default:
		pc, err := pgx.ParseConfig(cfg.DSN)
		if err != nil { // pgx's message hides the password
			return nil, fmt.Errorf("postgres DSN: %w: give one like postgres://user:password@127.0.0.1:5432/db?sslmode=disable", err)
		}
		if pc.ConnectTimeout == 0 {
			pc.ConnectTimeout = DefaultDialTimeout
		}
		pc.RuntimeParams["timezone"] = "UTC"
		pc.RuntimeParams["datestyle"] = "ISO, YMD"
		s.db, s.d = newPgPool(pc, cfg.MaxConns), pgDialect{}
	}
	return s, nil
}

// mysqlConfig turns a mysql:// URL or a driver DSN into the driver's
// config: parameters interpolated client-side (one round trip a query),
// sessions in UTC, a dial timeout.
func mysqlConfig(dsn string) (*mysql.Config, error) {
	var mc *mysql.Config
	if rest, ok := strings.CutPrefix(dsn, "mysql://"); ok || strings.HasPrefix(dsn, "mariadb://") {
		if !ok {
			rest = strings.TrimPrefix(dsn, "mariadb://")
		}
		u, err := url.Parse("mysql://" + rest)
		if err != nil {
			return nil, fmt.Errorf("mysql DSN: %w: give one like mysql://user:password@127.0.0.1:3306/db", redactURLError(err))
		}
		db := strings.TrimPrefix(u.Path, "/")
		mc, err = mysql.ParseDSN("/" + db + "?" + u.RawQuery)
		if err != nil {
			return nil, fmt.Errorf("mysql DSN parameters: %w", err)
		}
		host := u.Host
		if host == "" {
			return nil, errors.New("mysql DSN: no host: give one like mysql://user:password@127.0.0.1:3306/db")
		}
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "3306")
		}
		mc.Net, mc.Addr = "tcp", host
		mc.User = u.User.Username()
		mc.Passwd, _ = u.User.Password()
	} else {
		var err error
		if mc, err = mysql.ParseDSN(dsn); err != nil {
			return nil, fmt.Errorf("mysql DSN: %w: give one like mysql://user:password@127.0.0.1:3306/db", err)
		}
	}
	if mc.Timeout == 0 {
		mc.Timeout = DefaultDialTimeout
	}
	mc.InterpolateParams = true
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["time_zone"] = "'+00:00'"
	return mc, nil
}

// redactURLError drops the URL (and so any password) from a parse error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Close closes the connections.
func (s *SQL) Close() error { return s.db.close() }

// Engine returns "mysql" or "postgres".
func (s *SQL) Engine() string { return s.d.name() }

// sqlTable is a described table and the text of its queries' parts.
type sqlTable struct {
	quoted string // the table's quoted name
	key    string // the key column's name
	keyQ   string // the key column, quoted
	// orderKey is the key column qualified by the table: in PostgreSQL an
	// unqualified ORDER BY name matches an output column first, and the
	// key's text form in the select list would sort as text.
	orderKey string
	keyType  string   // the key column's SQL type
	keyKind  keyKind  // how a key is bound
	columns  []string // key first
	hash     string   // the row hash expression; its one placeholder is the salt
	selected string   // the key and the columns as text, for Rows
}

// keyKind says how a key's text is bound as a query parameter.
type keyKind int

const (
	keyText keyKind = iota
	keyInt
	keyUint
)

// column is one column of a table's schema.
type column struct {
	name, typ string
	primary   bool
	kind      keyKind
}

// dialect is what differs between the engines.
type dialect interface {
	name() string
	quote(ident string) string
	// columns reads a table's columns in order.
	columns(ctx context.Context, db querier, schema, name string) ([]column, error)
	// hash is the row hash expression over the columns (quoted); its one
	// placeholder is the salt.
	hash(cols []string) string
	// text casts a column to its text form.
	text(col string) string
	// keyParam is a key parameter's placeholder for a key of the type.
	keyParam(typ string) string
	// chunk is the query of Chunk: count, sum as text and last key of the
	// first n rows matching where (args: salt, then where's).
	chunk(t *sqlTable, where string, n int) string
	// literal is a value's SQL literal (nil: NULL).
	literal(v *string) string
	// rebind turns ? placeholders into the engine's.
	rebind(q string) string
}

// splitName splits "[schema.]name".
func splitName(table string) (schema, name string, err error) {
	schema, name, ok := strings.Cut(table, ".")
	if !ok {
		schema, name = "", table
	}
	if name == "" || (ok && schema == "") || strings.Contains(name, ".") {
		return "", "", fmt.Errorf("table %q: give it as name or schema.name", table)
	}
	return schema, name, nil
}

// table returns the described table t, describing it at first use.
func (s *SQL) table(ctx context.Context, t Table) (*sqlTable, error) {
	s.mu.Lock()
	st := s.tables[t.Name]
	s.mu.Unlock()
	if st != nil {
		return st, nil
	}
	if _, err := s.Describe(ctx, t); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tables[t.Name], nil
}

// Describe implements Describer: it reads the table's columns, picks the
// primary key when t.Key is empty, checks t's key and columns exist, and
// returns t with Key and Columns (the key first) filled in.
func (s *SQL) Describe(ctx context.Context, t Table) (Table, error) {
	schema, name, err := splitName(t.Name)
	if err != nil {
		return t, err
	}
	cols, err := s.d.columns(ctx, s.db, schema, name)
	if err != nil {
		return t, fmt.Errorf("reading the columns of %s: %w", t.Name, err)
	}
	if len(cols) == 0 {
		return t, fmt.Errorf("table %s not found (or it has no columns)", t.Name)
	}
	byName := map[string]column{}
	var primary []string
	for _, c := range cols {
		byName[c.name] = c
		if c.primary {
			primary = append(primary, c.name)
		}
	}
	if t.Key == "" {
		switch len(primary) {
		case 0:
			return t, fmt.Errorf("table %s has no primary key: name a unique, non-null column with --key", t.Name)
		case 1:
			t.Key = primary[0]
		default:
			return t, fmt.Errorf("table %s has a composite primary key (%s): name a single unique, non-null column with --key", t.Name, strings.Join(primary, ", "))
		}
	}
	key, ok := byName[t.Key]
	if !ok {
		return t, fmt.Errorf("table %s has no column %q to use as the key", t.Name, t.Key)
	}
	if len(t.Columns) == 0 {
		for _, c := range cols {
			t.Columns = append(t.Columns, c.name)
		}
	}
	for _, c := range t.Columns {
		if _, ok := byName[c]; !ok {
			return t, fmt.Errorf("table %s has no column %q", t.Name, c)
		}
	}
	t.Columns = append([]string{t.Key}, slices.DeleteFunc(slices.Clone(t.Columns), func(c string) bool { return c == t.Key })...)
	st := &sqlTable{key: t.Key, keyQ: s.d.quote(t.Key), keyType: key.typ, keyKind: key.kind, columns: t.Columns}
	st.quoted = s.d.quote(name)
	if schema != "" {
		st.quoted = s.d.quote(schema) + "." + st.quoted
	}
	st.orderKey = st.quoted + "." + st.keyQ
	quoted := make([]string, len(t.Columns))
	texts := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		quoted[i] = s.d.quote(c)
		texts[i] = s.d.text(quoted[i])
	}
	st.hash = s.d.hash(quoted)
	st.selected = strings.Join(texts, ", ")
	s.mu.Lock()
	s.tables[t.Name] = st
	s.mu.Unlock()
	return t, nil
}

// bindKey turns a key's text into its query parameter.
func bindKey(st *sqlTable, key string) (any, error) {
	switch st.keyKind {
	case keyInt:
		n, err := strconv.ParseInt(key, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("key %q of the integer column %s: %w", key, st.key, err)
		}
		return n, nil
	case keyUint:
		n, err := strconv.ParseUint(key, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("key %q of the integer column %s: %w", key, st.key, err)
		}
		return n, nil
	}
	return key, nil
}

// where returns the condition selecting r and its arguments.
func (s *SQL) where(st *sqlTable, r Range) (string, []any, error) {
	var conds []string
	var args []any
	param := s.d.keyParam(st.keyType)
	if r.HasLo {
		a, err := bindKey(st, r.Lo)
		if err != nil {
			return "", nil, err
		}
		conds, args = append(conds, st.keyQ+" > "+param), append(args, a)
	}
	if r.HasHi {
		a, err := bindKey(st, r.Hi)
		if err != nil {
			return "", nil, err
		}
		conds, args = append(conds, st.keyQ+" <= "+param), append(args, a)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// Chunk implements Backend.
func (s *SQL) Chunk(ctx context.Context, t Table, r Range, n int, salt uint64) (Checksum, string, error) {
	st, err := s.table(ctx, t)
	if err != nil {
		return Checksum{}, "", err
	}
	where, args, err := s.where(st, r)
	if err != nil {
		return Checksum{}, "", err
	}
	q := s.d.rebind(s.d.chunk(st, where, n))
	var rows int64
	var sum string
	var last sql.NullString
	if err := s.db.queryRow(ctx, q, append([]any{saltText(salt)}, args...), &rows, &sum, &last); err != nil {
		return Checksum{}, "", fmt.Errorf("checksumming %d rows of %s %s: %w", n, t.Name, r, err)
	}
	cs := Checksum{Rows: rows}
	if cs.Sum, err = sumFromDecimal(sum); err != nil {
		return Checksum{}, "", err
	}
	return cs, last.String, nil
}

// saltText is the salt as a parameter: a signed decimal, so that it also
// fits PostgreSQL's bigint seed.
func saltText(salt uint64) string { return strconv.FormatInt(int64(salt), 10) }

// Checksum implements Backend.
func (s *SQL) Checksum(ctx context.Context, t Table, r Range, salt uint64) (Checksum, error) {
	st, err := s.table(ctx, t)
	if err != nil {
		return Checksum{}, err
	}
	where, args, err := s.where(st, r)
	if err != nil {
		return Checksum{}, err
	}
	q := s.d.rebind("SELECT COUNT(*), " + s.d.text("COALESCE(SUM("+st.hash+"), 0)") + " FROM " + st.quoted + where)
	var rows int64
	var sum string
	if err := s.db.queryRow(ctx, q, append([]any{saltText(salt)}, args...), &rows, &sum); err != nil {
		return Checksum{}, fmt.Errorf("checksumming %s %s: %w", t.Name, r, err)
	}
	cs := Checksum{Rows: rows}
	if cs.Sum, err = sumFromDecimal(sum); err != nil {
		return Checksum{}, err
	}
	return cs, nil
}

// Boundary implements Bounder with an ordered scan of the key's index.
func (s *SQL) Boundary(ctx context.Context, t Table, r Range, n int) (string, bool, error) {
	st, err := s.table(ctx, t)
	if err != nil {
		return "", false, err
	}
	where, args, err := s.where(st, r)
	if err != nil {
		return "", false, err
	}
	q := s.d.rebind("SELECT " + s.d.text(st.keyQ) + " FROM " + st.quoted + where + " ORDER BY " + st.orderKey +
		" LIMIT 1 OFFSET " + strconv.Itoa(n))
	var key string
	switch err := s.db.queryRow(ctx, q, args, &key); {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("finding key %d of %s %s: %w", n, t.Name, r, err)
	}
	return key, true, nil
}

// RowHashes implements Backend.
func (s *SQL) RowHashes(ctx context.Context, t Table, r Range, salt uint64) (map[string]uint64, error) {
	st, err := s.table(ctx, t)
	if err != nil {
		return nil, err
	}
	where, args, err := s.where(st, r)
	if err != nil {
		return nil, err
	}
	q := s.d.rebind("SELECT " + s.d.text(st.keyQ) + ", " + st.hash + " FROM " + st.quoted + where)
	out := map[string]uint64{}
	err = s.db.query(ctx, q, append([]any{saltText(salt)}, args...), func(scan func(...any) error) error {
		var key string
		var h int64Or64
		if err := scan(&key, &h); err != nil {
			return err
		}
		out[key] = uint64(h)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the row hashes of %s %s: %w", t.Name, r, err)
	}
	return out, nil
}

// int64Or64 scans a 64-bit hash whether the engine returns it signed
// (PostgreSQL's bigint) or unsigned (MySQL's BIGINT UNSIGNED).
type int64Or64 uint64

// Scan implements sql.Scanner.
func (h *int64Or64) Scan(v any) error {
	switch x := v.(type) {
	case int64:
		*h = int64Or64(x)
	case uint64:
		*h = int64Or64(x)
	case []byte:
		return h.parse(string(x))
	case string:
		return h.parse(x)
	default:
		return fmt.Errorf("a row hash of type %T", v)
	}
	return nil
}

func (h *int64Or64) parse(s string) error {
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		*h = int64Or64(u)
		return nil
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("a row hash %q: %w", s, err)
	}
	*h = int64Or64(i)
	return nil
}

// Rows implements Backend.
func (s *SQL) Rows(ctx context.Context, t Table, keys []string) (map[string]Row, error) {
	st, err := s.table(ctx, t)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Row, len(keys))
	for batch := range slices.Chunk(keys, rowsBatch) {
		params := make([]string, len(batch))
		args := make([]any, len(batch))
		for i, k := range batch {
			params[i] = s.d.keyParam(st.keyType)
			if args[i], err = bindKey(st, k); err != nil {
				return nil, err
			}
		}
		q := s.d.rebind("SELECT " + st.selected + " FROM " + st.quoted + " WHERE " + st.keyQ + " IN (" + strings.Join(params, ", ") + ")")
		if err := s.readRows(ctx, q, args, len(st.columns), out); err != nil {
			return nil, fmt.Errorf("reading rows of %s: %w", t.Name, err)
		}
	}
	return out, nil
}

func (s *SQL) readRows(ctx context.Context, q string, args []any, ncols int, out map[string]Row) error {
	vals := make([]sql.NullString, ncols)
	dest := make([]any, ncols)
	for i := range vals {
		dest[i] = &vals[i]
	}
	return s.db.query(ctx, q, args, func(scan func(...any) error) error {
		if err := scan(dest...); err != nil {
			return err
		}
		row := make(Row, ncols)
		for i, v := range vals {
			if v.Valid {
				row[i] = &v.String
			}
		}
		out[vals[0].String] = row
		return nil
	})
}

// Statement implements Repairer: INSERT the source's row, UPDATE the
// columns that differ, or DELETE the target's row.
func (s *SQL) Statement(t Table, key string, have, want Row) string {
	q := func(c string) string { return s.d.quote(c) }
	table := s.quotedName(t.Name)
	keyLit := s.keyLiteral(t, key)
	switch {
	case want == nil:
		return "DELETE FROM " + table + " WHERE " + q(t.Columns[0]) + " = " + keyLit
	case have == nil:
		cols := make([]string, len(t.Columns))
		vals := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			cols[i], vals[i] = q(c), s.d.literal(want[i])
		}
		return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(vals, ", ") + ")"
	}
	var sets []string
	for i := 1; i < len(t.Columns) && i < len(want); i++ {
		if i < len(have) && sameValue(have[i], want[i]) {
			continue
		}
		sets = append(sets, q(t.Columns[i])+" = "+s.d.literal(want[i]))
	}
	if len(sets) == 0 { // nothing but the key differs: cannot happen for one key; rewrite every column
		for i := 1; i < len(t.Columns) && i < len(want); i++ {
			sets = append(sets, q(t.Columns[i])+" = "+s.d.literal(want[i]))
		}
	}
	return "UPDATE " + table + " SET " + strings.Join(sets, ", ") + " WHERE " + q(t.Columns[0]) + " = " + keyLit
}

func sameValue(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// quotedName quotes "[schema.]name".
func (s *SQL) quotedName(table string) string {
	schema, name, err := splitName(table)
	if err != nil {
		return s.d.quote(table)
	}
	if schema == "" {
		return s.d.quote(name)
	}
	return s.d.quote(schema) + "." + s.d.quote(name)
}

// keyLiteral writes a key: bare for an integer key (exact in MySQL, where
// a quoted number compares as a float), quoted otherwise.
func (s *SQL) keyLiteral(t Table, key string) string {
	s.mu.Lock()
	st := s.tables[t.Name]
	s.mu.Unlock()
	if st != nil && st.keyKind != keyText {
		if _, err := strconv.ParseInt(key, 10, 64); err == nil {
			return key
		}
		if _, err := strconv.ParseUint(key, 10, 64); err == nil {
			return key
		}
	}
	return s.d.literal(&key)
}

// Apply implements Repairer: it executes Statement on the target.
func (s *SQL) Apply(ctx context.Context, t Table, key string, have, want Row) error {
	if have == nil && want == nil {
		return nil
	}
	if _, err := s.table(ctx, t); err != nil {
		return err
	}
	stmt := s.Statement(t, key, have, want)
	if err := s.db.exec(ctx, stmt); err != nil {
		return fmt.Errorf("executing %s: %w", stmt, err)
	}
	return nil
}
