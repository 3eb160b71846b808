package verify

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// mysqlDialect is MySQL's and MariaDB's SQL.
type mysqlDialect struct{}

func (mysqlDialect) name() string { return EngineMySQL }

func (mysqlDialect) quote(ident string) string {
	return "`" + strings.ReplaceAll(ident, "`", "``") + "`"
}

func (mysqlDialect) columns(ctx context.Context, db querier, schema, name string) ([]column, error) {
	const q = `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COLUMN_KEY = 'PRI' FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`
	var out []column
	err := db.query(ctx, q, []any{schema, name}, func(scan func(...any) error) error {
		var c column
		var dataType, columnType string
		if err := scan(&c.name, &dataType, &columnType, &c.primary); err != nil {
			return err
		}
		c.typ = columnType
		switch strings.ToLower(dataType) {
		case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
			c.kind = keyInt
			if strings.Contains(strings.ToLower(columnType), "unsigned") {
				c.kind = keyUint
			}
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// hash is the first 64 bits of SHA-256 over the salt and the columns,
// each written by QUOTE: a quoted, escaped literal, or the bare word NULL.
// Quoted values cannot hold an unescaped quote, so the commas between them
// cannot be forged, and NULL differs from 'NULL' and from ”.
func (mysqlDialect) hash(cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = "QUOTE(" + c + ")"
	}
	return "CAST(CONV(SUBSTRING(SHA2(CONCAT_WS(',', ?, " + strings.Join(parts, ", ") + "), 256), 1, 16), 16, 10) AS UNSIGNED)"
}

func (mysqlDialect) text(col string) string { return col }

func (mysqlDialect) keyParam(string) string { return "?" }

func (d mysqlDialect) chunk(t *sqlTable, where string, n int) string {
	return "SELECT COUNT(*), COALESCE(SUM(h), 0), MAX(k) FROM (SELECT " + t.keyQ + " AS k, " + t.hash + " AS h FROM " +
		t.quoted + where + " ORDER BY " + t.orderKey + " LIMIT " + strconv.Itoa(n) + ") AS chunk"
}

// literal writes a string literal; a value with bytes that quoting alone
// would not carry whatever the sql_mode (backslashes, control bytes,
// invalid UTF-8) is written as a hex literal, which MySQL converts to the
// column's character set.
func (mysqlDialect) literal(v *string) string {
	if v == nil {
		return "NULL"
	}
	s := *v
	if !utf8.ValidString(s) || strings.ContainsAny(s, "\\\x00\n\r\x1a") {
		return "X'" + hex.EncodeToString([]byte(s)) + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func (mysqlDialect) rebind(q string) string { return q }

// pgDialect is PostgreSQL's SQL.
type pgDialect struct{}

func (pgDialect) name() string { return EnginePostgres }

func (pgDialect) quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

func (d pgDialect) columns(ctx context.Context, db querier, schema, name string) ([]column, error) {
	rel := d.quote(name)
	if schema != "" {
		rel = d.quote(schema) + "." + rel
	}
	const q = `SELECT a.attname, format_type(a.atttypid, a.atttypmod),
		EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey))
		FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`
	var out []column
	err := db.query(ctx, q, []any{rel}, func(scan func(...any) error) error {
		var c column
		if err := scan(&c.name, &c.typ, &c.primary); err != nil {
			return err
		}
		out = append(out, c) // keys are bound as text and cast in SQL: kind stays keyText
		return nil
	})
	return out, err
}

// hash is hashtextextended, PostgreSQL's seeded 64-bit hash (the one hash
// partitioning uses, stable across platforms), of the row's text form:
// ROW(...)::text quotes any value holding a comma, quote, parenthesis or
// space, writes NULL as nothing and ” as "", so the encoding cannot be
// forged. The salt is the seed. It runs at about twice the speed of
// SHA-256 over the same text (measured on PostgreSQL 15).
func (pgDialect) hash(cols []string) string {
	return "hashtextextended(ROW(" + strings.Join(cols, ", ") + ")::text, CAST(CAST(? AS text) AS bigint))"
}

func (pgDialect) text(col string) string { return "(" + col + ")::text" }

// keyParam casts a key bound as text to the key's type, so that the
// comparison uses the key's index and its order.
func (pgDialect) keyParam(typ string) string { return "CAST(CAST(? AS text) AS " + typ + ")" }

func (d pgDialect) chunk(t *sqlTable, where string, n int) string {
	return "WITH chunk AS (SELECT " + t.keyQ + " AS k, " + t.hash + " AS h FROM " + t.quoted + where +
		" ORDER BY " + t.orderKey + " LIMIT " + strconv.Itoa(n) + ") SELECT count(*), COALESCE(sum(h), 0)::text, " +
		"(SELECT chunk.k::text FROM chunk ORDER BY chunk.k DESC LIMIT 1) FROM chunk"
}

// literal writes a standard-conforming string literal (PostgreSQL's
// default since 9.1), which PostgreSQL casts to the column's type.
func (pgDialect) literal(v *string) string {
	if v == nil {
		return "NULL"
	}
	return "'" + strings.ReplaceAll(*v, "'", "''") + "'"
}

// rebind numbers the ? placeholders $1, $2, ...; the queries hold no ? in
// literals.
func (pgDialect) rebind(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
