package synclag

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// DefaultInterval is how often a Writer stamps its heartbeat.
const DefaultInterval = time.Second

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Region is the writing (source) region, the heartbeat row's key.
	// Required.
	Region string
	// Backend receives the heartbeats: the source region's database.
	// Required.
	Backend HeartbeatWriter
	// Interval between stamps; default DefaultInterval. The lag reads
	// up to one interval high just before a stamp lands.
	Interval time.Duration
	// Timeout bounds one write; default the interval.
	Timeout time.Duration
	// Now is the source region's clock; default time.Now.
	Now func() time.Time
	// Logger receives write failures (once per distinct error) and
	// recoveries; default discards.
	Logger *slog.Logger
}

func (c *WriterConfig) defaults() {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = c.Interval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration after defaults are filled in.
func (c WriterConfig) Validate() error {
	switch {
	case c.Region == "":
		return errors.New("synclag writer: region is required (the source region whose heartbeat it writes)")
	case c.Backend == nil:
		return errors.New("synclag writer: backend is required")
	case c.Interval <= 0:
		return fmt.Errorf("synclag writer: interval is %v; it must be positive", c.Interval)
	case c.Timeout <= 0:
		return fmt.Errorf("synclag writer: timeout is %v; it must be positive", c.Timeout)
	}
	return nil
}

var writeErrorsDesc = desc(catalog.SyncHeartbeatWriteErrors)

// Writer stamps its region's heartbeat every interval. It implements
// HeartbeatReader (its newest successful stamp, for
// Config.Written) and prometheus.Collector (its write errors).
type Writer struct {
	cfg WriterConfig
	log *slog.Logger

	mu      sync.Mutex
	last    time.Time // newest successful stamp
	lastErr error
	errors  float64
}

// NewWriter returns a Writer configured by cfg.
func NewWriter(cfg WriterConfig) (*Writer, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Writer{cfg: cfg, log: cfg.Logger.With("exporter", Name, "region", cfg.Region)}, nil
}

// Beat writes one heartbeat now. Its error is also kept for Read and
// counted.
func (w *Writer) Beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	ts := w.cfg.Now()
	err := w.cfg.Backend.Write(ctx, w.cfg.Region, ts)
	if err != nil {
		err = fmt.Errorf("writing the heartbeat of %s: %w", w.cfg.Region, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err != nil:
		w.errors++
		if w.lastErr == nil || w.lastErr.Error() != err.Error() {
			w.log.Warn("heartbeat write failed; retrying every interval", "err", err.Error())
		}
	case w.lastErr != nil:
		w.log.Info("heartbeat write recovered")
	}
	w.lastErr = err
	if err == nil && ts.After(w.last) {
		w.last = ts
	}
	return err
}

// Run stamps a heartbeat at once and then every interval until ctx ends;
// a failed write is logged and the next one tried on schedule. It returns
// nil when ctx is cancelled.
func (w *Writer) Run(ctx context.Context) error {
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	for {
		_ = w.Beat(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Read implements HeartbeatReader: the newest stamp the Writer wrote
// successfully (none before the first), and the last write's error.
func (w *Writer) Read(context.Context) (map[string]time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]time.Time{}
	if !w.last.IsZero() {
		out[w.cfg.Region] = w.last
	}
	return out, w.lastErr
}

// Describe implements prometheus.Collector.
func (w *Writer) Describe(ch chan<- *prometheus.Desc) { ch <- writeErrorsDesc }

// Collect implements prometheus.Collector.
func (w *Writer) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	n := w.errors
	w.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(writeErrorsDesc, prometheus.CounterValue, n, w.cfg.Region)
}

// OnlyRegion returns a HeartbeatReader that keeps region's row of r and
// drops the others: the written heartbeat of region read from its own
// (source) database, where rows of other regions may be replicas.
func OnlyRegion(region string, r HeartbeatReader) HeartbeatReader {
	return onlyRegion{region: region, r: r}
}

type onlyRegion struct {
	region string
	r      HeartbeatReader
}

func (o onlyRegion) Read(ctx context.Context) (map[string]time.Time, error) {
	got, err := o.r.Read(ctx)
	out := map[string]time.Time{}
	if ts, ok := got[o.region]; ok {
		out[o.region] = ts
	}
	return out, err
}
