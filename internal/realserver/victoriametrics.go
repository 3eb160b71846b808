package realserver

import (
	"fmt"
	"path/filepath"
	"testing"
)

// VictoriaMetrics is a single-node VictoriaMetrics started for one test. It speaks the Prometheus
// query API and accepts /api/v1/import/prometheus and remote write.
type VictoriaMetrics struct {
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port
	Dir  string // data/ and victoria-metrics.log

	proc *process
}

// StartVictoriaMetrics starts victoria-metrics on a free 127.0.0.1 port, its data in a t.TempDir
// folder, with -search.latencyOffset=0s (otherwise samples younger than 30 s are invisible to
// queries). It returns once /health answers; the test's cleanup stops it.
//
// A new series shows in queries ~1 s after Flush: poll for it with WaitFor.
func StartVictoriaMetrics(t testing.TB) *VictoriaMetrics {
	t.Helper()
	bin := Binary(t, "victoria-metrics")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	v := &VictoriaMetrics{URL: "http://" + addr, Addr: addr, Dir: dir}
	v.proc = start(t, "victoria-metrics", dir, bin, "-httpListenAddr="+addr,
		"-storageDataPath="+filepath.Join(dir, "data"), "-retentionPeriod=1d", "-search.latencyOffset=0s")
	v.proc.waitReady(t, func() error { return httpOK(v.URL + "/health") })
	return v
}

// Flush makes the samples received so far searchable (GET /internal/force_flush).
func (v *VictoriaMetrics) Flush(t testing.TB) {
	t.Helper()
	if err := httpOK(v.URL + "/internal/force_flush"); err != nil {
		t.Fatalf("flushing victoria-metrics: %v", err)
	}
}

// Query evaluates an instant PromQL (MetricsQL) query now and returns its samples. An error fails the
// test.
func (v *VictoriaMetrics) Query(t testing.TB, promql string) []Sample {
	t.Helper()
	samples, err := query(v.URL, promql)
	if err != nil {
		t.Fatalf("querying victoria-metrics: %v", err)
	}
	return samples
}
