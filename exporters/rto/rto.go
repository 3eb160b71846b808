package rto

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// Name is the exporter label value of the RTO exporter.
const Name = "rto"

// Scraper implements exporters.Scraper over both RTO inputs, so that one
// frame Collector (one set of carpool_exporter_* series, exporter="rto")
// serves them: the drill results (never failing) and the synthetic probe
// (failing while its loop is not running). Either may be nil.
type Scraper struct {
	Synthetic *Synthetic
	Drills    *Drills
}

// Name implements exporters.Scraper.
func (s Scraper) Name() string { return Name }

// Describe implements exporters.Scraper.
func (s Scraper) Describe(ch chan<- *prometheus.Desc) {
	if s.Drills != nil {
		s.Drills.Describe(ch)
	}
	if s.Synthetic != nil {
		s.Synthetic.Describe(ch)
	}
}

// Scrape implements exporters.Scraper.
func (s Scraper) Scrape(ctx context.Context, ch chan<- prometheus.Metric) error {
	if s.Drills != nil {
		_ = s.Drills.Scrape(ctx, ch) // never fails
	}
	if s.Synthetic != nil {
		return s.Synthetic.Scrape(ctx, ch)
	}
	return nil
}
