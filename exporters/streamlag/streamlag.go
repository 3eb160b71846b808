// Package streamlag exports how far consumer groups are behind their
// streams: carpool_stream_lag_messages (messages not yet delivered to the
// group) and carpool_stream_lag_seconds (the age of the oldest of them),
// per region, stream and group.
//
// Three readers feed one Scraper, all read at scrape time:
//
//   - RedisReader: Redis Streams consumer groups, from XINFO GROUPS and the
//     millisecond timestamp in the id of the first entry after the group's
//     last-delivered-id (the lag field is corrected or counted when Redis
//     cannot tell it);
//   - NATSReader: NATS JetStream consumers, num_pending and a seconds lag
//     interpolated over a bounded table of (sequence, time) samples per
//     stream, the way kafka-lag-exporter does;
//   - GroupReader: any stream with a Lag(ctx, group) method, such as the
//     location service's streams (services/location), in process.
package streamlag

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Name is the exporter label value of the stream-lag exporter.
const Name = "streamlag"

// Lag is how far one consumer group is behind its stream.
type Lag struct {
	Region, Stream, Group string
	// Messages not yet delivered to the group.
	Messages int64
	// Oldest is when the oldest of them was added; zero when there are none.
	Oldest time.Time
}

// Seconds is the age of the oldest undelivered message at now: 0 when
// there is none, and never negative (a producer's clock ahead of ours).
func (l Lag) Seconds(now time.Time) float64 {
	if l.Messages == 0 || l.Oldest.IsZero() {
		return 0
	}
	return max(0, now.Sub(l.Oldest).Seconds())
}

// Reader reads the lag of the consumer groups it watches at scrape time.
// It may return the lags it could read together with an error for the
// rest.
type Reader interface {
	Read(ctx context.Context, now time.Time) ([]Lag, error)
}

// Config configures a Scraper.
type Config struct {
	// Readers are read concurrently on every scrape. At least one.
	Readers []Reader
	// Now is the clock lag seconds are measured against; default time.Now.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if len(c.Readers) == 0 {
		return errors.New("streamlag: no reader configured: give a Redis address, a NATS URL or an in-process stream")
	}
	for i, r := range c.Readers {
		if r == nil {
			return fmt.Errorf("streamlag: reader %d is nil", i)
		}
	}
	return nil
}

var (
	messagesDesc = desc(catalog.StreamLagMessages)
	secondsDesc  = desc(catalog.StreamLagSeconds)
)

func desc(m catalog.Metric) *prometheus.Desc {
	return prometheus.NewDesc(m.Name, m.Help, m.Labels, nil)
}

// Scraper implements exporters.Scraper: each scrape reads every reader and
// sends carpool_stream_lag_messages and _seconds for each group found.
type Scraper struct {
	cfg Config
}

// New returns a Scraper over cfg's readers.
func New(cfg Config) (*Scraper, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Scraper{cfg: cfg}, nil
}

// Name implements exporters.Scraper.
func (s *Scraper) Name() string { return Name }

// Describe implements exporters.Scraper.
func (s *Scraper) Describe(ch chan<- *prometheus.Desc) {
	ch <- messagesDesc
	ch <- secondsDesc
}

// Scrape implements exporters.Scraper. A reader's error fails the scrape
// (up 0) but the lags every reader could read are still sent.
func (s *Scraper) Scrape(ctx context.Context, ch chan<- prometheus.Metric) error {
	now := s.cfg.Now()
	lags := make([][]Lag, len(s.cfg.Readers))
	errs := make([]error, len(s.cfg.Readers))
	var wg sync.WaitGroup
	for i, r := range s.cfg.Readers {
		wg.Go(func() { lags[i], errs[i] = r.Read(ctx, now) })
	}
	wg.Wait()
	seen := make(map[[3]string]bool)
	var dups []string
	for _, ls := range lags {
		for _, l := range ls {
			key := [3]string{l.Region, l.Stream, l.Group}
			if seen[key] {
				dups = append(dups, strings.Join(key[:], "/"))
				continue
			}
			seen[key] = true
			ch <- prometheus.MustNewConstMetric(messagesDesc, prometheus.GaugeValue, float64(l.Messages), l.Region, l.Stream, l.Group)
			ch <- prometheus.MustNewConstMetric(secondsDesc, prometheus.GaugeValue, l.Seconds(now), l.Region, l.Stream, l.Group)
		}
	}
	if len(dups) > 0 {
		errs = append(errs, fmt.Errorf("two readers report the same region/stream/group %s: give each reader its own region label", strings.Join(dups, ", ")))
	}
	return errors.Join(errs...)
}

// discard is the default logger.
func discard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
