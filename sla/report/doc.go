// Package report is the SLA report API and the status page.
//
// The API (an http.Handler, described by the OpenAPI 3 document it serves at
// /api/v1/openapi.json) answers SLA reports over a calendar month or any
// window: attainment per SLO, error budget used, downtime minutes, incidents
// (breaker-open intervals), RPO/RTO compliance from drills, the composite
// with its key-SLO veto, and the SLA credit from the spec's table, as JSON or
// CSV. The past comes from a History (ClickHouse through the chstore
// package), the present from a Live source (the SLA engine). POST
// /api/v1/faults forwards fault injection to a region through Faults.
//
// The status page at / (HTML, script and style sheet embedded, no external
// fetch) shows live region health, breaker states and route weights, the
// month-to-date SLA table, 24 h charts and a fault form, refreshing itself
// from the JSON API.
//
// Writes always need a bearer token from the token file; reads need one when
// Config.ReadAuth is set or the client is not on loopback. docs/report-api.md
// defines every figure.
package report
