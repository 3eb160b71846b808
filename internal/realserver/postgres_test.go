package realserver

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartPostgres(t *testing.T) {
	t.Parallel()
	var p *Postgres
	var leaked *pgx.Conn
	var stopBegan time.Time
	t.Run("server", func(t *testing.T) {
		t.Cleanup(func() { stopBegan = time.Now() }) // runs just before the server's stop
		p = StartPostgres(t)
		port := strings.Split(p.Addr, ":")[1]
		if want := "postgres://carpool@" + p.Addr + "/carpool?sslmode=disable"; p.DSN != want {
			t.Errorf("DSN %q, want %q", p.DSN, want)
		}
		if got := p.Query(t, "SELECT current_user, current_database(), current_setting('port'), current_setting('fsync')"); got != "carpool\tcarpool\t"+port+"\toff\n" {
			t.Errorf("the server's settings: %q", got)
		}
		p.Query(t, "CREATE TABLE heartbeat (id INT PRIMARY KEY, ts TIMESTAMPTZ); INSERT INTO heartbeat VALUES (1, now()), (2, NULL)")
		if got := p.Query(t, "SELECT count(*) FROM heartbeat; SELECT id, ts FROM heartbeat WHERE ts IS NULL"); got != "2\n2\tNULL\n" {
			t.Errorf("two queries answered %q", got)
		}
		// The DSN works with pgx as is.
		conn, err := pgx.Connect(context.Background(), p.DSN)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM heartbeat").Scan(&n); err != nil || n != 2 {
			t.Errorf("count over pgx: %d, %v", n, err)
		}
		// A connection left open must not hold up the stop (SIGTERM would wait for it).
		leaked = conn
		if _, err := os.Stat(filepath.Join(p.Dir, "data", "PG_VERSION")); err != nil {
			t.Errorf("no data folder in Dir: %v", err)
		}
	})
	select {
	case <-p.proc.exited:
	default:
		t.Fatal("postgres still runs after its test's cleanup")
	}
	if took := time.Since(stopBegan); took > 5*time.Second {
		t.Errorf("stopping postgres with a client connected took %s", took)
	}
	leaked.Close(context.Background())
	if conn, err := net.Dial("tcp", p.Addr); err == nil {
		conn.Close()
		t.Error("postgres still answers after its test's cleanup")
	}
	if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
		t.Errorf("%s survived the test's cleanup: %v", p.Dir, err)
	}
}

func TestPostgresBinDirsPutsTheNewestVersionFirst(t *testing.T) {
	lib := t.TempDir()
	for _, d := range []string{"9", "15", "13", "notaversion"} {
		if err := os.MkdirAll(filepath.Join(lib, d, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := postgresBinDirs(lib)
	want := []string{filepath.Join(lib, "15", "bin"), filepath.Join(lib, "13", "bin"), filepath.Join(lib, "9", "bin")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := postgresBinDirs(filepath.Join(lib, "missing")); got != nil {
		t.Errorf("a missing lib folder gave %v", got)
	}
}

func TestAMissingPostgresSaysWhatToInstall(t *testing.T) {
	_, err := find("initdb", []string{t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "install.sh postgres") || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("error %v does not say what to install", err)
	}
}
