package repair

import (
	"context"
	"errors"
	"fmt"

	"github.com/carpoolsla/carpoolsla/exporters/verify"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// OutboxSource is a region store's outbox, the source of a StoreSync;
// every store.Store satisfies it.
type OutboxSource interface {
	Region() string
	Since(ctx context.Context, offset uint64, limit int) ([]store.Event, error)
}

// ApplyTarget is a region store that applies replicated events and records
// each origin's applied offset in the same step; every store.Store
// satisfies it.
type ApplyTarget interface {
	Region() string
	Get(ctx context.Context, table, key string) (store.Record, bool, error)
	Apply(ctx context.Context, ev store.Event) (store.ApplyResult, error)
	AppliedSeq(ctx context.Context, origin string) (uint64, error)
}

// StoreSync is the Task of a replication link between two region stores:
// its offset is the source's sequence number the target recorded as
// applied (store.AppliedSeq), and resuming it re-applies the source's
// outbox events after it — the missing rows come back from the source,
// with last-writer-wins deciding as replication would. It is what repairs a
// link whose replicator stalled or died; running beside a live replicator
// it is harmless (an event applied twice is a duplicate).
type StoreSync struct {
	src OutboxSource
	tgt ApplyTarget
}

// StoreSync implements Task.
var _ Task = (*StoreSync)(nil)

// NewStoreSync returns the sync task from src's outbox into tgt.
func NewStoreSync(src OutboxSource, tgt ApplyTarget) (*StoreSync, error) {
	if src == nil || tgt == nil {
		return nil, errors.New("store sync: source and target stores are required")
	}
	if src.Region() == tgt.Region() {
		return nil, fmt.Errorf("store sync: source and target are both region %q", src.Region())
	}
	return &StoreSync{src: src, tgt: tgt}, nil
}

// Name implements Task.
func (s *StoreSync) Name() string { return "replication " + s.src.Region() + ">" + s.tgt.Region() }

// Offset implements Task.
func (s *StoreSync) Offset(ctx context.Context) (uint64, error) {
	off, err := s.tgt.AppliedSeq(ctx, s.src.Region())
	if err != nil {
		return 0, fmt.Errorf("reading the applied offset of %s in %s: %w", s.src.Region(), s.tgt.Region(), err)
	}
	return off, nil
}

// Resume implements Task. store.ErrTruncated (the source no longer holds
// the events after offset) is an error: only a full copy, or the verifier
// and its mismatch repairs, can close that gap.
func (s *StoreSync) Resume(ctx context.Context, offset uint64, max int) ([]Change, error) {
	evs, err := s.src.Since(ctx, offset, max)
	if err != nil {
		return nil, fmt.Errorf("reading %s's outbox after %d: %w", s.src.Region(), offset, err)
	}
	out := make([]Change, 0, len(evs))
	for _, ev := range evs {
		rec := ev.Record
		c := Change{Offset: ev.Seq, Table: rec.Table, Key: rec.Key}
		before, ok, err := s.tgt.Get(ctx, rec.Table, rec.Key)
		if err != nil {
			c.Err = fmt.Errorf("reading %s/%s in %s: %w", rec.Table, rec.Key, s.tgt.Region(), err)
			return append(out, c), nil
		}
		if ok {
			c.Before = recordRow(before)
		}
		res, err := s.tgt.Apply(ctx, ev)
		if err != nil {
			c.Err = fmt.Errorf("applying event %d of %s: %w", ev.Seq, s.src.Region(), err)
			return append(out, c), nil
		}
		c.After = recordRow(res.Current)
		out = append(out, c)
	}
	return out, nil
}

// recordRow is a record as a verify.Row (the store backend's one column);
// nil for a tombstone or no record.
func recordRow(r store.Record) verify.Row {
	if r.Deleted || r.Key == "" {
		return nil
	}
	v := string(r.Value)
	return verify.Row{&v}
}
