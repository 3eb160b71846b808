package replication

import (
	"context"
	"sync"
)

// OffsetStore remembers, per region pair, the sequence number of the last
// source event applied in the target: where a replicator resumes after a
// stall or a restart (the seed's breakpoint resume).
type OffsetStore interface {
	LoadOffset(ctx context.Context, source, target string) (uint64, error)
	SaveOffset(ctx context.Context, source, target string, offset uint64) error
}

// MemOffsets is an in-memory OffsetStore, the default. It outlives the
// replicators that share it (a replicator rebuilt in the same process
// resumes), not the process.
type MemOffsets struct {
	mu sync.Mutex
	m  map[[2]string]uint64
}

// NewMemOffsets returns an empty MemOffsets.
func NewMemOffsets() *MemOffsets { return &MemOffsets{m: map[[2]string]uint64{}} }

// LoadOffset implements OffsetStore; an unknown pair starts at 0.
func (o *MemOffsets) LoadOffset(_ context.Context, source, target string) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[[2]string{source, target}], nil
}

// SaveOffset implements OffsetStore.
func (o *MemOffsets) SaveOffset(_ context.Context, source, target string, offset uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[[2]string{source, target}] = offset
	return nil
}

// AppliedSeqer reports the highest sequence number of an origin's outbox a
// store has applied; every store.Store satisfies it.
type AppliedSeqer interface {
	AppliedSeq(ctx context.Context, origin string) (uint64, error)
}

// StoreOffsets is an OffsetStore kept by the target store itself: the
// store records each event's sequence number in the same step that applies
// it, so the offset can never disagree with the data (the crash-safe
// replica design). SaveOffset is a no-op. Use it when the target store
// outlives the process (a real database) and the offsets should too.
type StoreOffsets struct {
	Target AppliedSeqer
}

// LoadOffset implements OffsetStore.
func (o StoreOffsets) LoadOffset(ctx context.Context, source, _ string) (uint64, error) {
	return o.Target.AppliedSeq(ctx, source)
}

// SaveOffset implements OffsetStore; the store saved it while applying.
func (o StoreOffsets) SaveOffset(context.Context, string, string, uint64) error { return nil }
