package alerts

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// RunbooksDir is where runbooks go, relative to the repository root.
const RunbooksDir = "docs/runbooks"

// guidance is the human part of each runbook: what usually causes the
// alert and what to do first. The generator adds the rule, tier, receiver
// and links from the spec.
var guidance = map[string]struct{ Meaning, Causes, Steps string }{
	catalog.AlertBurnFast.Name: {
		Meaning: "The SLO's error budget is being spent fast enough to be gone in days: at 14.4× burn a 30-day budget lasts about 2 days, at 6× about 5 days.",
		Causes:  "a bad deploy in the region; a dependency (pricing over gRPC, payment provider, the region's store) failing; a latency regression for a latency SLO; a traffic shift onto a region that cannot take it.",
		Steps:   "1. Open the dashboard link: which operations and codes carry the errors?\n2. If a deploy went out in the last hour, roll it back.\n3. If one region is the problem and the breaker has not opened yet, consider shifting its traffic (the breaker's dry-run report shows what the engine would do).\n4. Keep the incident open until the 5m window is clean; the page resolves by itself once the short window recovers.",
	},
	catalog.AlertBurnSlow.Name: {
		Meaning: "The SLO is spending its budget faster than it can sustain over its window, but slowly enough for a ticket rather than a page.",
		Causes:  "a steady trickle of errors: a flaky dependency, a slow query, a small share of requests on a bad code path.",
		Steps:   "1. Look at error budget remaining on the SLA overview.\n2. Find the operations and codes with errors on the RED dashboard.\n3. File the fix; if the budget runs out first, freeze risky changes for the service.",
	},
	catalog.AlertSyncLag.Name: {
		Meaning: "Writes from the source region reach the target region later than the P0 threshold (5 s by default). A failover now would lose at least that window of writes.",
		Causes:  "replication stopped or slowed (apply thread stopped, conflict storm, network between regions); the target region's store overloaded; a large transaction being applied.",
		Steps:   "1. Check carpool_replication_backlog_events and carpool_rpo_exposure_seconds for the pair on the DR dashboard.\n2. Check the replication applier's logs in the target region.\n3. If lag keeps growing, do not fail over onto the lagging target; fix replication first (resume from the last offset).",
	},
	catalog.AlertRegionDown.Name: {
		Meaning: "No other region's probe sees this region healthy. Gateways route around it; its per-service alerts are inhibited so that only this one pages.",
		Causes:  "the region's gateway or network is down; a data-centre outage; a bad configuration push.",
		Steps:   "1. Confirm on the DR dashboard that probes from every region fail.\n2. Check that traffic has shifted (carpool_route_weight of the region at the minimum, breaker open).\n3. Check RPO exposure from the region: writes not yet replicated may be lost.\n4. Work the region's own incident; bring it back through the breaker's ramp.",
	},
	catalog.AlertErrorRate.Name: {
		Meaning: "A region's server-side error rate over all services is above the P1 threshold (3 % by default) for the configured time.",
		Causes:  "a failing dependency in the region; a bad deploy; overload after a traffic shift.",
		Steps:   "1. Open the RED dashboard for the region: which service and operation fail?\n2. Check whether the breaker is about to trip (P99 and health on the overview).\n3. Roll back or shift traffic if it keeps rising.",
	},
	catalog.AlertRPO.Name: {
		Meaning: "The oldest write committed in the source region and not yet applied in the target is older than the pair's RPO objective: losing the source now would lose more than the objective allows.",
		Causes:  "replication stall or slowdown between the pair; an outbox that stopped publishing.",
		Steps:   "1. Compare with SyncLagHigh and the replication backlog for the pair.\n2. Restart or resume the replication applier from its last offset.\n3. Until it recovers, avoid planned failovers away from the source.",
	},
	catalog.AlertBreakerOpen.Name: {
		Meaning: "The SLA engine opened the region's circuit breaker and shifted its traffic to the other regions.",
		Causes:  "the trip rule held: P99 above the trip bar or health below its bar for the trip duration.",
		Steps:   "1. Read the engine's decision event (reason, inputs) in the SLA report API.\n2. Fix the region; the breaker recovers only after the lower bar holds, then ramps traffic back in steps.\n3. Repeated trips hold the breaker open longer each time, up to the cap.",
	},
	catalog.AlertEnginePanic.Name: {
		Meaning: "More regions met the trip rule than the breaker budget (maxBrokenFraction, never the last serving region) allows, so the engine keeps every region serving and reports panic mode. Users are being served by bad regions.",
		Causes:  "a shared dependency failing everywhere; a bad deploy rolled to every region; a trip bar set too tight for normal load.",
		Steps:   "1. Open the status page or GET /api/v1/status: which regions want to trip and why (carpool_breaker_trip_denied).\n2. Look for the common cause across regions (deploys, shared databases, the network).\n3. Do not raise maxBrokenFraction to escape panic mode: breaking most regions overloads the rest.",
	},
	catalog.AlertSignalsStale.Name: {
		Meaning: "The engine has read no fresh signal for the region for longer than engine.staleAfter. It never trips a breaker on missing data, so it keeps the region's last decision without evidence.",
		Causes:  "the region's scrape targets are down (see ScrapeTargetDown); the metric store is behind or failing queries; the recording rules stopped evaluating.",
		Steps:   "1. Check the region's targets in the store (up{region=...}).\n2. Check carpool_engine_query_errors_total and the store's rule-evaluation failures.\n3. Until signals return, steer the region by hand through the gateways' PUT /admin/routing if needed.",
	},
	catalog.AlertEngineStalled.Name: {
		Meaning: "carpool_sla_engine_ticks_total{outcome=\"ok\"} has not grown for the alert's window: the engine loop is stuck or failing every tick, so breakers and route weights are frozen at their last values.",
		Causes:  "every read from the metric store fails or times out; a deadlock or a crash loop in the engine process.",
		Steps:   "1. Read the engine's logs and carpool_sla_engine_ticks_total{outcome}.\n2. Check the metric store it reads (embedded: its /-/ready; external: the Prometheus URL).\n3. Restart the engine: route tables carry growing versions, so the gateways accept its next push.",
	},
	catalog.AlertLogLoss.Name: {
		Meaning: "The log and event pipeline to ClickHouse dropped records because its write-ahead log on disk reached its bound while ClickHouse was unreachable or too slow.",
		Causes:  "ClickHouse down for longer than the WAL can cover; a full disk; inserts slower than the log rate.",
		Steps:   "1. Check ClickHouse (carpool_chsink_insert_failures_total, its /ping and error log).\n2. Check carpool_chsink_wal_bytes against carpool_chsink_wal_limit_bytes and the disk.\n3. Raise the WAL bound or the batch size once ClickHouse is back; the loss count is final.",
	},
	catalog.AlertTargetDown.Name: {
		Meaning: "Prometheus cannot scrape a carpool target or exporter. Whatever it measures is missing from the SLA; the engine holds its last decision until the data is stale, then alerts.",
		Causes:  "the process is down or restarting; a network or TLS problem; a wrong address after a deploy.",
		Steps:   "1. Open the target's /metrics by hand.\n2. Check the process and its logs.\n3. Prometheus's targets page shows the last scrape error.",
	},
	catalog.AlertHealthLow.Name: {
		Meaning: "A region's health score (sync lag, API success, stream consistency, config consistency, weighted) is below its floor.",
		Causes:  "one component collapsed: look at carpool_sla_health_component_score to see which.",
		Steps:   "1. Open the SLA overview's health components for the region.\n2. Follow the runbook of the failing component's own alert (SyncLagHigh, RegionErrorRateHigh, …).",
	},
	catalog.AlertCompositeBreached.Name: {
		Meaning: "The composite SLA (weighted sum of service attainments over their windows) is below its objective, or a key SLO is below its own objective, which fails the composite whatever the weights say.",
		Causes:  "a sustained breach of one or more SLOs over their rolling windows.",
		Steps:   "1. Open the SLA overview: which service's attainment or which key SLO fell?\n2. This is a contractual signal: tell the service owners and check SLA credits in the report API.",
	},
	catalog.AlertDrillRTO.Name: {
		Meaning: "The last drill of a scenario took longer to recover than its RTO objective (from the fault to the first ride served elsewhere for the failed region's riders).",
		Causes:  "slow detection (probe thresholds), slow decision (breaker trip duration), or slow traffic shift.",
		Steps:   "1. Read the drill report's phases: detect, decide, shift.\n2. Tune the slowest phase's settings in the spec and re-run the drill.",
	},
	catalog.AlertDrillRPO.Name: {
		Meaning: "The last drill of a scenario lost a longer window of acknowledged writes than its RPO objective.",
		Causes:  "replication lag at the moment of the fault; writes acknowledged before they were replicated.",
		Steps:   "1. Read the drill report: lag at the fault and the missing writes.\n2. Reduce replication lag or make the write path wait for replication for the affected data.",
	},
	catalog.AlertVerifier.Name: {
		Meaning: "The data verifier found rows that are missing, extra or different in the target region compared with the source, after the replication lag had passed.",
		Causes:  "a lost or misapplied replication event; a write that bypassed the outbox; a conflict resolved the wrong way.",
		Steps:   "1. Read the verifier's report: the rows and the statements that would repair them.\n2. If auto-repair is on, check it ran; otherwise review and apply the repairs.\n3. Find the cause before the next run finds more.",
	},
}

