package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// HeartbeatTable holds one row per region, keyed by the region name, that
// the region rewrites every second. The row replicates like any other
// data, so "the newest heartbeat of region X applied in region Y" measures
// how far Y's copy of X lags behind (the sync-lag method that keeps growing
// when replication stops, unlike a replica's own lag estimate).
const HeartbeatTable = "heartbeat"

// DefaultHeartbeatInterval is how often a HeartbeatWriter writes.
const DefaultHeartbeatInterval = time.Second

// Heartbeat is the value of a heartbeat row.
type Heartbeat struct {
	Region string `json:"region"`
	// Written is the region's physical clock (with any injected skew) when
	// it wrote the row.
	Written time.Time `json:"written"`
}

// Putter writes a record; *Memory and every Store satisfy it.
type Putter interface {
	Put(ctx context.Context, table, key string, value []byte) (Record, error)
}

// Getter reads a record; *Memory and every Store satisfy it.
type Getter interface {
	Get(ctx context.Context, table, key string) (Record, bool, error)
}

// HeartbeatConfig configures a HeartbeatWriter.
type HeartbeatConfig struct {
	// Store receives the heartbeat rows. Required.
	Store Putter
	// Region is the writing region, the row's key. Required.
	Region string
	// Interval between writes; default DefaultHeartbeatInterval.
	Interval time.Duration
	// Now is the region's physical clock; default time.Now. Pass the
	// region's faults.Injector.Clock so that injected skew shows.
	Now func() time.Time
	// Logger receives write failures; default discards.
	Logger *slog.Logger
}

func (c *HeartbeatConfig) defaults() {
	if c.Interval == 0 {
		c.Interval = DefaultHeartbeatInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration after defaults are filled in.
func (c HeartbeatConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("heartbeat config: store is required")
	case c.Region == "":
		return errors.New("heartbeat config: region is required")
	case c.Interval <= 0:
		return fmt.Errorf("heartbeat config: interval is %v; it must be positive", c.Interval)
	}
	return nil
}

// HeartbeatWriter writes its region's heartbeat row every interval.
type HeartbeatWriter struct {
	cfg HeartbeatConfig
	log *slog.Logger
}

// NewHeartbeatWriter returns a writer configured by cfg.
func NewHeartbeatWriter(cfg HeartbeatConfig) (*HeartbeatWriter, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &HeartbeatWriter{cfg: cfg, log: cfg.Logger.With("region", cfg.Region, "service", "heartbeat")}, nil
}

// Beat writes one heartbeat row now.
func (w *HeartbeatWriter) Beat(ctx context.Context) (Heartbeat, error) {
	hb := Heartbeat{Region: w.cfg.Region, Written: w.cfg.Now().UTC()}
	b, err := json.Marshal(hb)
	if err != nil {
		return Heartbeat{}, fmt.Errorf("encoding the heartbeat of %s: %w", w.cfg.Region, err)
	}
	if _, err := w.cfg.Store.Put(ctx, HeartbeatTable, w.cfg.Region, b); err != nil {
		return Heartbeat{}, fmt.Errorf("writing the heartbeat of %s: %w", w.cfg.Region, err)
	}
	return hb, nil
}

// Run writes a heartbeat at once and then every interval until ctx ends;
// a failed write is logged and the next one tried on schedule. It returns
// nil when ctx is cancelled.
func (w *HeartbeatWriter) Run(ctx context.Context) error {
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	for {
		if _, err := w.Beat(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("heartbeat write failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// ReadHeartbeat returns the newest heartbeat of source held by g (the
// applied heartbeat of source in g's region), with the record that carried
// it; ok is false when none has arrived yet.
func ReadHeartbeat(ctx context.Context, g Getter, source string) (hb Heartbeat, rec Record, ok bool, err error) {
	rec, ok, err = g.Get(ctx, HeartbeatTable, source)
	if err != nil || !ok || rec.Deleted {
		if err != nil {
			err = fmt.Errorf("reading the heartbeat of %s: %w", source, err)
		}
		return Heartbeat{}, rec, false, err
	}
	if err := json.Unmarshal(rec.Value, &hb); err != nil {
		return Heartbeat{}, rec, false, fmt.Errorf("decoding the heartbeat of %s: %w", source, err)
	}
	return hb, rec, true, nil
}
