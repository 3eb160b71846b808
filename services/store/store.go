// Package store is a region's data store: records keyed by (table, key)
// whose values are JSON documents, versioned by the region's hybrid logical
// clock. Every local write lands in the store and, atomically with it, in
// the region's outbox: a sequence-numbered log of the region's own writes
// that replicators ship to the other regions. A replicated write is applied
// with last-writer-wins on the HLC version (the region name breaks ties),
// so every region converges to the same state whatever the order in which
// writes arrive.
//
// Store is the interface the services and replicators use; Memory is the
// in-process implementation, the default. A real database can stand behind
// the interface later: it needs a table of records, an outbox table written
// in the same transaction, and a per-origin applied offset.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/carpoolsla/carpoolsla/services/hlc"
)

// Record is one row of a region's store. Values handed out by the store
// must not be modified.
type Record struct {
	Table string `json:"table"`
	Key   string `json:"key"`
	// Value is a compact JSON document; empty for a tombstone.
	Value json.RawMessage `json:"value,omitempty"`
	// Version is the HLC timestamp of the write; Version.Region is the
	// origin region.
	Version hlc.Timestamp `json:"version"`
	// Prev is the version the write replaced in its origin region (zero
	// for a new key). Apply uses it to tell a concurrent write (a conflict)
	// from a causal overwrite or a stale delivery.
	Prev hlc.Timestamp `json:"prev,omitzero"`
	// Origin is the region where the write was made.
	Origin string `json:"origin"`
	// Deleted marks a tombstone: the key was deleted. Tombstones are kept
	// so that a delete wins over older writes that arrive later.
	Deleted bool `json:"deleted,omitempty"`
}

// Event is one entry of a region's outbox: a local write and its position.
type Event struct {
	// Seq is the event's position in its origin's outbox, from 1, with no
	// gaps.
	Seq    uint64 `json:"seq"`
	Record Record `json:"record"`
	// Trace carries the W3C trace context (traceparent, tracestate) of the
	// write, so that applying it in another region continues the same
	// trace. Empty when the write was not traced.
	Trace map[string]string `json:"trace,omitempty"`
}

// Outcome says what Apply did with a replicated event.
type Outcome int

// Outcomes of Apply.
const (
	// Won: the event was newer than the target's record and replaced it
	// (or the key was new).
	Won Outcome = iota + 1
	// Lost: the target held a newer record; the event was discarded.
	Lost
	// Duplicate: the event had been applied before (its sequence number is
	// at or below the origin's applied offset, or the target already holds
	// its exact version). Nothing changed and nothing is counted.
	Duplicate
)

// String implements fmt.Stringer.
func (o Outcome) String() string {
	switch o {
	case Won:
		return "won"
	case Lost:
		return "lost"
	case Duplicate:
		return "duplicate"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// ApplyResult is what Apply reports.
type ApplyResult struct {
	Outcome Outcome
	// Conflict is true when the event and the target's record were
	// concurrent writes (neither writer had seen the other's write), so
	// last-writer-wins discarded one of them. A causal overwrite, or a
	// stale delivery of a write that was already superseded, is not a
	// conflict.
	Conflict bool
	// Current is the target's record for the key after the apply.
	Current Record
}

// Store is a region's data store. Implementations are safe for concurrent
// use.
type Store interface {
	// Region is the region the store belongs to.
	Region() string
	// Put writes value (a JSON document) under (table, key) with a new
	// version and appends the write to the outbox, atomically. The trace
	// context of ctx travels with the outbox event.
	Put(ctx context.Context, table, key string, value []byte) (Record, error)
	// Delete writes a tombstone under (table, key), like Put.
	Delete(ctx context.Context, table, key string) (Record, error)
	// Get returns the record of (table, key), tombstones included; ok is
	// false when the key was never written.
	Get(ctx context.Context, table, key string) (rec Record, ok bool, err error)
	// ScanRange returns up to limit records of table with fromKey <= key <
	// toKey in key order, tombstones included; an empty toKey means no
	// upper bound.
	ScanRange(ctx context.Context, table, fromKey, toKey string, limit int) ([]Record, error)
	// Tables lists the tables that hold records, sorted.
	Tables(ctx context.Context) ([]string, error)
	// Apply applies an event replicated from another region with
	// last-writer-wins, and records its sequence number as applied for its
	// origin in the same step.
	Apply(ctx context.Context, ev Event) (ApplyResult, error)
	// AppliedSeq is the highest sequence number of origin's outbox applied
	// here.
	AppliedSeq(ctx context.Context, origin string) (uint64, error)
	// Since returns up to limit outbox events with Seq > offset, in order.
	Since(ctx context.Context, offset uint64, limit int) ([]Event, error)
	// HighWater is the sequence number of the newest outbox event (0 when
	// empty).
	HighWater(ctx context.Context) (uint64, error)
	// Changed returns a channel that is closed at the next outbox append
	// after the call. Take it before reading the outbox, so that no append
	// is missed.
	Changed() <-chan struct{}
}

// Errors of the outbox and of Apply.
var (
	// ErrTruncated: the requested offset is older than the oldest event
	// the outbox still holds.
	ErrTruncated = errors.New("outbox offset truncated")
	// ErrOffsetAhead: the requested offset is beyond the outbox's high
	// water mark (the reader's offset belongs to another incarnation of the
	// store).
	ErrOffsetAhead = errors.New("outbox offset beyond the high-water mark")
	// ErrInvalid: bad input (names the field in the message).
	ErrInvalid = errors.New("invalid input")
)
