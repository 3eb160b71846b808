// Package rollup turns the metric store's SLI counters into per-minute good
// and total events per service, SLO and region: the history the SLA report
// answers from once the store's own retention has dropped the samples.
//
// Each minute [m, m+1min) is read with PromQL increase() evaluated at m+1min,
// Delay after that minute ends so its last scrapes have landed. increase()
// extrapolates to the window's edges, so a minute's counts are rounded to
// whole events; they are estimates within a scrape interval's share of a
// minute, exact over long windows. Every row's event id is derived from
// (minute, service, SLO, region), so computing a minute twice (a restart, a
// replay) writes the same ids and the store keeps one row for each.
package rollup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/carpoolsla/carpoolsla/alerts"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Minute is one SLO's events in one region over one minute.
type Minute struct {
	EventID uuid.UUID
	Minute  time.Time // start of the minute, UTC
	Service string
	SLO     string
	Region  string
	Good    uint64
	Total   uint64
}

// Sink stores minute rows (ClickHouse's sli_minutes in the platform).
type Sink interface {
	WriteMinutes(ctx context.Context, rows []Minute) error
}

// Config configures a Rollup.
type Config struct {
	Spec    *spec.Spec
	Querier source.Querier
	Sink    Sink
	// Delay is how long after a minute ends it is read (default 30s).
	Delay time.Duration
	// CatchUp bounds how many missed minutes are computed after a pause
	// (default 60).
	CatchUp int
	Now     func() time.Time
	Log     *slog.Logger
}

// Validate reports what is missing.
func (c *Config) Validate() error {
	var errs []error
	if c.Spec == nil {
		errs = append(errs, errors.New("rollup: Spec is nil"))
	}
	if c.Querier == nil {
		errs = append(errs, errors.New("rollup: Querier is nil; give it the metric store the SLIs are scraped into"))
	}
	if c.Sink == nil {
		errs = append(errs, errors.New("rollup: Sink is nil; give it where minute rows go (ClickHouse's sli_minutes)"))
	}
	if c.Delay < 0 || c.CatchUp < 0 {
		errs = append(errs, fmt.Errorf("rollup: Delay (%s) and CatchUp (%d) must not be negative", c.Delay, c.CatchUp))
	}
	return errors.Join(errs...)
}

// Rollup computes and writes minute rows.
type Rollup struct {
	cfg  Config
	next time.Time // the next minute to compute; zero before the first run
}

// New checks the config and fills its defaults.
func New(cfg Config) (*Rollup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Delay == 0 {
		cfg.Delay = 30 * time.Second
	}
	if cfg.CatchUp == 0 {
		cfg.CatchUp = 60
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Rollup{cfg: cfg}, nil
}

// Minute computes one minute's rows (minute is truncated to the minute).
func (r *Rollup) Minute(ctx context.Context, minute time.Time) ([]Minute, error) {
	minute = minute.UTC().Truncate(time.Minute)
	at := minute.Add(time.Minute)
	var rows []Minute
	for _, svc := range r.cfg.Spec.Services {
		for _, slo := range svc.SLOs {
			good, total := alerts.SLIEvents(svc, slo, "increase", "1m", " by (region)")
			g, err := r.byRegion(ctx, good, at)
			if err != nil {
				return nil, fmt.Errorf("rollup %s/%s at %s: good events: %w", svc.Name, slo.Name, minute.Format(time.RFC3339), err)
			}
			t, err := r.byRegion(ctx, total, at)
			if err != nil {
				return nil, fmt.Errorf("rollup %s/%s at %s: total events: %w", svc.Name, slo.Name, minute.Format(time.RFC3339), err)
			}
			for _, region := range r.cfg.Spec.RegionNames() {
				tot, ok := t[region]
				if !ok {
					continue // no traffic recorded: no row, not a zero
				}
				gd := min(g[region], tot)
				rows = append(rows, Minute{
					EventID: EventID(minute, svc.Name, slo.Name, region),
					Minute:  minute, Service: svc.Name, SLO: slo.Name, Region: region,
					Good: gd, Total: tot,
				})
			}
		}
	}
	return rows, nil
}

func (r *Rollup) byRegion(ctx context.Context, expr string, at time.Time) (map[string]uint64, error) {
	v, err := r.cfg.Querier.Query(ctx, expr, at)
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(v))
	for _, s := range v {
		if math.IsNaN(s.Value) || s.Value < 0 {
			continue
		}
		out[s.Labels[catalog.LabelRegion]] = uint64(math.Round(s.Value))
	}
	return out, nil
}

// EventID is the row id of (minute, service, SLO, region): the same inputs
// always give the same id.
func EventID(minute time.Time, service, slo, region string) uuid.UUID {
	key := fmt.Sprintf("sli_minute|%d|%s|%s|%s", minute.UTC().Truncate(time.Minute).Unix(), service, slo, region)
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(key))
}

// Step computes and writes every finished minute not yet written, at most
// CatchUp of them, and returns how many rows it wrote.
func (r *Rollup) Step(ctx context.Context) (int, error) {
	last := r.cfg.Now().Add(-r.cfg.Delay).UTC().Truncate(time.Minute).Add(-time.Minute) // last finished minute
	if r.next.IsZero() {
		r.next = last
	}
	if first := last.Add(-time.Duration(r.cfg.CatchUp-1) * time.Minute); r.next.Before(first) {
		r.cfg.Log.Warn("rollup: skipping minutes beyond the catch-up bound", "from", r.next, "to", first)
		r.next = first
	}
	n := 0
	for !r.next.After(last) {
		rows, err := r.Minute(ctx, r.next)
		if err != nil {
			return n, err
		}
		if len(rows) > 0 {
			if err := r.cfg.Sink.WriteMinutes(ctx, rows); err != nil {
				return n, fmt.Errorf("rollup: writing minute %s: %w", r.next.Format(time.RFC3339), err)
			}
		}
		n += len(rows)
		r.next = r.next.Add(time.Minute)
	}
	return n, nil
}

// Run steps every tick (default 10s) until ctx ends. A failed step is
// logged and retried at the next tick from the same minute.
func (r *Rollup) Run(ctx context.Context, tick time.Duration) error {
	if tick <= 0 {
		tick = 10 * time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if _, err := r.Step(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Log.Warn("rollup step failed; retrying at the next tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
