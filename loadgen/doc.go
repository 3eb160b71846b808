// Package loadgen is the platform's open-model load generator.
//
// A Schedule (a constant arrival rate, or stages ramping linearly between
// rates, as k6's ramping-arrival-rate) says when each iteration starts. The
// Executor starts them at those times whatever the responses do, on a
// bounded pool of workers (preallocated, grown on demand up to a maximum):
// an iteration that finds no free worker at its time is dropped and counted,
// never queued. Every request's latency is measured from its intended start,
// so a stalled server shows in the percentiles instead of slowing the load
// down (no coordinated omission).
//
// Results go to mergeable HDR histograms (Histogram) and a Summary (text
// or JSON) with the achieved rate next to the target, percentiles, errors by
// kind and dropped iterations; k6-style Thresholds decide whether a run
// passed. Client-side metrics (sla/catalog's carpool_loadgen_*) are kept in
// a VictoriaMetrics/metrics set and pushed to a Prometheus-compatible import
// endpoint by a Pusher; finished runs go to a RunRecorder.
//
// The carpool scenarios (ride, drivers, quote, http) live in
// loadgen/scenario.
package loadgen
