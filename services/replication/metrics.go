package replication

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Metrics are the replication metrics of the catalog, shared by every
// replicator of a process that registers in the same registry.
type Metrics struct {
	applied, conflicts   *prometheus.CounterVec
	backlog, lastApplied *prometheus.GaugeVec
}

// NewMetrics builds the replication metrics and registers them in reg
// (nil: not registered, for tests). Registering twice in one registry
// returns the families already there, so that regions wired in one process
// can share a registry.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		applied:     telemetry.NewCounterVec(catalog.ReplicationApplied),
		conflicts:   telemetry.NewCounterVec(catalog.ReplicationConflicts),
		backlog:     telemetry.NewGaugeVec(catalog.ReplicationBacklog),
		lastApplied: telemetry.NewGaugeVec(catalog.ReplicationLastApplied),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.applied, err = register(reg, m.applied); err != nil {
		return nil, err
	}
	if m.conflicts, err = register(reg, m.conflicts); err != nil {
		return nil, err
	}
	if m.backlog, err = register(reg, m.backlog); err != nil {
		return nil, err
	}
	if m.lastApplied, err = register(reg, m.lastApplied); err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	are := prometheus.AlreadyRegisteredError{}
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering the replication metrics: %w", err)
}

// pairMetrics are one pair's cached children.
type pairMetrics struct {
	applied, conflicts   prometheus.Counter
	backlog, lastApplied prometheus.Gauge
}

func (m *Metrics) pair(source, target string) pairMetrics {
	return pairMetrics{
		applied:     m.applied.WithLabelValues(source, target),
		conflicts:   m.conflicts.WithLabelValues(source, target),
		backlog:     m.backlog.WithLabelValues(source, target),
		lastApplied: m.lastApplied.WithLabelValues(source, target),
	}
}
