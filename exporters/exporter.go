// Package exporters holds the collectors that turn outside state into the
// catalog's metrics at scrape time: sync lag, RPO exposure, stream lag,
// config drift, data consistency, probes and drill results. Each works in
// process (the demo wires it to the services) and standalone
// (`carpoolsla exporter KIND`), pointed at real systems. Exporters measure;
// they decide nothing.
//
// This file is the shared frame: a Scraper is wrapped into a Collector that
// bounds each scrape in time and adds the exporter's own up, scrape-error
// and scrape-duration metrics; Handler serves a client_golang registry and
// any VictoriaMetrics/metrics sets on one /metrics.
package exporters

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Scraper reads one backend at scrape time.
type Scraper interface {
	// Name is the exporter's name, the value of the exporter label.
	Name() string
	// Describe sends the descriptors of the metrics Scrape sends.
	Describe(ch chan<- *prometheus.Desc)
	// Scrape reads the backend and sends its metrics. An error marks the
	// scrape failed (up 0); metrics sent before it are still exposed.
	Scrape(ctx context.Context, ch chan<- prometheus.Metric) error
}

// DefaultScrapeTimeout bounds one scrape of a backend.
const DefaultScrapeTimeout = 5 * time.Second

// desc builds a frame descriptor with the exporter label fixed, so that
// several exporters' collectors can share one registry.
func desc(m catalog.Metric, exporter string) *prometheus.Desc {
	return prometheus.NewDesc(m.Name, m.Help, nil, prometheus.Labels{catalog.LabelExporter: exporter})
}

// Collector is a prometheus.Collector that runs a Scraper on every
// collection, bounded by Timeout, and reports the scrape's own health. A
// failing backend never fails the collection: it shows as up 0, a counted
// error and a log line, and the next scrape tries again.
type Collector struct {
	s       Scraper
	timeout time.Duration

	upDesc, errorsDesc, durationDesc *prometheus.Desc
	log                              *slog.Logger
	now                              func() time.Time

	mu     sync.Mutex
	errors float64
	last   error
}

// NewCollector wraps s. timeout <= 0 uses DefaultScrapeTimeout; log nil discards.
func NewCollector(s Scraper, timeout time.Duration, log *slog.Logger) *Collector {
	if timeout <= 0 {
		timeout = DefaultScrapeTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{s: s, timeout: timeout, log: log.With("exporter", s.Name()), now: time.Now,
		upDesc:       desc(catalog.ExporterUp, s.Name()),
		errorsDesc:   desc(catalog.ExporterScrapeErrors, s.Name()),
		durationDesc: desc(catalog.ExporterScrapeDuration, s.Name())}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.upDesc
	ch <- c.errorsDesc
	ch <- c.durationDesc
	c.s.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := c.now()
	err := c.s.Scrape(ctx, ch)
	took := c.now().Sub(start)
	c.mu.Lock()
	if err != nil {
		c.errors++
		if c.last == nil || c.last.Error() != err.Error() {
			c.log.Warn("scrape failed", "err", err.Error())
		}
	} else if c.last != nil {
		c.log.Info("scrape recovered")
	}
	c.last = err
	errs := c.errors
	c.mu.Unlock()
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.errorsDesc, prometheus.CounterValue, errs)
	ch <- prometheus.MustNewConstMetric(c.durationDesc, prometheus.GaugeValue, took.Seconds())
}

// LastError is the last scrape's error, nil when it succeeded.
func (c *Collector) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Handler serves /metrics: the gatherer (a registry, or several as
// prometheus.Gatherers) in the Prometheus text format, followed by each
// VictoriaMetrics/metrics set. Gathering comes first, so a set refreshed at
// collection (the sync-lag exporter's) is written fresh.
func Handler(reg prometheus.Gatherer, sets ...*vmetrics.Set) http.Handler {
	prom := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	if len(sets) == 0 {
		return prom
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The sets write plain text after the registry's output, so the
		// registry must write plain text too: no OpenMetrics, no gzip.
		r.Header.Del("Accept")
		r.Header.Del("Accept-Encoding")
		prom.ServeHTTP(w, r)
		for _, s := range sets {
			s.WritePrometheus(w)
		}
	})
}

// Mux serves /metrics and /healthz for a standalone exporter.
func Mux(metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "carpoolsla exporter: metrics at /metrics")
	})
	return mux
}
