// Package order is the order service of one region, with dispatch: it
// creates rides (priced by pricing, numbered by the id generator), runs
// each ride's lifecycle on a per-ride actor, matches drivers from the
// location index with a bounded worker pool, and charges on completion,
// compensating a failed payment.
//
// Service.Handler serves the HTTP API (POST /v1/rides, GET /v1/rides/{id},
// POST /v1/rides/{id}/start|complete|cancel, /healthz); Service.Run runs
// the dispatch workers. The services it calls are small interfaces
// declared in deps.go; MemStore and MemClaims are in-process defaults.
// Every request and dependency call is measured with the catalog's
// metrics and traced with OpenTelemetry. docs/services/order.md describes
// the behaviour, the configuration and the measured overhead.
package order
