// Package configdrift exports whether every region runs the same
// configuration. On every scrape it fetches each region's configuration
// (a file, an HTTP endpoint, or a function in process), normalizes it
// (parsed as JSON or YAML, volatile fields dropped, keys sorted, one
// spelling per number), hashes it with SHA-256 and compares the hashes:
//
//	carpool_config_consistent{source}           1 all equal, 0 two differ
//	carpool_config_hash_info{source,region,hash} 1
//	carpool_config_drifted{source,region}        1 differs from the majority
//	carpool_config_fetch_success{source,region}  0 could not fetch or parse
//	carpool_config_fetch_errors_total{source,region}
//
// A region whose configuration cannot be fetched is not counted as drifted:
// the scrape fails (up 0), its fetch metrics say so, it has no hash and no
// drifted series, and consistency is not claimed: consistent is 0 when the
// regions that were fetched already differ, and absent when they agree.
package configdrift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Name is the exporter label value of the config-drift exporter.
const Name = "configdrift"

// hashLabelLen is how many hex digits of the hash the hash label carries.
const hashLabelLen = 16

// Region is one region's configuration source.
type Region struct {
	Name    string
	Fetcher Fetcher
}

// Set is one configuration compared across regions, the source label.
type Set struct {
	// Source names the configuration (the source label), e.g. "services".
	Source string
	// Regions are the regions compared; at least two.
	Regions []Region
	// Ignore are the volatile fields dropped before hashing (timestamps,
	// the region's own name, ...).
	Ignore []Path
	// Reference, when set, is the region the others are compared with; by
	// default the majority's hash is. It must be one of Regions.
	Reference string
}

// Config configures a Scraper.
type Config struct {
	Sets []Set
	// Log receives a line when a region's hash changes; default discard.
	Log *slog.Logger
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.Sets) == 0 {
		errs = append(errs, errors.New("configdrift: no configuration set to compare"))
	}
	sources := map[string]bool{}
	for _, s := range c.Sets {
		if s.Source == "" {
			errs = append(errs, errors.New("configdrift: a set without a source name"))
		}
		if sources[s.Source] {
			errs = append(errs, fmt.Errorf("configdrift: source %q is given twice", s.Source))
		}
		sources[s.Source] = true
		if len(s.Regions) < 2 {
			errs = append(errs, fmt.Errorf("configdrift: source %q has %d region(s); drift needs at least two to compare", s.Source, len(s.Regions)))
		}
		names := map[string]bool{}
		for _, r := range s.Regions {
			switch {
			case r.Name == "":
				errs = append(errs, fmt.Errorf("configdrift: source %q has a region without a name", s.Source))
			case names[r.Name]:
				errs = append(errs, fmt.Errorf("configdrift: source %q names region %q twice", s.Source, r.Name))
			case r.Fetcher == nil:
				errs = append(errs, fmt.Errorf("configdrift: region %q of source %q has no fetcher", r.Name, s.Source))
			}
			names[r.Name] = true
		}
		if s.Reference != "" && !names[s.Reference] {
			errs = append(errs, fmt.Errorf("configdrift: reference region %q is not a region of source %q", s.Reference, s.Source))
		}
	}
	return errors.Join(errs...)
}

var (
	consistentDesc  = desc(catalog.ConfigConsistent)
	hashDesc        = desc(catalog.ConfigHashInfo)
	driftedDesc     = desc(catalog.ConfigDrifted)
	fetchOKDesc     = desc(catalog.ConfigFetchSuccess)
	fetchErrorsDesc = desc(catalog.ConfigFetchErrors)
)

func desc(m catalog.Metric) *prometheus.Desc {
	return prometheus.NewDesc(m.Name, m.Help, m.Labels, nil)
}

// Scraper implements exporters.Scraper for configuration drift.
type Scraper struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	errors map[[2]string]float64 // fetch errors by source and region
	hashes map[[2]string]string  // last hash by source and region, for logs
}

// New returns a Scraper of cfg's sets.
func New(cfg Config) (*Scraper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scraper{cfg: cfg, log: log, errors: map[[2]string]float64{}, hashes: map[[2]string]string{}}, nil
}

// Name implements exporters.Scraper.
func (s *Scraper) Name() string { return Name }

