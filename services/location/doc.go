// Package location is the carpool location service: drivers stream their
// positions over WebSocket (GET /v1/drivers/stream), the service publishes
// them onto a bounded stream (Redis Streams when a Redis address is given,
// an in-process stream by default), and a consumer group feeds the dispatch
// Index, which answers Nearby and matches each driver to one ride at a time
// (Claim, Release).
//
// The pieces, each usable alone:
//   - Server: the WebSocket endpoint; validates positions, answers bad ones
//     with a JSON error, closes misbehaving and slow connections with
//     documented codes, and queues good positions in a bounded queue that
//     never blocks a connection.
//   - Stream, with MemStream and RedisStream: consumer-group semantics
//     (offsets per group, ack, redelivery of unacknowledged messages after a
//     claim timeout) and Lag for the stream-lag exporter.
//   - Consumer: the consumer-group loop (Run) that honours the fault
//     injector's consumer pause and carries each position's W3C trace
//     context into its consume span.
//   - Index: a grid of cells with a TTL on positions.
//   - Client: a driver-side client that reconnects with jittered
//     exponential backoff (the load generator uses it).
//
// Service wires them for one region. docs/services/location.md describes
// the protocol, configuration, metrics and measured numbers.
package location
