package verify

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

func TestEngineOfADSN(t *testing.T) {
	f := func(dsn, want, wantErr string) {
		t.Helper()
		got, err := EngineOf(dsn)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("EngineOf(%q) error %v, want one containing %q", dsn, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("EngineOf(%q) = %q, %v; want %q", dsn, got, err, want)
		}
	}
	f("mysql://root@127.0.0.1:3306/db", EngineMySQL, "")
	f("mariadb://root:pw@db.example:3306/db", EngineMySQL, "")
	f("root:pw@tcp(127.0.0.1:3306)/db", EngineMySQL, "")
	f("postgres://u@127.0.0.1/db?sslmode=disable", EnginePostgres, "")
	f("postgresql://u@127.0.0.1/db", EnginePostgres, "")
	f("", "", "empty")
	f("redis://127.0.0.1:6379", "", "no known engine")
}

func TestOpenSQLChecksTheDSN(t *testing.T) {
	tests := map[string]struct{ dsn, want string }{
		"A mysql URL without a host is an error.":          {"mysql:///db", "no host"},
		"A bad MySQL parameter is an error.":               {"mysql://root@127.0.0.1/db?timeout=forever", "parameters"},
		"A malformed driver DSN is an error.":              {"root@tcp(127.0.0.1:3306", "mysql DSN"},
		"A malformed postgres URL is an error.":            {"postgres://u@127.0.0.1:notaport/db", "postgres DSN"},
		"A password never shows in a URL error.":           {"mysql://root:s3cret@[::1/db", "mysql DSN"},
		"A mysql URL with a host and no port gets 3306.":   {"mysql://root@127.0.0.1/db", ""},
		"A postgres URL with parameters is fine.":          {"postgres://u@127.0.0.1:5432/db?sslmode=disable", ""},
		"The driver's own DSN form is fine.":               {"root@tcp(127.0.0.1:3306)/db", ""},
		"A mariadb URL is a MySQL URL.":                    {"mariadb://root@127.0.0.1:3306/db", ""},
		"Parameters of the driver pass through the URL.":   {"mysql://root@127.0.0.1:3306/db?timeout=1s&tls=false", ""},
		"An empty DSN is an error that shows an example.":  {"", "mysql://"},
		"An unknown scheme is an error naming the others.": {"sqlite://x", "postgres://"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := OpenSQL(SQLConfig{DSN: tc.dsn})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
	mc, err := mysqlConfig("mysql://root:pw@127.0.0.1/db?timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	if mc.Addr != "127.0.0.1:3306" || mc.User != "root" || mc.Passwd != "pw" || mc.DBName != "db" || mc.Timeout != time.Second || !mc.InterpolateParams {
		t.Errorf("parsed %+v", mc)
	}
}

// mariaPair starts two MariaDB servers with the same rides table and rows.
func mariaPair(t *testing.T, rows int) (src, tgt *realserver.MariaDB, srcDB, tgtDB *sql.DB) {
	t.Helper()
	setup := "CREATE DATABASE carpool; CREATE TABLE carpool.rides (id BIGINT PRIMARY KEY, driver VARCHAR(64) NOT NULL, " +
		"fare DECIMAL(10,2) NOT NULL, note TEXT NULL, created DATETIME NOT NULL); " +
		"INSERT INTO carpool.rides SELECT seq, CONCAT('d', LPAD(seq % 50, 2, '0')), 100 + seq % 37, " +
		"IF(seq % 7 = 0, NULL, CONCAT('note #', seq)), '2026-11-25 10:00:00' + INTERVAL seq SECOND FROM carpool.seq_1_to_" +
		strconv.Itoa(rows)
	open := func(m *realserver.MariaDB) *sql.DB {
		cfg, err := mysql.ParseDSN(m.DSN + "carpool")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(conn)
		t.Cleanup(func() { db.Close() })
		return db
	}
	src = realserver.StartMariaDB(t, realserver.MariaDBOptions{})
	tgt = realserver.StartMariaDB(t, realserver.MariaDBOptions{})
	src.Query(t, setup)
	tgt.Query(t, setup)
	return src, tgt, open(src), open(tgt)
}

func sqlBackend(t *testing.T, dsn string) *SQL {
	t.Helper()
	s, err := OpenSQL(SQLConfig{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func execAll(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestMariaDBInjectedDifferencesAreFoundAndRepaired(t *testing.T) {
	t.Parallel()
	src, tgt, srcDB, tgtDB := mariaPair(t, 2000)
	ctx := context.Background()
	source := sqlBackend(t, "mysql://root@"+src.Addr+"/carpool")
	target := sqlBackend(t, "mysql://root@"+tgt.Addr+"/carpool")

	// First the swap alone: the XOR of CRC32s the database computes misses
	// it, the verifier's checksum does not.
	execAll(t, tgtDB,
		"UPDATE rides SET driver = 'd31' WHERE id = 30", "UPDATE rides SET driver = 'd30' WHERE id = 31")
	xor := "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, driver))) FROM rides"
	if a, b := src.Query(t, "USE carpool; "+xor), tgt.Query(t, "USE carpool; "+xor); a != b {
		t.Fatalf("BIT_XOR(CRC32) told the swap apart (%q vs %q): the premise is wrong", a, b)
	}
	table := Table{Name: "rides", Columns: []string{"id", "driver"}}
	if _, err := source.Describe(ctx, table); err != nil {
		t.Fatal(err)
	}
	if _, err := target.Describe(ctx, table); err != nil {
		t.Fatal(err)
	}
	cs, _ := source.Checksum(ctx, table, All, 7)
	ct, _ := target.Checksum(ctx, table, All, 7)
	if cs == ct || cs.Rows != 2000 {
		t.Fatalf("the sum of salted SHA-256 hashes missed the swap: %+v vs %+v", cs, ct)
	}

	// Then the rest of the differences.
	execAll(t, tgtDB,
		"DELETE FROM rides WHERE id = 10",                                                     // missing
		"INSERT INTO rides VALUES (5000, 'dx', 1.00, 'extra', '2026-11-25 12:00:00')",         // extra
		"UPDATE rides SET fare = fare + 0.01 WHERE id = 20",                                   // changed value
		"INSERT INTO rides SELECT 6001, driver, fare, note, created FROM rides WHERE id = 40", // duplicated ...
		"INSERT INTO rides SELECT 6002, driver, fare, note, created FROM rides WHERE id = 40", // ... pair
		"UPDATE rides SET note = '' WHERE id = 49",                                            // NULL became ''
		"UPDATE rides SET note = 'it''s a \\\\backslash' WHERE id = 50",                       // needs escaping to repair
	)
	// A write in flight: in the source now, in the target once the lag
	// has passed (while the verifier waits).
	execAll(t, srcDB, "INSERT INTO rides VALUES (3000, 'dz', 9.99, NULL, '2026-11-25 13:00:00')")
	clock := &manualAfter{hook: func(n int, _ time.Duration) {
		if n == 1 {
			execAll(t, tgtDB, "INSERT INTO rides VALUES (3000, 'dz', 9.99, NULL, '2026-11-25 13:00:00')")
		}
	}}
	v, err := New(Config{Source: source, Target: target, SourceRegion: "sh-a", TargetRegion: "sh-b",
		Tables: []Table{{Name: "rides"}}, ChunkSize: 200, LeafRows: 8, After: clock.after})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{"differ 20", "differ 30", "differ 31", "differ 49", "differ 50",
		"extra 5000", "extra 6001", "extra 6002", "missing 10"}, "\n")
	if got := summary(rep.Mismatches()); got != want {
		t.Fatalf("reported:\n%s\nwant:\n%s", got, want)
	}
	tr := rep.Tables[0]
	if tr.InFlight != 1 || tr.RowsVerified != 2001 {
		t.Errorf("in flight %d, rows verified %d; want 1 and 2001 (the row in flight is in the source)", tr.InFlight, tr.RowsVerified)
	}
	if got := strings.Join(tr.Table.Columns, ","); got != "id,driver,fare,note,created" {
		t.Errorf("discovered columns %s", got)
	}
	repairs := map[string]string{}
	for _, m := range rep.Mismatches() {
		repairs[m.Key] = m.Repair
	}
	for key, stmt := range map[string]string{
		"10":   "INSERT INTO `rides` (`id`, `driver`, `fare`, `note`, `created`) VALUES ('10', 'd10', '110.00', 'note #10', '2026-11-25 10:00:10')",
		"5000": "DELETE FROM `rides` WHERE `id` = 5000",
		"20":   "UPDATE `rides` SET `fare` = '120.00' WHERE `id` = 20",
		"30":   "UPDATE `rides` SET `driver` = 'd30' WHERE `id` = 30",
		"49":   "UPDATE `rides` SET `note` = NULL WHERE `id` = 49",
		"50":   "UPDATE `rides` SET `note` = 'note #50' WHERE `id` = 50",
	} {
		if repairs[key] != stmt {
			t.Errorf("repair of %s:\n got %s\nwant %s", key, repairs[key], stmt)
		}
	}
	// Applying the statements makes the next pass clean.
	for _, m := range rep.Mismatches() {
		execAll(t, tgtDB, m.Repair)
	}
	rep, err = v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ms := rep.Mismatches(); len(ms) != 0 || rep.Tables[0].Suspects != 0 {
		t.Fatalf("after the repairs: %s (suspects %d)", summary(ms), rep.Tables[0].Suspects)
	}
	// The escaping round-trips: the source's odd value, repaired into the
	// target by the statement.
	execAll(t, srcDB, "UPDATE rides SET note = 'it''s a \\\\back\\nslash' WHERE id = 60")
	rep, _ = v.Verify(ctx)
	if len(rep.Mismatches()) != 1 || !strings.HasPrefix(rep.Mismatches()[0].Repair, "UPDATE `rides` SET `note` = X'") {
		t.Fatalf("the odd value: %+v", rep.Mismatches())
	}
	if err := target.Apply(ctx, rep.Mismatches()[0].Table, "60", rep.Mismatches()[0].Target, rep.Mismatches()[0].Source); err != nil {
		t.Fatal(err)
	}
	if rep, _ = v.Verify(ctx); len(rep.Mismatches()) != 0 {
		t.Fatalf("the odd value did not round-trip: %+v", rep.Mismatches())
	}
}

func TestMariaDBSchemaErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	m := realserver.StartMariaDB(t, realserver.MariaDBOptions{})
	m.Query(t, "CREATE DATABASE carpool; CREATE TABLE carpool.nokey (a INT, b INT); "+
		"CREATE TABLE carpool.pair (a INT, b INT, PRIMARY KEY (a, b))")
	s := sqlBackend(t, "mysql://root@"+m.Addr+"/carpool")
	ctx := context.Background()
	tests := map[string]struct {
		t    Table
		want string
	}{
		"A missing table is an error.":                              {Table{Name: "nope"}, "not found"},
		"A table without a primary key needs --key.":                {Table{Name: "nokey"}, "--key"},
		"A composite primary key needs --key.":                      {Table{Name: "pair"}, "composite"},
		"A key that is no column is an error.":                      {Table{Name: "pair", Key: "zz"}, `no column "zz"`},
		"A column that does not exist is an error.":                 {Table{Name: "pair", Key: "a", Columns: []string{"q"}}, `no column "q"`},
		"A qualified name in another database works.":               {Table{Name: "carpool.pair", Key: "a"}, ""},
		"An explicit key on a table without a primary key is fine.": {Table{Name: "nokey", Key: "a"}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := s.Describe(ctx, tc.t)
			if tc.want == "" {
				if err != nil || got.Columns[0] != tc.t.Key {
					t.Fatalf("Describe = %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// An unreachable server is an error of the run, not of OpenSQL.
	down := sqlBackend(t, "mysql://root@127.0.0.1:1/carpool")
	if _, err := down.Describe(ctx, Table{Name: "rides"}); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("a closed port: %v", err)
	}
}

func TestPostgresInjectedDifferencesAreFoundAndRepaired(t *testing.T) {
	t.Parallel()
	src := realserver.StartPostgres(t)
	tgt := realserver.StartPostgres(t)
	setup := "CREATE TABLE rides (id bigint PRIMARY KEY, driver text NOT NULL, fare numeric(10,2) NOT NULL, note text, created timestamptz NOT NULL); " +
		"INSERT INTO rides SELECT g, 'd' || lpad((g % 50)::text, 2, '0'), 100 + g % 37, CASE WHEN g % 7 = 0 THEN NULL ELSE 'note #' || g END, " +
		"timestamptz '2026-11-25 10:00:00+00' + g * interval '1 second' FROM generate_series(1, 2000) g; " +
		"CREATE SCHEMA ops; CREATE TABLE ops.drivers (name text PRIMARY KEY, city text); " +
		"INSERT INTO ops.drivers SELECT 'driver-' || g, CASE WHEN g % 2 = 0 THEN 'sh' ELSE 'bj' END FROM generate_series(1, 300) g"
	src.Query(t, setup)
	tgt.Query(t, setup)
	tgt.Query(t, "DELETE FROM rides WHERE id = 10; "+
		"INSERT INTO rides VALUES (5000, 'dx', 1.00, 'extra', now()); "+
		"UPDATE rides SET fare = fare + 0.01 WHERE id = 20; "+
		"UPDATE rides SET driver = 'd31' WHERE id = 30; UPDATE rides SET driver = 'd30' WHERE id = 31; "+
		"INSERT INTO rides SELECT 6001, driver, fare, note, created FROM rides WHERE id = 40; "+
		"INSERT INTO rides SELECT 6002, driver, fare, note, created FROM rides WHERE id = 40; "+
		"UPDATE rides SET note = '' WHERE id = 49; "+
		"UPDATE ops.drivers SET city = NULL WHERE name = 'driver-7'; DELETE FROM ops.drivers WHERE name = 'driver-250'")
	ctx := context.Background()
	source, target := sqlBackend(t, src.DSN), sqlBackend(t, tgt.DSN)
	// Keys are ordered as the key's type orders them, not as their text:
	// the 10th key of an integer key is 10, not 18.
	if k, ok, err := source.Boundary(ctx, Table{Name: "rides"}, All, 9); k != "10" || !ok || err != nil {
		t.Fatalf("the 10th key is %q, %v, %v; want 10", k, ok, err)
	}
	if cs, last, err := source.Chunk(ctx, Table{Name: "rides"}, Range{Lo: "8", HasLo: true}, 3, 1); cs.Rows != 3 || last != "11" || err != nil {
		t.Fatalf("the 3 keys after 8 end at %q (%+v, %v); want 11", last, cs, err)
	}
	v, err := New(Config{Source: source, Target: target, SourceRegion: "sh-a", TargetRegion: "sh-b",
		Tables: []Table{{Name: "rides"}, {Name: "ops.drivers"}}, ChunkSize: 128, LeafRows: 8, After: (&manualAfter{}).after})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{"differ 20", "differ 30", "differ 31", "differ 49", "differ driver-7",
		"extra 5000", "extra 6001", "extra 6002", "missing 10", "missing driver-250"}, "\n")
	if got := summary(rep.Mismatches()); got != want {
		t.Fatalf("reported:\n%s\nwant:\n%s", got, want)
	}
	repairs := map[string]string{}
	for _, m := range rep.Mismatches() {
		repairs[m.Key] = m.Repair
	}
	for key, stmt := range map[string]string{
		"10":         `INSERT INTO "rides" ("id", "driver", "fare", "note", "created") VALUES ('10', 'd10', '110.00', 'note #10', '2026-11-25 10:00:10+00')`,
		"5000":       `DELETE FROM "rides" WHERE "id" = '5000'`,
		"20":         `UPDATE "rides" SET "fare" = '120.00' WHERE "id" = '20'`,
		"driver-7":   `UPDATE "ops"."drivers" SET "city" = 'bj' WHERE "name" = 'driver-7'`,
		"driver-250": `INSERT INTO "ops"."drivers" ("name", "city") VALUES ('driver-250', 'sh')`,
	} {
		if repairs[key] != stmt {
			t.Errorf("repair of %s:\n got %s\nwant %s", key, repairs[key], stmt)
		}
	}
	for _, m := range rep.Mismatches() {
		if err := target.Apply(ctx, m.Table, m.Key, m.Target, m.Source); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ms := rep.Mismatches(); len(ms) != 0 {
		t.Fatalf("after the repairs: %s", summary(ms))
	}
	if rows := rep.Tables[0].RowsVerified + rep.Tables[1].RowsVerified; rows != 2300 {
		t.Errorf("rows verified %d, want 2300", rows)
	}
}
