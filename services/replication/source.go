package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/carpoolsla/carpoolsla/services/store"
)

// Batch is one read of a source region's outbox.
type Batch struct {
	// Region is the source region.
	Region string `json:"region"`
	// HighWater is the source's outbox high-water mark when the batch was
	// read: the sequence number of its newest event.
	HighWater uint64 `json:"high_water"`
	// Events are the events after the requested offset, in order.
	Events []store.Event `json:"events"`
}

// Source is where a replicator reads a source region's outbox: in process
// (LocalSource) or over HTTP (HTTPSource).
type Source interface {
	// Pull returns up to limit events after offset, with the high-water
	// mark. When none is ready it may wait up to wait for one (a long
	// poll); limit 0 asks only for the high-water mark.
	Pull(ctx context.Context, offset uint64, limit int, wait time.Duration) (Batch, error)
}

// OutboxReader is the part of a region's store a LocalSource and the
// outbox handler read; *store.Memory and every store.Store satisfy it.
type OutboxReader interface {
	Region() string
	Since(ctx context.Context, offset uint64, limit int) ([]store.Event, error)
	HighWater(ctx context.Context) (uint64, error)
	Changed() <-chan struct{}
}

// LocalSource reads an outbox in the same process. It implements Source;
// a long poll waits on the store's change notification, so an idle
// replicator does not spin.
type LocalSource struct {
	r OutboxReader
}

// NewLocalSource returns a Source over r.
func NewLocalSource(r OutboxReader) *LocalSource { return &LocalSource{r: r} }

// Pull implements Source.
func (s *LocalSource) Pull(ctx context.Context, offset uint64, limit int, wait time.Duration) (Batch, error) {
	b, err := s.read(ctx, offset, limit)
	if err != nil || len(b.Events) > 0 || limit == 0 || wait <= 0 {
		return b, err
	}
	// Take the notification before reading again, so that an append
	// between the two reads is not missed.
	changed := s.r.Changed()
	if b, err = s.read(ctx, offset, limit); err != nil || len(b.Events) > 0 {
		return b, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return b, nil
	case <-t.C:
		return b, nil
	case <-changed:
	}
	return s.read(ctx, offset, limit)
}

func (s *LocalSource) read(ctx context.Context, offset uint64, limit int) (Batch, error) {
	evs, err := s.r.Since(ctx, offset, limit)
	if err != nil {
		return Batch{}, err
	}
	// Read after Since, so the mark is never below the events returned.
	hw, err := s.r.HighWater(ctx)
	if err != nil {
		return Batch{}, fmt.Errorf("reading the outbox high-water mark of %s: %w", s.r.Region(), err)
	}
	return Batch{Region: s.r.Region(), HighWater: hw, Events: evs}, nil
}
