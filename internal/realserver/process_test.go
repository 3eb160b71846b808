package realserver

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestProcessFailsWithTheLogTail(t *testing.T) {
	dir := t.TempDir()
	got := failure(t, func(tb testing.TB) {
		p := start(tb, "broken", dir, "/bin/sh", "-c", "echo starting; echo 'bind: address already in use' >&2; exit 3")
		p.waitReady(tb, func() error { return errors.New("connection refused") })
	})
	for _, want := range []string{
		"starting broken: exited before it was ready: exit status 3",
		"broken log " + dir + "/broken.log, last lines:\nstarting\nbind: address already in use",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the failure\n%s\ndoes not contain\n%s", got, want)
		}
	}
}

func TestProcessStopsOnCleanup(t *testing.T) {
	var p *process
	t.Run("server", func(t *testing.T) {
		p = start(t, "sleeper", t.TempDir(), "/bin/sleep", "60")
		p.waitReady(t, func() error { return nil })
	})
	select {
	case <-p.exited:
	default:
		t.Fatal("the process still runs after its test's cleanup")
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
		t.Errorf("the process ended with %v, want SIGTERM", p.cmd.ProcessState)
	}
}
