// Package chsink is the log and event pipeline into ClickHouse: structured
// logs (an slog.Handler, or a telemetry.LogSink), OpenTelemetry spans (an
// sdktrace.SpanExporter) and the platform's events (SLA events, SLI minute
// rollups, drill results, load runs) go through one Writer per table, which
// batches them, retries with jittered backoff and keeps what ClickHouse does
// not take in a bounded write-ahead log on local disk, replayed in order.
//
// Migrate creates the schema by server capability (table TTL on 19.6 and
// later; none on the 18.16 of Debian's packages) and records versioned
// migrations; the RetentionJob drops day partitions older than the retention
// on every server. A Cluster option creates Replicated tables with
// Distributed ones over them. The tables are generic (logs, spans, events,
// rollups, runs): the package knows nothing about carpools.
//
// See docs/logs.md for the schema, the write-ahead log's guarantees and the
// numbers measured.
package chsink
