package realserver

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// MariaDBOptions says what a MariaDB started by StartMariaDB runs.
type MariaDBOptions struct {
	// Config holds extra lines for the [mariadbd] section of my.cnf, such as
	// "server-id=1\nlog-bin\nbinlog-format=ROW" for a replication primary.
	Config string
}

// MariaDB is a MariaDB server started for one test. User root, no password, over TCP.
type MariaDB struct {
	Addr string // 127.0.0.1:port
	DSN  string // root@tcp(127.0.0.1:port)/ for github.com/go-sql-driver/mysql
	Dir  string // my.cnf, data/ and mariadb.log

	proc   *process
	client string // the mariadb command-line client, for Query
}

// StartMariaDB initialises a data folder in t.TempDir with mariadb-install-db and starts mariadbd on
// a free 127.0.0.1 port with a small buffer pool. It returns once SELECT 1 works over TCP; the test's
// cleanup stops it.
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	bin := Binary(t, "mariadbd")
	installDB := Binary(t, "mariadb-install-db")
	client := Binary(t, "mariadb")
	dir := t.TempDir()
	// A unix socket path must stay under 108 bytes, which a test's folder may not: give it a short one.
	sockDir, err := os.MkdirTemp("", "mariadb")
	if err != nil {
		t.Fatalf("starting mariadb: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) }) // runs after the server's stop, registered later
	port := FreePort(t)
	var cnf strings.Builder
	cnf.WriteString("[mariadbd]\n")
	if os.Getuid() == 0 {
		cnf.WriteString("user=root\n")
	}
	fmt.Fprintf(&cnf, `datadir=%[1]s/data
port=%[2]d
bind-address=127.0.0.1
socket=%[3]s/mariadb.sock
pid-file=%[1]s/mariadbd.pid
log-error=%[1]s/mariadb.log
tmpdir=%[1]s
innodb-buffer-pool-size=64M
innodb-log-file-size=8M
%[4]s
`, dir, port, sockDir, opts.Config)
	cnfPath := filepath.Join(dir, "my.cnf")
	if err := os.WriteFile(cnfPath, []byte(cnf.String()), 0o644); err != nil {
		t.Fatalf("starting mariadb: %v", err)
	}
	// --defaults-file must come first, or /etc/mysql is read as well.
	install := exec.Command(installDB, "--defaults-file="+cnfPath,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	install.Dir = dir
	began := time.Now()
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("starting mariadb: mariadb-install-db: %v\n%s", err, lastLines(out, 30))
	}
	t.Logf("mariadb-install-db done in %s", time.Since(began).Round(time.Millisecond))
	m := &MariaDB{
		Addr:   fmt.Sprintf("127.0.0.1:%d", port),
		DSN:    fmt.Sprintf("root@tcp(127.0.0.1:%d)/", port),
		Dir:    dir,
		client: client,
	}
	m.proc = start(t, "mariadb", dir, bin, "--defaults-file="+cnfPath)
	m.proc.waitReady(t, func() error { // mariadb-admin ping succeeds even when access is denied
		_, err := m.query("SELECT 1")
		return err
	})
	return m
}

// Query runs SQL statements as root with the mariadb client and returns their output: tab-separated
// rows without column names. An error fails the test.
func (m *MariaDB) Query(t testing.TB, sql string) string {
	t.Helper()
	out, err := m.query(sql)
	if err != nil {
		t.Fatalf("mariadb query %q: %v", sql, err)
	}
	return out
}

func (m *MariaDB) query(sql string) (string, error) {
	host, port, _ := strings.Cut(m.Addr, ":")
	cmd := exec.Command(m.client, "--no-defaults", "--protocol=TCP", "--host="+host, "--port="+port,
		"--user=root", "--connect-timeout=2", "--batch", "--skip-column-names", "--execute="+sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
