package telemetry

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// exposeCatalog registers every produced catalog metric in a fresh registry
// with one sample each and renders the text exposition.
func exposeCatalog(t *testing.T) []byte {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, m := range catalog.Produced() {
		c, err := NewCollector(m)
		if err != nil {
			t.Fatal(err)
		}
		reg.MustRegister(c)
		values := make([]string, len(m.Labels))
		for i := range values {
			values[i] = "x"
		}
		switch v := c.(type) {
		case *prometheus.HistogramVec:
			v.WithLabelValues(values...).Observe(0.25)
		case *prometheus.CounterVec:
			v.WithLabelValues(values...).Inc()
		case *prometheus.GaugeVec:
			v.WithLabelValues(values...).Set(1)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering the catalog: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	if len(mfs) != len(catalog.Produced()) {
		t.Fatalf("gathered %d families, want %d", len(mfs), len(catalog.Produced()))
	}
	return buf.Bytes()
}

// TestCatalogPassesPromtoolCheckMetrics runs the real promtool's linter over
// every metric in the catalog: names, units, suffixes and help texts.
func TestCatalogPassesPromtoolCheckMetrics(t *testing.T) {
	promtool := realserver.Binary(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposeCatalog(t))
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics found problems (err %v):\n%s", err, out)
	}
}

func TestPromtoolCheckMetricsCanFail(t *testing.T) {
	promtool := realserver.Binary(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader("# HELP carpool_bad_total x\n# TYPE carpool_bad_total gauge\ncarpool_bad_total 1\n")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "counter metrics should have") && !strings.Contains(string(out), "non-counter metrics should not have") {
		t.Fatalf("promtool did not flag a gauge named _total: %s", out)
	}
}

func TestWrongTypePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewGaugeVec of a histogram did not panic")
		}
	}()
	NewGaugeVec(catalog.RequestDuration)
}
