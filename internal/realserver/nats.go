package realserver

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

// NATS is a NATS server with JetStream started for one test.
type NATS struct {
	URL        string // nats://127.0.0.1:port
	Addr       string // 127.0.0.1:port
	MonitorURL string // HTTP monitoring: http://127.0.0.1:port (/varz, /jsz, /healthz)
	Dir        string // data/ (JetStream's store lands in data/jetstream) and nats.log

	proc *process
}

// StartNATS starts nats-server with JetStream on free 127.0.0.1 ports, its store in a t.TempDir
// folder. It returns once /healthz?js-enabled-only=true answers; the test's cleanup stops it.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	bin := Binary(t, "nats-server")
	dir := t.TempDir()
	port, monitorPort := FreePort(t), FreePort(t)
	n := &NATS{
		URL:        fmt.Sprintf("nats://127.0.0.1:%d", port),
		Addr:       fmt.Sprintf("127.0.0.1:%d", port),
		MonitorURL: fmt.Sprintf("http://127.0.0.1:%d", monitorPort),
		Dir:        dir,
	}
	n.proc = start(t, "nats", dir, bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port),
		"-m", strconv.Itoa(monitorPort), "-js", "-sd", filepath.Join(dir, "data"))
	n.proc.waitReady(t, func() error { return httpOK(n.MonitorURL + "/healthz?js-enabled-only=true") })
	return n
}
