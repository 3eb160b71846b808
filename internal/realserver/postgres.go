package realserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresUser is the superuser StartPostgres creates (trust authentication, no password) and
// PostgresDB the database it creates for the test.
const (
	PostgresUser = "carpool"
	PostgresDB   = "carpool"
)

// postgresLibDir holds Debian's PostgreSQL installations, one folder per major version
// (/usr/lib/postgresql/15/bin/initdb); their bin folders are not on PATH.
var postgresLibDir = "/usr/lib/postgresql"

func init() {
	for _, name := range []string{"postgres", "initdb"} {
		installers[name] = struct{ server, packages string }{"postgres", "postgresql"}
	}
}

// Postgres is a PostgreSQL server started for one test: superuser carpool, trust authentication,
// database carpool, over TCP.
type Postgres struct {
	Addr string // 127.0.0.1:port
	DSN  string // postgres://carpool@127.0.0.1:port/carpool?sslmode=disable, for pgx or lib/pq
	// Dir holds data/, the unix socket and postgres.log. It is a folder of os.TempDir rather than of
	// t.TempDir: when the test runs as root the server runs as the postgres system user, which cannot
	// enter a test's private folder. The test's cleanup removes it.
	Dir string

	proc *process
}

// StartPostgres initialises a data folder with initdb (trust authentication, superuser carpool) and
// starts postgres on a free 127.0.0.1 port with fsync off, then creates the database carpool. It
// returns once a pgx connection runs SELECT 1; the test's cleanup stops the server and removes Dir.
//
// PostgreSQL refuses to run as root: when the test runs as root, initdb and postgres run as the
// postgres system user (created by Debian's postgresql package) and Dir is given to that user.
// The binaries are looked up in /usr/lib/postgresql/<version>/bin (newest first) and then on PATH;
// when they are missing the test fails with what to install.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	dirs := append(postgresBinDirs(postgresLibDir), filepath.SplitList(os.Getenv("PATH"))...)
	bin, err := find("postgres", dirs)
	if err != nil {
		t.Fatal(err)
	}
	initdb, err := find("initdb", dirs)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := postgresCredential()
	if err != nil {
		t.Fatalf("starting postgres: %v", err)
	}
	// A short path in /tmp: the unix socket lives here too and its path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "pg")
	if err != nil {
		t.Fatalf("starting postgres: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // runs after the server's stop, registered later
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatalf("starting postgres: giving %s to the postgres user: %v", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	port := FreePort(t)

	install := exec.Command(initdb, "-D", data, "-A", "trust", "-U", PostgresUser,
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	install.Dir = dir
	install.Env = postgresEnv(dir)
	install.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	began := time.Now()
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("starting postgres: initdb: %v\n%s", err, lastLines(out, 30))
	}
	t.Logf("initdb done in %s", time.Since(began).Round(time.Millisecond))

	p := &Postgres{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir}
	admin := fmt.Sprintf("postgres://%s@%s/postgres?sslmode=disable&connect_timeout=2", PostgresUser, p.Addr)
	p.DSN = fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", PostgresUser, p.Addr, PostgresDB)
	// -F: fsync off, a test's data need not survive a crash of the machine.
	p.proc = startAs(t, "postgres", dir, cred, bin, "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-k", dir, "-F", "-c", "shared_buffers=32MB", "-c", "max_connections=100")
	p.proc.waitReady(t, func() error {
		_, err := pgQuery(admin, "SELECT 1")
		return err
	})
	if _, err := pgQuery(admin, "CREATE DATABASE "+PostgresDB); err != nil {
		t.Fatalf("starting postgres: creating database %s: %v", PostgresDB, err)
	}
	return p
}

// Query runs SQL statements (several separated by semicolons are allowed) in the database carpool and
// returns their rows tab-separated, one line each, without column names; NULL is written NULL. An
// error fails the test.
func (p *Postgres) Query(t testing.TB, sql string) string {
	t.Helper()
	out, err := pgQuery(p.DSN, sql)
	if err != nil {
		t.Fatalf("postgres query %q: %v", sql, err)
	}
	return out
}

// pgQuery connects to dsn, runs sql with the simple protocol and formats the rows of every result.
func pgQuery(dsn, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, r := range results {
		if r.Err != nil {
			return "", r.Err
		}
		for _, row := range r.Rows {
			for i, v := range row {
				if i > 0 {
					b.WriteByte('\t')
				}
				if v == nil {
					b.WriteString("NULL")
				} else {
					b.Write(v)
				}
			}
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}

// postgresBinDirs lists lib/<version>/bin folders under libDir, the newest major version first.
func postgresBinDirs(libDir string) []string {
	entries, err := os.ReadDir(libDir)
	if err != nil {
		return nil
	}
	type version struct {
		n   int
		dir string
	}
	var vs []version
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		vs = append(vs, version{n, filepath.Join(libDir, e.Name(), "bin")})
	}
	slices.SortFunc(vs, func(a, b version) int { return b.n - a.n })
	dirs := make([]string, len(vs))
	for i, v := range vs {
		dirs[i] = v.dir
	}
	return dirs
}

// postgresCredential returns the postgres system user's ids when the test runs as root (PostgreSQL
// refuses to run as root), and nil otherwise: then the server runs as the test's own user.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres user to run it as (%w): "+
			"run `make stack-deps` (deploy/local/install.sh postgres) as root, or apt-get install postgresql, which creates it", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("the postgres user has non-numeric ids %q:%q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// postgresEnv is the environment of initdb and postgres: the test's, with HOME in the server's folder
// and the C locale, so that neither root's home nor the machine's locale matters.
func postgresEnv(dir string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") ||
			strings.HasPrefix(kv, "PG")
	})
	return append(env, "HOME="+dir, "LANG=C", "LC_ALL=C")
}

// startAs is start with the process running under cred (nil: the test's own user), in postgresEnv,
// stopped with stopFast.
func startAs(t testing.TB, name, dir string, cred *syscall.Credential, bin string, args ...string) *process {
	t.Helper()
	return launch(t, name, dir, launchOptions{env: postgresEnv(dir), cred: cred, fastStop: true}, bin, args...)
}

// stopFast stops a PostgreSQL server with SIGINT, its fast shutdown, which ends open sessions: SIGTERM
// is its smart shutdown, which waits for every client to disconnect, and a test that leaks a
// connection pool would hold it up. Past stopTimeout it falls back to stop (SIGTERM, then SIGKILL).
func (p *process) stopFast(t testing.TB) {
	select {
	case <-p.exited:
		p.stop(t) // says it had exited early
		return
	default:
	}
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Logf("stopping %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
		t.Logf("%s stopped in %s", p.name, time.Since(began).Round(time.Millisecond))
		if t.Failed() && !p.logged {
			t.Logf("%s log %s, last lines:\n%s", p.name, p.logPath, p.tail(30))
		}
	case <-time.After(stopTimeout):
		t.Logf("%s still running %s after SIGINT", p.name, stopTimeout)
		p.stop(t)
	}
}
