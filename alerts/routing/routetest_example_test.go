package routing_test

import (
	"fmt"
	"strings"

	"github.com/carpoolsla/carpoolsla/alerts/routing"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func ExampleRouteTests() {
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		panic(err)
	}
	for _, c := range routing.RouteTests(s) {
		fmt.Printf("%s → %s\n", c.Name, strings.Join(c.Want, ","))
	}
	// Output:
	// SLOErrorBudgetBurnFast (P0) reaches pagerduty (also when inhibited by RegionDown) → pagerduty
	// SLOErrorBudgetBurnSlow (P2) reaches ticket (also when inhibited by SLOErrorBudgetBurnFast, RegionDown) → ticket
	// SyncLagHigh (P0) reaches pagerduty → pagerduty
	// RegionDown (P0) reaches pagerduty → pagerduty
	// RegionErrorRateHigh (P1) reaches chat (also when inhibited by RegionDown) → chat
	// RPOExposureHigh (P1) reaches chat → chat
	// RegionBreakerOpen (P1) reaches chat (also when inhibited by RegionDown) → chat
	// ScrapeTargetDown (P1) reaches chat → chat
	// RegionHealthLow (P2) reaches ticket (also when inhibited by RegionDown) → ticket
	// CompositeSLABreached (P2) reaches ticket → ticket
	// DrillRTOAboveObjective (P2) reaches ticket → ticket
	// DrillRPOAboveObjective (P2) reaches ticket → ticket
	// DataVerifierMismatch (P2) reaches ticket → ticket
	// SLAEnginePanicMode (P0) reaches pagerduty → pagerduty
	// SLAEngineSignalsStale (P1) reaches chat → chat
	// SLAEngineNotTicking (P1) reaches chat → chat
	// LogPipelineLosingRecords (P1) reaches chat → chat
	// An alert without a tier label falls back to ticket → ticket
	// An unknown tier (P3) falls back to ticket → ticket
	// Tiers are case-sensitive: tier=p0 does not page and falls back to ticket → ticket
	// The tier, not the severity, picks the receiver: P0 with severity=info still reaches pagerduty → pagerduty
	// Labels outside the contract (instance, job, source_region) do not change the route of a P1 alert → chat
}
