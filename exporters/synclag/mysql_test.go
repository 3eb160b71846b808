package synclag

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // for sql.Open("mysql")

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

const heartbeatTable = "ops.carpool_heartbeat"

// replicatedMariaDB starts a MariaDB primary and a replica of it on
// loopback, replicating by GTID.
func replicatedMariaDB(t *testing.T) (primary, replica *realserver.MariaDB) {
	t.Helper()
	primary = realserver.StartMariaDB(t, realserver.MariaDBOptions{Config: "server-id=1\nlog-bin\nbinlog-format=ROW"})
	replica = realserver.StartMariaDB(t, realserver.MariaDBOptions{Config: "server-id=2"})
	_, port, _ := strings.Cut(primary.Addr, ":")
	replica.Query(t, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER='root', MASTER_PASSWORD='', "+
		"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE", port))
	return primary, replica
}

// secondsBehindMaster is the replica's own estimate; ok is false for NULL.
func secondsBehindMaster(t *testing.T, db *sql.DB) (v int64, ok bool) {
	t.Helper()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatal("SHOW SLAVE STATUS returned no row")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	for i, c := range cols {
		if c == "Seconds_Behind_Master" && vals[i].Valid {
			_, err := fmt.Sscan(vals[i].String, &v)
			return v, err == nil
		}
	}
	return 0, false
}

