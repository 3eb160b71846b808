package realserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTB is a testing.TB that records a fatal failure instead of failing the test, so that a test can
// check the message a helper fails with. Everything else goes to the real test.
type fakeTB struct {
	testing.TB

	mu       sync.Mutex
	failure  string
	cleanups []func()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failure = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failure != ""
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// failure runs fn with a fakeTB in its own goroutine (a Fatal ends it), then fn's cleanups, and returns
// the message fn failed with ("" if none).
func failure(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	return f.failure
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "amtool"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "promtool"), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}

	f := func(name string, dirs []string, want string) {
		t.Helper()
		got, err := find(name, dirs)
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("find(%q)\n got: %s\nwant: %s", name, got, want)
		}
	}
	f("amtool", []string{"", filepath.Join(dir, "nothing"), dir}, filepath.Join(dir, "amtool"))
	f("promtool", []string{dir},
		"promtool not found: run `make stack-deps` (deploy/local/install.sh prometheus) as root, or apt-get install prometheus")
	f("clickhouse-server", nil,
		"clickhouse-server not found: run `make stack-deps` (deploy/local/install.sh clickhouse) as root, or apt-get install clickhouse-server clickhouse-client")
	f("mariadbd", []string{dir},
		"mariadbd not found: run `make stack-deps` (deploy/local/install.sh mariadb) as root, or apt-get install mariadb-server")
	f("no-such-server", []string{dir, "/nowhere"},
		"no-such-server not found in "+dir+":/nowhere, and realserver knows no package that provides it")
}

func TestBinary(t *testing.T) {
	// The packaged servers are installed where these tests run; a missing one fails with instructions.
	for name := range installers {
		if path := Binary(t, name); filepath.Base(path) != name {
			t.Errorf("Binary(%q) = %s", name, path)
		}
	}
	t.Setenv("PATH", t.TempDir())
	got := failure(t, func(tb testing.TB) { Binary(tb, "no-such-server") })
	if !strings.HasPrefix(got, "no-such-server not found in ") {
		t.Errorf("Binary of a missing program failed with %q", got)
	}
}

func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		port := FreePort(t)
		if seen[port] {
			t.Fatalf("FreePort returned %d twice", port)
		}
		seen[port] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("FreePort returned %d, which is not free: %v", port, err)
		}
		l.Close()
	}
}

func TestWaitFor(t *testing.T) {
	t.Run("It returns once the condition holds.", func(t *testing.T) {
		calls := 0
		WaitFor(t, 5*time.Second, "the third call", func() (bool, error) {
			calls++
			if calls < 3 {
				return false, errors.New("not yet")
			}
			return true, nil
		})
		if calls != 3 {
			t.Errorf("cond was called %d times, want 3", calls)
		}
	})
	t.Run("It fails with what it waited for and the last error.", func(t *testing.T) {
		calls := 0
		got := failure(t, func(tb testing.TB) {
			WaitFor(tb, 300*time.Millisecond, "the answer", func() (bool, error) {
				calls++
				if calls > 1 {
					return false, nil // an error seen before is still the last one
				}
				return false, errors.New("connection refused")
			})
		})
		want := "waiting for the answer: not done after 300ms; last error: connection refused"
		if got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
		if calls < 3 || calls > 5 {
			t.Errorf("cond was called %d times in 300 ms, want about 4 (every 100 ms)", calls)
		}
	})
	t.Run("Without an error it says so.", func(t *testing.T) {
		got := failure(t, func(tb testing.TB) {
			WaitFor(tb, 0, "nothing", func() (bool, error) { return false, nil })
		})
		if want := "waiting for nothing: not done after 0s"; got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	})
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	if err := writeFiles(dir, map[string][]byte{"a.yml": []byte("a"), "rules/b.yml": []byte("b")}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a.yml": "a", "rules/b.yml": "b"} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"../escape.yml", "/etc/passwd"} {
		if err := writeFiles(dir, map[string][]byte{name: nil}); err == nil {
			t.Errorf("writeFiles accepted %q", name)
		}
	}
}