// Runbooks generates one Markdown runbook per generated alert, keyed by
// path relative to the repository root.
func Runbooks(s *spec.Spec) (map[string][]byte, error) {
	set, err := Build(s)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	var index bytes.Buffer
	fmt.Fprintf(&index, "<!-- Generated by `carpoolsla generate` from %s. Do not edit. -->\n# Runbooks\n\n| alert | tier | receiver | summary |\n|---|---|---|---|\n", s.File)
	for _, a := range catalog.Alerts() {
		g, ok := guidance[a.Name]
		if !ok {
			return nil, fmt.Errorf("alert %s has no runbook guidance; add it to alerts/runbooks.go", a.Name)
		}
		var rules []alertRule
		for _, r := range set.alertRules {
			if r.Alert.Name == a.Name {
				rules = append(rules, r)
			}
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "<!-- Generated by `carpoolsla generate` from %s. Do not edit: the guidance lives in alerts/runbooks.go. -->\n", s.File)
		fmt.Fprintf(&b, "# %s\n\n%s\n\n", a.Name, a.Summary)
		fmt.Fprintf(&b, "- **Tier:** %s (severity `%s`), routed to the `%s` receiver.\n", a.Tier, a.Tier.Severity(), a.Tier.Receiver())
		fmt.Fprintf(&b, "- **Team:** %s\n- **Rules:** %d generated in `deploy/generated/%s`.\n\n", s.Metadata.Team, len(rules), RulesFile)
		fmt.Fprintf(&b, "## What it means\n\n%s\n\n## Likely causes\n\n%s\n\n## First steps\n\n%s\n\n", g.Meaning, capitalize(g.Causes), g.Steps)
		if len(rules) > 0 {
			b.WriteString("## Rules\n\n")
			for _, r := range rules {
				what := ""
				if svc, slo := r.Rule.Labels[catalog.LabelService], r.Rule.Labels[catalog.LabelSLO]; svc != "" && slo != "" && r.Alert.Service == "" {
					what = fmt.Sprintf(" (%s/%s)", svc, slo)
				}
				fmt.Fprintf(&b, "### %s%s\n\n```promql\n%s\n```\n\n", r.Rule.Alert, what, r.Rule.Expr)
				if r.Rule.For > 0 {
					fmt.Fprintf(&b, "Fires after the condition holds for %s.\n\n", r.Rule.For)
				}
			}
		}
		fmt.Fprintf(&b, "## Dashboards\n\n- SLA overview: %s\n- Service RED: %s\n- DR and sync: %s\n", DashboardURL(s, DashOverview), DashboardURL(s, DashRED), DashboardURL(s, DashDR))
		out[RunbooksDir+"/"+a.Name+".md"] = b.Bytes()
		fmt.Fprintf(&index, "| [%s](%s.md) | %s | %s | %s |\n", a.Name, a.Name, a.Tier, a.Tier.Receiver(), a.Summary)
	}
	out[RunbooksDir+"/README.md"] = index.Bytes()
	return out, nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
