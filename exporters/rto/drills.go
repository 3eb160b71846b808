// Package rto exports the inputs of recovery-time and data-loss
// objectives:
//
//   - a synthetic business probe (Synthetic): every second, per region, a
//     ride is created and cancelled through the region's API, and its
//     success, duration and failures are exported: when a region stops
//     taking rides, and when it takes them again, is the RTO a rider sees;
//   - the drill results (Drills): a drill runner records each scenario's
//     RTO by phase (detect, decide, shift, total) and its RPO, and the last
//     result per scenario is exported.
package rto

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Phases of a drill's recovery, the phase label of carpool_drill_rto_seconds.
const (
	PhaseDetect = "detect" // the fault to its detection (a probe, an alert)
	PhaseDecide = "decide" // detection to the decision (the breaker opens)
	PhaseShift  = "shift"  // the decision to traffic served elsewhere
	PhaseTotal  = "total"  // the fault to recovery, measured end to end
)

// DrillsName is the exporter label value of the drill results.
const DrillsName = "drills"

var (
	drillRTODesc  = desc(catalog.DrillRTO)
	drillRPODesc  = desc(catalog.DrillRPO)
	drillTimeDesc = desc(catalog.DrillTimestamp)
)

func desc(m catalog.Metric) *prometheus.Desc {
	return prometheus.NewDesc(m.Name, m.Help, m.Labels, nil)
}

// drill is the last result of one scenario.
type drill struct {
	phases map[string]time.Duration
	rpo    time.Duration
	at     time.Time
}

// Drills holds the last result of each drill scenario and implements
// exporters.Scraper over them. The zero value is ready to use (with
// time.Now); it is safe for concurrent use.
type Drills struct {
	// Now stamps each recorded result; default time.Now.
	Now func() time.Time

	mu   sync.Mutex
	last map[string]drill
}

// Record stores a drill's result, replacing the scenario's previous one:
// its RTO by phase (PhaseDetect, PhaseDecide, PhaseShift, PhaseTotal; a
// phase not measured is left out) and its RPO. An empty scenario or a
// negative duration is refused.
func (d *Drills) Record(scenario string, phases map[string]time.Duration, rpo time.Duration) error {
	if scenario == "" {
		return errors.New("recording a drill: the scenario is empty")
	}
	if rpo < 0 {
		return fmt.Errorf("recording drill %s: rpo %s is negative", scenario, rpo)
	}
	for p, v := range phases {
		if p == "" {
			return fmt.Errorf("recording drill %s: a phase without a name", scenario)
		}
		if v < 0 {
			return fmt.Errorf("recording drill %s: phase %s is %s, negative", scenario, p, v)
		}
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		d.last = map[string]drill{}
	}
	d.last[scenario] = drill{phases: maps.Clone(phases), rpo: rpo, at: now()}
	return nil
}

// Name implements exporters.Scraper.
func (d *Drills) Name() string { return DrillsName }

// Describe implements exporters.Scraper.
func (d *Drills) Describe(ch chan<- *prometheus.Desc) {
	ch <- drillRTODesc
	ch <- drillRPODesc
	ch <- drillTimeDesc
}

// Scrape implements exporters.Scraper: the last result of every scenario
// recorded so far. It never fails.
func (d *Drills) Scrape(_ context.Context, ch chan<- prometheus.Metric) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range slices.Sorted(maps.Keys(d.last)) {
		r := d.last[s]
		for _, p := range slices.Sorted(maps.Keys(r.phases)) {
			ch <- prometheus.MustNewConstMetric(drillRTODesc, prometheus.GaugeValue, r.phases[p].Seconds(), s, p)
		}
		ch <- prometheus.MustNewConstMetric(drillRPODesc, prometheus.GaugeValue, r.rpo.Seconds(), s)
		ch <- prometheus.MustNewConstMetric(drillTimeDesc, prometheus.GaugeValue, float64(r.at.UnixNano())/1e9, s)
	}
	return nil
}
