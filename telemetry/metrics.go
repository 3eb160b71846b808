// Package telemetry holds the shared instrumentation setup. This file turns
// entries of the signal catalog into client_golang collectors, so that every
// producer exposes exactly the catalog's names, labels and buckets.
package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// NewHistogramVec builds the histogram of a catalog metric. It panics when m
// is not a histogram: the catalog is fixed at compile time, so that is a
// programming error, caught by this package's tests.
func NewHistogramVec(m catalog.Metric) *prometheus.HistogramVec {
	mustBe(m, catalog.Histogram)
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: m.Name, Help: m.Help, Buckets: m.Buckets}, m.Labels)
}

// NewCounterVec builds the counter of a catalog metric; it panics when m is
// not a counter (see NewHistogramVec).
func NewCounterVec(m catalog.Metric) *prometheus.CounterVec {
	mustBe(m, catalog.Counter)
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.Name, Help: m.Help}, m.Labels)
}

// NewGaugeVec builds the gauge of a catalog metric; it panics when m is not a
// gauge (see NewHistogramVec).
func NewGaugeVec(m catalog.Metric) *prometheus.GaugeVec {
	mustBe(m, catalog.Gauge)
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.Name, Help: m.Help}, m.Labels)
}

// NewCollector builds the collector of any produced catalog metric.
func NewCollector(m catalog.Metric) (prometheus.Collector, error) {
	switch m.Type {
	case catalog.Histogram:
		return NewHistogramVec(m), nil
	case catalog.Counter:
		return NewCounterVec(m), nil
	case catalog.Gauge:
		return NewGaugeVec(m), nil
	default:
		return nil, fmt.Errorf("catalog metric %s is of type %s, which no process exposes", m.Name, m.Type)
	}
}

func mustBe(m catalog.Metric, t catalog.Type) {
	if m.Type != t {
		panic(fmt.Sprintf("catalog metric %s is a %s, not a %s", m.Name, m.Type, t))
	}
}
