// Package enginetest holds the SLA engine's end-to-end proof and its tick
// benchmark. The end-to-end test runs three real regions of carpool
// services (services/region), a metric store scraping them with the rules
// generated from the spec (the embedded store, and a real Prometheus 2.42),
// and the engine reading through sla/engine/signals and pushing through
// sla/engine/actuate to the regions' gateways; it injects latency into one
// region and watches that region's breaker open and its traffic come back
// step by step. Being a test-only package, it may import services/ without
// giving sla/ a dependency on them.
package enginetest
