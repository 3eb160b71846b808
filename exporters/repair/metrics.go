package repair

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Name is the exporter's name, the exporter label of its own health.
const Name = "repair"

var (
	breakerOpenDesc  = desc(catalog.RepairBreakerOpen)
	attemptsDesc     = desc(catalog.RepairAttempts)
	failureRatioDesc = desc(catalog.RepairFailureRatio)
	lastRunDesc      = desc(catalog.RepairLastRun)
)

func desc(m catalog.Metric) *prometheus.Desc {
	return prometheus.NewDesc(m.Name, m.Help, m.Labels, nil)
}

// Job implements exporters.Scraper.
var _ exporters.Scraper = (*Job)(nil)

// Name implements exporters.Scraper.
func (j *Job) Name() string { return Name }

// Describe implements exporters.Scraper.
func (j *Job) Describe(ch chan<- *prometheus.Desc) {
	ch <- breakerOpenDesc
	ch <- attemptsDesc
	ch <- failureRatioDesc
	ch <- lastRunDesc
}

// Scrape implements exporters.Scraper: the breaker, the attempts and the
// day's failure rate. It fails (up 0) while the last cycle could not reach
// a backend.
func (j *Job) Scrape(_ context.Context, ch chan<- prometheus.Metric) error {
	s := j.State()
	src, tgt := j.cfg.SourceRegion, j.cfg.TargetRegion
	open := 0.0
	if s.Open {
		open = 1
	}
	j.mu.Lock()
	ok, failed, lastRun, lastErr := j.total.ok, j.total.failed, j.lastRun, j.lastErr
	j.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(breakerOpenDesc, prometheus.GaugeValue, open, src, tgt)
	ch <- prometheus.MustNewConstMetric(attemptsDesc, prometheus.CounterValue, ok, src, tgt, catalog.OutcomeOK)
	ch <- prometheus.MustNewConstMetric(attemptsDesc, prometheus.CounterValue, failed, src, tgt, catalog.OutcomeError)
	ch <- prometheus.MustNewConstMetric(failureRatioDesc, prometheus.GaugeValue, s.Rate, src, tgt)
	if !lastRun.IsZero() {
		ch <- prometheus.MustNewConstMetric(lastRunDesc, prometheus.GaugeValue, float64(lastRun.UnixNano())/1e9, src, tgt)
	}
	return lastErr
}
