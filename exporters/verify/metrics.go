package verify

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Name is the exporter's name, the exporter label of its own health.
const Name = "verify"

// The verifier's metrics are built from the catalog at scrape time from
// its running counts (a few series per table: client_golang's const
// metrics are the simplest fit; see docs/exporters/verify.md).
var (
	mismatchedDesc       = desc(catalog.VerifyRowsMismatched)
	rowsVerifiedDesc     = desc(catalog.VerifyRowsVerified)
	chunksDesc           = desc(catalog.VerifyChunks)
	chunksMismatchedDesc = desc(catalog.VerifyChunksMismatched)
	inFlightDesc         = desc(catalog.VerifyRowsInFlight)
	unsettledDesc        = desc(catalog.VerifyRowsUnsettled)
	openDesc             = desc(catalog.VerifyMismatchesOpen)
	runsDesc             = desc(catalog.VerifyRuns)
	runDurationDesc      = desc(catalog.VerifyRunDuration)
	lastSuccessDesc      = desc(catalog.VerifyLastSuccess)
)

func desc(m catalog.Metric) *prometheus.Desc {
	return prometheus.NewDesc(m.Name, m.Help, m.Labels, nil)
}

// Verifier implements exporters.Scraper.
var _ exporters.Scraper = (*Verifier)(nil)

// Name implements exporters.Scraper.
func (v *Verifier) Name() string { return Name }

// Describe implements exporters.Scraper.
func (v *Verifier) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mismatchedDesc, rowsVerifiedDesc, chunksDesc, chunksMismatchedDesc,
		inFlightDesc, unsettledDesc, openDesc, runsDesc, runDurationDesc, lastSuccessDesc} {
		ch <- d
	}
}

// Scrape implements exporters.Scraper: the counts of the runs so far. It
// reads no backend (runs do, on their own timer); it fails, so that the
// exporter shows up 0, while the last run failed.
func (v *Verifier) Scrape(_ context.Context, ch chan<- prometheus.Metric) error {
	src, tgt := v.cfg.SourceRegion, v.cfg.TargetRegion
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, t := range v.cfg.Tables {
		s := v.stats[t.Name]
		counter := func(d *prometheus.Desc, val float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, val, t.Name, src, tgt)
		}
		counter(rowsVerifiedDesc, s.rows)
		counter(chunksDesc, s.chunks)
		counter(chunksMismatchedDesc, s.chunksMismatched)
		counter(inFlightDesc, s.inFlight)
		counter(unsettledDesc, s.unsettled)
		open := map[Kind]float64{}
		for _, m := range v.open[t.Name] {
			open[m.Kind]++
		}
		for _, k := range Kinds {
			ch <- prometheus.MustNewConstMetric(mismatchedDesc, prometheus.CounterValue, s.mismatched[k], t.Name, src, tgt, string(k))
			ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, open[k], t.Name, src, tgt, string(k))
		}
	}
	ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.CounterValue, v.runs.ok, src, tgt, catalog.OutcomeOK)
	ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.CounterValue, v.runs.failed, src, tgt, catalog.OutcomeError)
	if v.runs.ok+v.runs.failed > 0 {
		ch <- prometheus.MustNewConstMetric(runDurationDesc, prometheus.GaugeValue, v.runs.duration.Seconds(), src, tgt)
	}
	if !v.runs.lastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue,
			float64(v.runs.lastSuccess.UnixNano())/1e9, src, tgt)
	}
	if v.runs.lastErr != nil {
		return v.runs.lastErr
	}
	return nil
}
