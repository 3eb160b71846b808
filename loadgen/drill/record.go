package drill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Recorder stores drill results, e.g. as rows of ClickHouse's
// drill_results table (event_id, ts, scenario, region, passed,
// rto_seconds, rpo_seconds, detect_seconds, decide_seconds, shift_seconds,
// success_ratio, report): Result's top-level fields, with its Markdown as
// the report.
type Recorder interface {
	RecordDrill(ctx context.Context, r Result) error
}

// MetricsRecorder receives a drill's RTO phases and RPO; *rto.Drills
// implements it, so the RTO exporter exports carpool_drill_rto_seconds and
// carpool_drill_rpo_seconds.
type MetricsRecorder interface {
	Record(scenario string, phases map[string]time.Duration, rpo time.Duration) error
}

// Metrics exports the last drill of each scenario beyond its RTO and RPO:
// carpool_drill_passed, carpool_drill_order_success_ratio and
// carpool_drill_lost_writes.
type Metrics struct {
	passed, success, lost *prometheus.GaugeVec
}

// NewMetrics registers the drill metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		passed:  telemetry.NewGaugeVec(catalog.DrillPassed),
		success: telemetry.NewGaugeVec(catalog.DrillOrderSuccess),
		lost:    telemetry.NewGaugeVec(catalog.DrillLostWrites),
	}
	for _, c := range []prometheus.Collector{m.passed, m.success, m.lost} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the drill metrics: %w", err)
		}
	}
	return m, nil
}

// Observe sets the metrics of r's scenario. A drill that was not measured
// sets only carpool_drill_passed (to 0).
func (m *Metrics) Observe(r Result) {
	passed := 0.0
	if r.Passed {
		passed = 1
	}
	m.passed.WithLabelValues(r.Scenario).Set(passed)
	if !r.Measurable {
		return
	}
	m.success.WithLabelValues(r.Scenario).Set(r.SuccessRatio)
	lost := 0
	for _, n := range r.RPO.Missing {
		lost = max(lost, n)
	}
	m.lost.WithLabelValues(r.Scenario).Set(float64(lost))
}

// WriteReports writes r as <dir>/drill-<scenario>-<time>.json and .md and
// returns their paths.
func WriteReports(dir string, r Result) (jsonPath, mdPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("creating the report folder: %w", err)
	}
	at := r.TS
	if at.IsZero() {
		at = r.Timeline.Start
	}
	base := filepath.Join(dir, fmt.Sprintf("drill-%s-%s", r.Scenario, at.UTC().Format("20060102T150405Z")))
	b, err := r.JSON()
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(base+".json", b, 0o644); err != nil {
		return "", "", fmt.Errorf("writing the JSON report: %w", err)
	}
	if err := os.WriteFile(base+".md", []byte(r.Markdown()), 0o644); err != nil {
		return "", "", fmt.Errorf("writing the Markdown report: %w", err)
	}
	return base + ".json", base + ".md", nil
}

func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
