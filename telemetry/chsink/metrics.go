package chsink

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Metrics are the pipeline's collectors (sla/catalog/chsink.go). One Metrics
// serves every writer and the retention job of a process; build it once per
// registry.
type Metrics struct {
	written, inserted, spilled, lost, insertFailures *prometheus.CounterVec
	insertDuration                                   *prometheus.HistogramVec
	queue, walBytes, walLimit, walRecords, degraded  *prometheus.GaugeVec
	retentionDropped, retentionRuns                  *prometheus.CounterVec
	retentionLastSuccess                             *prometheus.GaugeVec
}

// NewMetrics builds the collectors and registers them with reg (nil: not
// registered, for tests and tools).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		written:              telemetry.NewCounterVec(catalog.ChsinkWritten),
		inserted:             telemetry.NewCounterVec(catalog.ChsinkInserted),
		spilled:              telemetry.NewCounterVec(catalog.ChsinkSpilled),
		lost:                 telemetry.NewCounterVec(catalog.ChsinkLost),
		insertFailures:       telemetry.NewCounterVec(catalog.ChsinkInsertFailures),
		insertDuration:       telemetry.NewHistogramVec(catalog.ChsinkInsertDuration),
		queue:                telemetry.NewGaugeVec(catalog.ChsinkQueue),
		walBytes:             telemetry.NewGaugeVec(catalog.ChsinkWALBytes),
		walLimit:             telemetry.NewGaugeVec(catalog.ChsinkWALLimitBytes),
		walRecords:           telemetry.NewGaugeVec(catalog.ChsinkWALRecords),
		degraded:             telemetry.NewGaugeVec(catalog.ChsinkDegraded),
		retentionDropped:     telemetry.NewCounterVec(catalog.ChsinkRetentionDropped),
		retentionRuns:        telemetry.NewCounterVec(catalog.ChsinkRetentionRuns),
		retentionLastSuccess: telemetry.NewGaugeVec(catalog.ChsinkRetentionLastSuccess),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.written, m.inserted, m.spilled, m.lost, m.insertFailures, m.insertDuration,
		m.queue, m.walBytes, m.walLimit, m.walRecords, m.degraded, m.retentionDropped, m.retentionRuns, m.retentionLastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the ClickHouse pipeline's metrics: %w", err)
		}
	}
	return m, nil
}

// writerMetrics are one table's children, looked up once.
type writerMetrics struct {
	written                                     prometheus.Counter
	insertedLive, insertedReplay                prometheus.Counter
	failLive, failReplay                        prometheus.Counter
	durLive, durReplay                          prometheus.Observer
	spillQueueFull, spillFailed, spillDegraded  prometheus.Counter
	spillShutdown                               prometheus.Counter
	lostFull, lostError, lostCorrupt, lostNoWAL prometheus.Counter
	lostClosed                                  prometheus.Counter
	queue, walBytes, walLimit, walRecords       prometheus.Gauge
	degraded                                    prometheus.Gauge
}

func (m *Metrics) forTable(t string) writerMetrics {
	return writerMetrics{
		written:        m.written.WithLabelValues(t),
		insertedLive:   m.inserted.WithLabelValues(t, catalog.WritePathLive),
		insertedReplay: m.inserted.WithLabelValues(t, catalog.WritePathReplay),
		failLive:       m.insertFailures.WithLabelValues(t, catalog.WritePathLive),
		failReplay:     m.insertFailures.WithLabelValues(t, catalog.WritePathReplay),
		durLive:        m.insertDuration.WithLabelValues(t, catalog.WritePathLive),
		durReplay:      m.insertDuration.WithLabelValues(t, catalog.WritePathReplay),
		spillQueueFull: m.spilled.WithLabelValues(t, catalog.SpillQueueFull),
		spillFailed:    m.spilled.WithLabelValues(t, catalog.SpillInsertFailed),
		spillDegraded:  m.spilled.WithLabelValues(t, catalog.SpillDegraded),
		spillShutdown:  m.spilled.WithLabelValues(t, catalog.SpillShutdown),
		lostFull:       m.lost.WithLabelValues(t, catalog.LostWALFull),
		lostError:      m.lost.WithLabelValues(t, catalog.LostWALError),
		lostCorrupt:    m.lost.WithLabelValues(t, catalog.LostWALCorrupt),
		lostNoWAL:      m.lost.WithLabelValues(t, catalog.LostNoWAL),
		lostClosed:     m.lost.WithLabelValues(t, catalog.LostClosed),
		queue:          m.queue.WithLabelValues(t),
		walBytes:       m.walBytes.WithLabelValues(t),
		walLimit:       m.walLimit.WithLabelValues(t),
		walRecords:     m.walRecords.WithLabelValues(t),
		degraded:       m.degraded.WithLabelValues(t),
	}
}
