package realserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// process is a server started for one test; the test's cleanup stops it.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has exited and been reaped
	err     error         // what cmd.Wait returned; read it only after exited is closed
	logged  bool          // the log's tail is in a failure message already
}

// start runs bin with args in dir, its stdout and stderr appended to dir/name.log, and registers a
// cleanup that stops it. Call it after t.TempDir for dir, so that the process stops before its folder
// is removed.
func start(t testing.TB, name, dir, bin string, args ...string) *process {
	t.Helper()
	return launch(t, name, dir, launchOptions{}, bin, args...)
}

// launchOptions are what some servers need beyond start's defaults.
type launchOptions struct {
	env      []string            // nil: the test's environment
	cred     *syscall.Credential // nil: the test's own user
	fastStop bool                // stop with SIGINT (stopFast) rather than SIGTERM
}

// launch is start with options. The kernel applies the credentials before the parent-death signal, so
// a server run as another user still dies with the test binary.
func launch(t testing.TB, name, dir string, o launchOptions, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = o.env
	cmd.Stdout = log
	cmd.Stderr = log
	attr := sysProcAttr()
	if o.cred != nil {
		if attr == nil {
			attr = &syscall.SysProcAttr{}
		}
		attr.Credential = o.cred
	}
	cmd.SysProcAttr = attr
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	started := make(chan error)
	go func() {
		// Pdeathsig fires when the thread that started the child exits, not the process: hold this
		// thread, and run nothing else on it, until the server has exited.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	if o.fastStop {
		t.Cleanup(func() { p.stopFast(t) })
	} else {
		t.Cleanup(func() { p.stop(t) })
	}
	return p
}

// stop sends SIGTERM, waits for the exit and kills the process after stopTimeout. When the test has
// failed, it logs the tail of the server's log, which goes with the test's folder.
func (p *process) stop(t testing.TB) {
	select {
	case <-p.exited:
		t.Logf("%s had exited before the test ended: %v", p.name, p.exitStatus())
	default:
		began := time.Now()
		// Idle keep-alive connections from the helpers would hold up servers that wait for their
		// clients on shutdown (ClickHouse waits out its 3 s keep-alive timeout).
		httpClient.CloseIdleConnections()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Logf("stopping %s: %v", p.name, err)
		}
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			t.Logf("%s still running %s after SIGTERM: killing it", p.name, stopTimeout)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		t.Logf("%s stopped in %s", p.name, time.Since(began).Round(time.Millisecond))
	}
	if t.Failed() && !p.logged {
		t.Logf("%s log %s, last lines:\n%s", p.name, p.logPath, p.tail(30))
	}
}

func (p *process) exitStatus() error {
	if p.err == nil {
		return errors.New("exit status 0")
	}
	return p.err
}

// waitReady polls ready until it returns nil, and fails the test with the log's tail when the process
// exits first or readyTimeout passes.
func (p *process) waitReady(t testing.TB, ready func() error) {
	t.Helper()
	began := time.Now()
	err := poll(readyTimeout, func() (bool, error) {
		select {
		case <-p.exited:
			return false, errStop{fmt.Errorf("exited before it was ready: %w", p.exitStatus())}
		default:
		}
		err := ready()
		return err == nil, err
	})
	if err != nil {
		p.logged = true
		t.Fatalf("starting %s: %v\n%s log %s, last lines:\n%s", p.name, err, p.name, p.logPath, p.tail(30))
	}
	t.Logf("%s ready in %s (pid %d)", p.name, time.Since(began).Round(time.Millisecond), p.cmd.Process.Pid)
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	const maxTail = 64 << 10
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading the log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxTail {
		_, _ = f.Seek(-maxTail, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(reading the log: %v)", err)
	}
	return lastLines(b, n)
}

// httpClient serves the readiness checks and the small query helpers.
var httpClient = &http.Client{Timeout: 5 * time.Second}

// httpOK returns nil when GET url answers 200.
func httpOK(url string) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}
