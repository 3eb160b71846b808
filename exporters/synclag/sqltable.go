package synclag

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultTable is the heartbeat table of the SQL backends:
//
//	carpool_heartbeat(region VARCHAR(64) PRIMARY KEY, ts BIGINT NOT NULL)
//
// ts is the writer's clock in Unix microseconds when it stamped the row.
const DefaultTable = "carpool_heartbeat"

// identRe is one unquoted SQL identifier; a table may be qualified by one
// database (MySQL) or schema (PostgreSQL) name.
var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// splitTable splits "[db.]table" and checks both parts.
func splitTable(table string) (db, name string, err error) {
	db, name, ok := strings.Cut(table, ".")
	if !ok {
		db, name = "", table
	}
	if (ok && !identRe.MatchString(db)) || !identRe.MatchString(name) {
		return "", "", fmt.Errorf("table %q: use [database.]name made of letters, digits and _ (at most 64 each), not starting with a digit", table)
	}
	return db, name, nil
}

// quoteTable quotes "[db.]table" with q (` for MySQL, " for PostgreSQL);
// the parts were checked by splitTable.
func quoteTable(db, name string, q string) string {
	if db == "" {
		return q + name + q
	}
	return q + db + q + "." + q + name + q
}
