package codegen

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/carpoolsla/carpoolsla/alerts"
	"github.com/carpoolsla/carpoolsla/dashboards"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Summary is the one-screen overview of what a spec generates.
type Summary struct {
	Regions        []string
	SLOs           []string
	RecordingRules int
	AlertingRules  int
	AlertsByTier   map[string][]string // tier → distinct alert names
	RulesByTier    map[string]int      // tier → alerting rules
	Dashboards     []dashboards.Info
	Files          int
}

// Summarize describes what s generates; files is Generate's result.
func Summarize(s *spec.Spec, files map[string][]byte) (Summary, error) {
	sum := Summary{AlertsByTier: map[string][]string{}, RulesByTier: map[string]int{}, Files: len(files)}
	for _, r := range s.Regions {
		sum.Regions = append(sum.Regions, r.Name+" ("+r.City+")")
	}
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			d := fmt.Sprintf("%-10s %-13s %-12s %7s%% over %s", svc.Name, slo.Name, slo.Kind, fmt.Sprint(slo.Objective), slo.Window)
			if slo.Kind == spec.KindLatency {
				d += " under " + slo.Threshold.String()
			}
			if slo.Key {
				d += "  [key]"
			}
			sum.SLOs = append(sum.SLOs, d)
		}
	}
	set, err := alerts.Build(s)
	if err != nil {
		return sum, err
	}
	seen := map[string]bool{}
	for _, g := range set.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				sum.RecordingRules++
				continue
			}
			sum.AlertingRules++
			tier := r.Labels[catalog.AlertLabelTier]
			sum.RulesByTier[tier]++
			if !seen[r.Alert] {
				seen[r.Alert] = true
				sum.AlertsByTier[tier] = append(sum.AlertsByTier[tier], r.Alert)
			}
		}
	}
	sum.Dashboards, err = dashboards.Describe(s)
	return sum, err
}

// Print writes the summary for a terminal.
func (sum Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "Regions: %s\n\nSLOs (%d):\n", strings.Join(sum.Regions, ", "), len(sum.SLOs))
	for _, s := range sum.SLOs {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintf(w, "\nRules: %d recording, %d alerting\n", sum.RecordingRules, sum.AlertingRules)
	tiers := make([]string, 0, len(sum.AlertsByTier))
	for t := range sum.AlertsByTier {
		tiers = append(tiers, t)
	}
	sort.Strings(tiers)
	for _, t := range tiers {
		fmt.Fprintf(w, "  %s → %-9s %2d rules: %s\n", t, catalog.Tier(t).Receiver(), sum.RulesByTier[t], strings.Join(sum.AlertsByTier[t], ", "))
	}
	panels := 0
	for _, d := range sum.Dashboards {
		panels += d.Panels
	}
	fmt.Fprintf(w, "\nDashboards: %d, %d panels\n", len(sum.Dashboards), panels)
	for _, d := range sum.Dashboards {
		fmt.Fprintf(w, "  %-28s uid %-22s %3d panels\n", d.Title, d.UID, d.Panels)
	}
}
