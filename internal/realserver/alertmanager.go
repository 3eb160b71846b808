package realserver

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Alertmanager is an Alertmanager server started for one test.
type Alertmanager struct {
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port
	Dir  string // alertmanager.yml, the extra files, data/ and alertmanager.log

	proc *process
}

// StartAlertmanager starts Alertmanager with configYAML on a free 127.0.0.1 port, gossip off
// (--cluster.listen-address=) and its storage in a t.TempDir folder. extraFiles (a routing key file, a
// template) are written into that folder first, and "{{DIR}}" in configYAML becomes its path so the
// config can name them. It returns once /-/ready answers; the test's cleanup stops it.
func StartAlertmanager(t testing.TB, configYAML []byte, extraFiles map[string][]byte) *Alertmanager {
	t.Helper()
	bin := Binary(t, "prometheus-alertmanager")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	if err := writeFiles(dir, extraFiles); err != nil {
		t.Fatalf("starting alertmanager: %v", err)
	}
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	cfg := bytes.ReplaceAll(configYAML, []byte("{{DIR}}"), []byte(dir))
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatalf("starting alertmanager: %v", err)
	}
	a := &Alertmanager{URL: "http://" + addr, Addr: addr, Dir: dir}
	a.proc = start(t, "alertmanager", dir, bin,
		"--config.file="+cfgPath,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
	)
	a.proc.waitReady(t, func() error { return httpOK(a.URL + "/-/ready") })
	return a
}
