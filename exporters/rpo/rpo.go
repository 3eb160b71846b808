// Package rpo measures RPO exposure per source → target region pair: the
// age of the oldest write committed in the source region and not yet
// applied in the target, which is the window of data the target would lose
// if the source died now. When the target has applied everything up to the
// source's high-water mark the exposure is 0.
//
// A Backend answers for one pair. StorePair is the backend of the
// services' region stores: the target store's applied offset for the
// source (AppliedSeq) against the source's outbox high-water mark, and the
// commit time of the first unapplied outbox event. Other backends can be
// added behind the same interface, for example MySQL/MariaDB by GTID: the
// target's gtid_slave_pos against the source's gtid_binlog_pos, and the
// timestamp of the first missing transaction's event in the source's
// binary log (SHOW BINLOG EVENTS / mariadb-binlog).
//
// The Scraper is an exporters.Scraper that reads every pair at scrape time
// and sends carpool_rpo_exposure_seconds as client_golang const metrics.
// It works in process only (New with the region stores); there is no
// standalone `carpoolsla exporter rpo` until a database backend exists.
package rpo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/services/store"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Name is the exporter's name, the value of its exporter label.
const Name = "rpo"

// Backend reads one pair's replication position.
type Backend interface {
	// OldestUnapplied returns the commit time of the oldest write
	// committed in the source and not yet applied in the target; behind
	// is false (and commit zero) when the target has applied everything.
	OldestUnapplied(ctx context.Context) (commit time.Time, behind bool, err error)
}

// Outbox is the part of a source region's store the store backend reads;
// *store.Memory and every store.Store satisfy it.
type Outbox interface {
	Since(ctx context.Context, offset uint64, limit int) ([]store.Event, error)
	HighWater(ctx context.Context) (uint64, error)
}

// Applied is the part of a target region's store the store backend reads;
// *store.Memory and every store.Store satisfy it.
type Applied interface {
	AppliedSeq(ctx context.Context, origin string) (uint64, error)
}

// Pair is one source → target region pair. Give either Source and Target
// (the region stores) or Backend.
type Pair struct {
	SourceRegion string
	// Source is the source region's store (its outbox).
	Source       Outbox
	TargetRegion string
	// Target is the target region's store (its applied offsets).
	Target Applied
	// Backend reads the pair instead of Source and Target.
	Backend Backend
}