// Describe implements exporters.Scraper.
func (s *Scraper) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{consistentDesc, hashDesc, driftedDesc, fetchOKDesc, fetchErrorsDesc} {
		ch <- d
	}
}

// result is one region's fetch.
type result struct {
	hash string
	err  error
}

// Scrape implements exporters.Scraper: every region of every set is
// fetched concurrently; a failed fetch fails the scrape (up 0) after the
// metrics of everything else are sent.
func (s *Scraper) Scrape(ctx context.Context, ch chan<- prometheus.Metric) error {
	results := make([][]result, len(s.cfg.Sets))
	var wg sync.WaitGroup
	for i, set := range s.cfg.Sets {
		results[i] = make([]result, len(set.Regions))
		for j, r := range set.Regions {
			wg.Go(func() { results[i][j] = fetch(ctx, r, set.Ignore) })
		}
	}
	wg.Wait()
	var errs []error
	for i, set := range s.cfg.Sets {
		errs = append(errs, s.report(set, results[i], ch)...)
	}
	return errors.Join(errs...)
}

func fetch(ctx context.Context, r Region, ignore []Path) result {
	raw, err := r.Fetcher.Fetch(ctx)
	if err != nil {
		return result{err: err}
	}
	norm, err := Normalize(raw, ignore)
	if err != nil {
		return result{err: err}
	}
	return result{hash: Hash(norm)}
}

// report sends one set's metrics and returns its fetch errors.
func (s *Scraper) report(set Set, res []result, ch chan<- prometheus.Metric) []error {
	var errs []error
	counts := map[string]int{}
	fetched := 0
	s.mu.Lock()
	for j, r := range set.Regions {
		key := [2]string{set.Source, r.Name}
		ok := 1.0
		if err := res[j].err; err != nil {
			ok = 0
			s.errors[key]++
			errs = append(errs, fmt.Errorf("source %s, region %s: %w", set.Source, r.Name, err))
		} else {
			fetched++
			counts[res[j].hash]++
			if prev := s.hashes[key]; prev != res[j].hash {
				if prev != "" {
					s.log.Info("configuration changed", "source", set.Source, "region", r.Name, "from", prev[:hashLabelLen], "to", res[j].hash[:hashLabelLen])
				}
				s.hashes[key] = res[j].hash
			}
		}
		ch <- prometheus.MustNewConstMetric(fetchOKDesc, prometheus.GaugeValue, ok, set.Source, r.Name)
		ch <- prometheus.MustNewConstMetric(fetchErrorsDesc, prometheus.CounterValue, s.errors[key], set.Source, r.Name)
	}
	s.mu.Unlock()

	want, known := expected(set, res, counts)
	for j, r := range set.Regions {
		if res[j].err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(hashDesc, prometheus.GaugeValue, 1, set.Source, r.Name, res[j].hash[:hashLabelLen])
		drifted := 1.0
		if known && res[j].hash == want {
			drifted = 0
		}
		if set.Reference != "" && !known {
			continue // the reference could not be fetched: nothing to compare with
		}
		ch <- prometheus.MustNewConstMetric(driftedDesc, prometheus.GaugeValue, drifted, set.Source, r.Name)
	}
	switch {
	case len(counts) > 1:
		ch <- prometheus.MustNewConstMetric(consistentDesc, prometheus.GaugeValue, 0, set.Source)
	case fetched == len(set.Regions):
		ch <- prometheus.MustNewConstMetric(consistentDesc, prometheus.GaugeValue, 1, set.Source)
	}
	return errs
}

// expected is the hash regions are compared with: the reference region's,
// or the one most regions hold. known is false when the reference could
// not be fetched or no hash is held by more regions than every other (a
// tie: then every region counts as drifted).
func expected(set Set, res []result, counts map[string]int) (string, bool) {
	if set.Reference != "" {
		i := slices.IndexFunc(set.Regions, func(r Region) bool { return r.Name == set.Reference })
		if res[i].err != nil {
			return "", false
		}
		return res[i].hash, true
	}
	best, bestN, tie := "", 0, false
	for h, n := range counts {
		switch {
		case n > bestN:
			best, bestN, tie = h, n, false
		case n == bestN:
			tie = true
		}
	}
	return best, bestN > 0 && !tie
}
