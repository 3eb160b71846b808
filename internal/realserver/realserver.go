// Package realserver starts the real servers a test needs (Prometheus, Alertmanager, ClickHouse, Redis,
// MariaDB, NATS, VictoriaMetrics) as plain processes on 127.0.0.1 and stops them when the test ends.
//
// Every server runs in a folder from t.TempDir, on free ports, with its output in a log file there. A
// Start function returns once the server answers its readiness check; when it cannot start, the test
// fails with the tail of that log. Cleanup sends SIGTERM, waits, and kills after a deadline; if the test
// binary itself dies, the kernel kills the servers (Pdeathsig on Linux).
//
// The servers come from Debian's packages: deploy/local/install.sh (`make stack-deps`) installs them. A
// missing server fails the test with those instructions; it never skips it.
package realserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timings shared by every server.
const (
	readyTimeout = 30 * time.Second       // a server's start to its readiness check passing
	stopTimeout  = 10 * time.Second       // SIGTERM to exit, before SIGKILL
	pollInterval = 100 * time.Millisecond // between two readiness or WaitFor checks
)

// installers maps each program Binary knows to the deploy/local/install.sh server and the Debian
// packages that provide it.
var installers = map[string]struct{ server, packages string }{
	"prometheus":              {"prometheus", "prometheus"},
	"promtool":                {"prometheus", "prometheus"},
	"prometheus-alertmanager": {"alertmanager", "prometheus-alertmanager"},
	"amtool":                  {"alertmanager", "prometheus-alertmanager"},
	"clickhouse-server":       {"clickhouse", "clickhouse-server clickhouse-client"},
	"clickhouse-client":       {"clickhouse", "clickhouse-server clickhouse-client"},
	"redis-server":            {"redis", "redis-server"},
	"redis-cli":               {"redis", "redis-server"},
	"mariadbd":                {"mariadb", "mariadb-server"},
	"mariadb-install-db":      {"mariadb", "mariadb-server"},
	"mariadb":                 {"mariadb", "mariadb-server"},
	"nats-server":             {"nats", "nats-server"},
	"victoria-metrics":        {"victoria-metrics", "victoria-metrics"},
}

// sbinDirs are searched after PATH: Debian puts several servers there and a non-root PATH often lacks them.
var sbinDirs = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// Binary returns the path of a server program (such as "promtool", "prometheus-alertmanager",
// "clickhouse-server", "mariadbd"), looked up in PATH and then in the sbin folders. When it is missing,
// the test fails with what to install.
func Binary(t testing.TB, name string) string {
	t.Helper()
	dirs := append(filepath.SplitList(os.Getenv("PATH")), sbinDirs...)
	path, err := find(name, dirs)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// find returns the first executable file called name in dirs, or an error saying how to install it.
func find(name string, dirs []string) (string, error) {
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return path, nil
		}
	}
	in, ok := installers[name]
	if !ok {
		return "", fmt.Errorf("%s not found in %s, and realserver knows no package that provides it",
			name, strings.Join(dirs, string(filepath.ListSeparator)))
	}
	return "", fmt.Errorf("%s not found: run `make stack-deps` (deploy/local/install.sh %s) as root, or apt-get install %s",
		name, in.server, in.packages)
}

// claimed holds the ports FreePort has handed out, so that two servers of one test binary never get the
// same one.
var claimed struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a TCP port that is free on 127.0.0.1 and that FreePort has not returned before in
// this process. Another process may still take it before the server binds it; that is rare enough to
// accept in tests.
func FreePort(t testing.TB) int {
	t.Helper()
	claimed.Lock()
	defer claimed.Unlock()
	if claimed.ports == nil {
		claimed.ports = make(map[int]bool)
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port on 127.0.0.1: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			t.Fatalf("releasing port %d: %v", port, err)
		}
		if !claimed.ports[port] {
			claimed.ports[port] = true
			return port
		}
	}
	t.Fatal("finding a free port on 127.0.0.1: the kernel offered only ports handed out already")
	return 0
}

// WaitFor calls cond every 100 ms until it reports true, and fails the test when timeout passes first,
// with what was awaited and the last error cond returned. An error from cond does not end the wait.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// errStop wraps an error that ends poll at once, such as the process under watch having exited.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }
func (e errStop) Unwrap() error { return e.err }

// poll calls cond every pollInterval until it reports true (nil), cond returns an errStop (its error)
// or timeout passes (an error carrying cond's last error).
func poll(timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		done, err := cond()
		if done {
			return nil
		}
		if stop, ok := errors.AsType[errStop](err); ok {
			return stop.err
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last == nil {
				return fmt.Errorf("not done after %s", timeout)
			}
			return fmt.Errorf("not done after %s; last error: %w", timeout, last)
		}
		time.Sleep(pollInterval)
	}
}

// writeFiles writes files (names relative to dir, sub-folders allowed) into dir.
func writeFiles(dir string, files map[string][]byte) error {
	for name, data := range files {
		if !filepath.IsLocal(name) {
			return fmt.Errorf("writing %q: file names must be relative and stay inside the server's folder", name)
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}