// Config configures a Scraper.
type Config struct {
	// Name is the exporter label; default Name.
	Name string
	// Pairs are the pairs to report. Required, each pair once.
	Pairs []Pair
	// Now is the clock exposure is measured on; default time.Now.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = Name
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks the configuration after defaults are filled in.
func (c Config) Validate() error {
	if len(c.Pairs) == 0 {
		return errors.New("rpo config: no pairs: give at least one (source region, source store, target region, target store)")
	}
	seen := map[[2]string]bool{}
	for i, p := range c.Pairs {
		stores := p.Source != nil || p.Target != nil
		switch {
		case p.SourceRegion == "" || p.TargetRegion == "":
			return fmt.Errorf("rpo config: pairs[%d]: source and target regions are required", i)
		case p.SourceRegion == p.TargetRegion:
			return fmt.Errorf("rpo config: pairs[%d]: source and target are both region %q", i, p.SourceRegion)
		case stores && p.Backend != nil:
			return fmt.Errorf("rpo config: pair %s→%s: give the stores or a backend, not both", p.SourceRegion, p.TargetRegion)
		case p.Backend == nil && (p.Source == nil || p.Target == nil):
			return fmt.Errorf("rpo config: pair %s→%s: the source and target stores are required (or a backend)", p.SourceRegion, p.TargetRegion)
		case seen[[2]string{p.SourceRegion, p.TargetRegion}]:
			return fmt.Errorf("rpo config: pair %s→%s is listed twice", p.SourceRegion, p.TargetRegion)
		}
		seen[[2]string{p.SourceRegion, p.TargetRegion}] = true
	}
	return nil
}

var exposureDesc = prometheus.NewDesc(catalog.RPOExposure.Name, catalog.RPOExposure.Help, catalog.RPOExposure.Labels, nil)

// Scraper reports the RPO exposure of every pair at scrape time. It
// implements exporters.Scraper; wrap it with exporters.NewCollector.
type Scraper struct {
	cfg      Config
	backends []Backend
}

// New returns a Scraper configured by cfg.
func New(cfg Config) (*Scraper, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Pairs = slices.Clone(cfg.Pairs)
	s := &Scraper{cfg: cfg}
	for _, p := range cfg.Pairs {
		b := p.Backend
		if b == nil {
			b = StorePair(p.SourceRegion, p.Source, p.Target)
		}
		s.backends = append(s.backends, b)
	}
	return s, nil
}

// ClusterPairs returns every ordered pair of the region stores by region
// name (a region.Cluster's: stores[name] = c.Regions[name].Store), sorted.
func ClusterPairs[S interface {
	Outbox
	Applied
}](stores map[string]S) []Pair {
	names := slices.Sorted(maps.Keys(stores))
	var pairs []Pair
	for _, src := range names {
		for _, dst := range names {
			if src != dst {
				pairs = append(pairs, Pair{SourceRegion: src, Source: stores[src], TargetRegion: dst, Target: stores[dst]})
			}
		}
	}
	return pairs
}

// Name implements exporters.Scraper.
func (s *Scraper) Name() string { return s.cfg.Name }

// Describe implements exporters.Scraper.
func (s *Scraper) Describe(ch chan<- *prometheus.Desc) { ch <- exposureDesc }

// Scrape implements exporters.Scraper. A pair whose backend fails is left
// out of this scrape and fails it; the other pairs are still sent.
func (s *Scraper) Scrape(ctx context.Context, ch chan<- prometheus.Metric) error {
	var errs []error
	for i, p := range s.cfg.Pairs {
		commit, behind, err := s.backends[i].OldestUnapplied(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the replication position %s→%s: %w", p.SourceRegion, p.TargetRegion, err))
			continue
		}
		exposure := 0.0
		if behind {
			// Never negative: a source clock ahead of ours shows as 0.
			exposure = max(s.cfg.Now().Sub(commit).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(exposureDesc, prometheus.GaugeValue, exposure, p.SourceRegion, p.TargetRegion)
	}
	return errors.Join(errs...)
}

// StorePair returns the Backend of one pair of region stores: target's
// applied offset for sourceRegion against source's outbox high-water mark,
// and the commit time of the first unapplied outbox event, its HLC wall
// time (the source's physical clock at the write, or slightly ahead of it
// when the source had just seen a later remote timestamp, so the exposure
// errs low by at most the HLC's maximum offset).
func StorePair(sourceRegion string, source Outbox, target Applied) Backend {
	return storePair{region: sourceRegion, source: source, target: target}
}

type storePair struct {
	region string
	source Outbox
	target Applied
}

// OldestUnapplied implements Backend. The target's offset is read before
// the source's mark, so a write applied in between makes the answer
// conservative (older), never optimistic.
func (p storePair) OldestUnapplied(ctx context.Context) (time.Time, bool, error) {
	applied, err := p.target.AppliedSeq(ctx, p.region)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading the target's applied offset: %w", err)
	}
	hw, err := p.source.HighWater(ctx)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading the source's high-water mark: %w", err)
	}
	if applied >= hw {
		return time.Time{}, false, nil
	}
	evs, err := p.source.Since(ctx, applied, 1)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading the source's first unapplied event (after %d): %w", applied, err)
	}
	if len(evs) == 0 {
		return time.Time{}, false, fmt.Errorf("the source's outbox holds no event after %d below its high-water mark %d", applied, hw)
	}
	return evs[0].Record.Version.Time(), true, nil
}