// The proof: real primary → replica replication; stop the
// replica's SQL thread and the exporter's lag grows within 2 s of reality;
// start it and lag falls back.
func TestMariaDBReplicaLagGrowsWhenTheSQLThreadStopsAndFallsBackAfter(t *testing.T) {
	primary, replica := replicatedMariaDB(t)
	src, err := OpenMySQL(MySQLConfig{DSN: primary.DSN, Table: heartbeatTable, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	dst, err := OpenMySQL(MySQLConfig{DSN: replica.DSN, Table: heartbeatTable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dst.Close() })
	w, err := NewWriter(WriterConfig{Region: "primary", Backend: src, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	r, err := New(Config{Targets: []Target{{Region: "replica", Applied: dst, Sources: []string{"primary"}}}, Written: []HeartbeatReader{w}})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r, w)

	realserver.WaitFor(t, 15*time.Second, "the heartbeat replicated with lag under 0.5 s", func() (bool, error) {
		sc := s.scrape(t)
		_, applied := sc.get("carpool_sync_heartbeat_applied_timestamp_seconds", "source_region", "primary", "target_region", "replica")
		lag, _ := sc.lag("primary", "replica")
		return applied && lag < 0.5 && sc.up() == 1, fmt.Errorf("applied %v, lag %v, up %v", applied, lag, sc.up())
	})
	promtoolCheck(t, s.text(t))

	replicaDB, err := sql.Open("mysql", replica.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replicaDB.Close() })
	if _, err := replicaDB.ExecContext(ctx, "STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// Follow the lag for 3 s of stopped replication: at every scrape it
	// stays within 2 s of the time since the stop, and it grows.
	var last float64
	for time.Since(stopped) < 3*time.Second {
		before := time.Since(stopped).Seconds()
		lag, ok := s.scrape(t).lag("primary", "replica")
		after := time.Since(stopped).Seconds()
		if !ok || lag < before-2 || lag > after+2 {
			t.Fatalf("lag %v (present %v) is not within 2 s of reality (%.3f–%.3f s since the stop)", lag, ok, before, after)
		}
		if lag+0.001 < last {
			t.Fatalf("lag fell from %v to %v while replication is stopped", last, lag)
		}
		last = lag
		time.Sleep(100 * time.Millisecond) // paces the scrapes; the bounds above are what is checked
	}
	if last < 2.5 {
		t.Fatalf("lag after 3 s of stopped replication = %v, want at least 2.5", last)
	}
	sbm, ok := secondsBehindMaster(t, replicaDB)
	if ok {
		t.Logf("3 s after STOP SLAVE SQL_THREAD: heartbeat lag %.3f s, Seconds_Behind_Master %d", last, sbm)
	} else {
		t.Logf("3 s after STOP SLAVE SQL_THREAD: heartbeat lag %.3f s, Seconds_Behind_Master NULL", last)
	}

	if _, err := replicaDB.ExecContext(ctx, "START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	realserver.WaitFor(t, 10*time.Second, "lag back under 0.5 s", func() (bool, error) {
		lag, _ := s.scrape(t).lag("primary", "replica")
		return lag < 0.5, fmt.Errorf("lag %v", lag)
	})
	t.Logf("lag back under 0.5 s %v after START SLAVE SQL_THREAD", time.Since(started).Round(time.Millisecond))
}

func TestAnUnreachableMariaDBShowsAsDownAndRecoversByItself(t *testing.T) {
	db := realserver.StartMariaDB(t, realserver.MariaDBOptions{})
	p := startProxy(t, db.Addr)
	dsn := strings.Replace(db.DSN, db.Addr, p.Addr(), 1)
	b, err := OpenMySQL(MySQLConfig{DSN: dsn + "?timeout=1s", Table: heartbeatTable, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	w, err := NewWriter(WriterConfig{Region: "a", Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: b, Sources: []string{"a"}}}, Written: []HeartbeatReader{w}})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r, w)
	if err := w.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if sc := s.scrape(t); sc.up() != 1 {
		t.Fatalf("up = %v with the database reachable", sc.up())
	}

	p.cut()
	if err := w.Beat(ctx); err == nil {
		t.Fatal("a heartbeat write through a cut connection succeeded")
	}
	sc := s.scrape(t)
	if sc.up() != 0 {
		t.Fatalf("up = %v with the database unreachable", sc.up())
	}
	if n, _ := sc.get("carpool_sync_heartbeat_write_errors_total", "region", "a"); n < 1 {
		t.Fatalf("write errors = %v", n)
	}
	promtoolCheck(t, s.text(t))

	p.restore()
	realserver.WaitFor(t, 10*time.Second, "the exporter back up", func() (bool, error) {
		err := w.Beat(ctx)
		return err == nil && s.scrape(t).up() == 1, err
	})
}

func TestAMissingHeartbeatTableSaysToCreateIt(t *testing.T) {
	db := realserver.StartMariaDB(t, realserver.MariaDBOptions{})
	b, err := OpenMySQL(MySQLConfig{DSN: db.DSN, Table: "mysql.carpool_heartbeat"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if _, err := b.Read(ctx); err == nil || !strings.Contains(err.Error(), "--create-table") {
		t.Fatalf("reading a missing table: %v", err)
	}
}

func TestOpenMySQLChecksTheDSNAndTable(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  MySQLConfig
		want string
	}{
		"An empty DSN should fail.":                                   {MySQLConfig{}, "DSN is empty"},
		"A DSN that does not parse should fail without its password.": {MySQLConfig{DSN: "root:s3cret@tcp(127.0.0.1:3306"}, "does not parse"},
		"A DSN and table without a database should fail.":             {MySQLConfig{DSN: "root@tcp(127.0.0.1:3306)/"}, "names no database"},
		"A table name with SQL in it should fail.":                    {MySQLConfig{DSN: "root@tcp(127.0.0.1:3306)/ops", Table: "t; DROP TABLE x"}, "letters, digits and _"},
		"A DSN with a database should pass.":                          {MySQLConfig{DSN: "root@tcp(127.0.0.1:3306)/ops"}, ""},
		"A qualified table should pass.":                              {MySQLConfig{DSN: "root@tcp(127.0.0.1:3306)/", Table: "ops.hb"}, ""},
	} {
		b, err := OpenMySQL(tc.cfg)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s\n got %v, want an error containing %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s\n the error shows the password: %v", name, err)
		}
		if b != nil {
			_ = b.Close()
		}
	}
}
