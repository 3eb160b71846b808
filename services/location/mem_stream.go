package location

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// MemStreamConfig configures a MemStream.
type MemStreamConfig struct {
	// Name is the stream's name; default "positions".
	Name string
	// MaxLen is the ring's size in entries; publishing past it overwrites
	// the oldest entry whatever the groups have read. Default DefaultMaxLen.
	MaxLen int
	// ClaimAfter is how long a delivered message may stay unacknowledged
	// before Read hands it to another consumer. Default DefaultClaimAfter.
	ClaimAfter time.Duration
	// Now is the clock of claim timeouts and entry times; default time.Now.
	Now func() time.Time
}

func (c *MemStreamConfig) defaults() {
	if c.Name == "" {
		c.Name = "positions"
	}
	if c.MaxLen == 0 {
		c.MaxLen = DefaultMaxLen
	}
	if c.ClaimAfter == 0 {
		c.ClaimAfter = DefaultClaimAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks the configuration after defaults are applied.
func (c MemStreamConfig) Validate() error {
	if c.MaxLen < 1 {
		return fmt.Errorf("memory stream max length is %d; it must be at least 1", c.MaxLen)
	}
	if c.ClaimAfter < 0 {
		return fmt.Errorf("memory stream claim timeout is %s; it must not be negative", c.ClaimAfter)
	}
	return nil
}

// MemStream is the in-process Stream: a bounded ring of entries with
// consumer groups that have Redis Streams semantics (per-group offsets, a
// pending list per group, acknowledgement, redelivery of messages left
// unacknowledged past ClaimAfter). Publish never blocks: a full ring
// overwrites its oldest entry, and a group behind it skips ahead, as
// XADD MAXLEN does. Safe for concurrent use.
type MemStream struct {
	cfg MemStreamConfig

	mu      sync.Mutex
	ring    []memEntry
	head    uint64 // sequence number of the oldest retained entry
	next    uint64 // sequence number the next entry gets; [head, next) is retained
	groups  map[string]*memGroup
	notify  chan struct{} // closed when an entry is appended while waiters > 0
	waiters int
	closed  bool
}

type memEntry struct {
	pos   Position
	added time.Time
}

type memGroup struct {
	delivered uint64 // the next sequence number to deliver as new
	pending   map[uint64]*memPending
	order     []uint64 // pending sequence numbers, ascending, with acknowledged ones left until compaction
}

type memPending struct {
	consumer string
	at       time.Time // last delivery
}

// NewMemStream returns an empty in-process stream.
func NewMemStream(cfg MemStreamConfig) (*MemStream, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &MemStream{
		cfg:    cfg,
		ring:   make([]memEntry, cfg.MaxLen),
		head:   1,
		next:   1,
		groups: make(map[string]*memGroup),
		notify: make(chan struct{}),
	}, nil
}

// Name implements Stream.
func (s *MemStream) Name() string { return s.cfg.Name }

// Publish implements Stream. It never blocks.
func (s *MemStream) Publish(_ context.Context, p Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStreamClosed
	}
	s.appendLocked(p, s.cfg.Now())
	s.wakeLocked()
	return nil
}

// PublishBatch appends several positions under one lock.
func (s *MemStream) PublishBatch(_ context.Context, ps []Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStreamClosed
	}
	now := s.cfg.Now()
	for _, p := range ps {
		s.appendLocked(p, now)
	}
	s.wakeLocked()
	return nil
}

func (s *MemStream) appendLocked(p Position, now time.Time) {
	s.ring[s.next%uint64(len(s.ring))] = memEntry{pos: p, added: now}
	s.next++
	if s.next-s.head > uint64(len(s.ring)) {
		s.head = s.next - uint64(len(s.ring))
	}
}

func (s *MemStream) wakeLocked() {
	if s.waiters > 0 {
		close(s.notify)
		s.notify = make(chan struct{})
		s.waiters = 0
	}
}

// CreateGroup implements Stream: a new group starts at the oldest retained
// entry.
func (s *MemStream) CreateGroup(_ context.Context, group string) error {
	if group == "" {
		return errors.New("creating a consumer group: the group name is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStreamClosed
	}
	if _, ok := s.groups[group]; !ok {
		s.groups[group] = &memGroup{delivered: s.head, pending: make(map[uint64]*memPending)}
	}
	return nil
}

// Read implements Stream.
func (s *MemStream) Read(ctx context.Context, group, consumer string, max int, wait time.Duration) ([]Message, error) {
	if max < 1 {
		return nil, nil
	}
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrStreamClosed
		}
		g, ok := s.groups[group]
		if !ok {
			s.mu.Unlock()
			return nil, fmt.Errorf("reading group %q of stream %s: %w", group, s.cfg.Name, ErrUnknownGroup)
		}
		now := s.cfg.Now()
		out := s.claimLocked(g, consumer, max, now)
		out = s.deliverLocked(g, consumer, max, now, out)
		left := time.Until(deadline)
		if len(out) > 0 || left <= 0 {
			s.mu.Unlock()
			return out, nil
		}
		ch := s.notify
		s.waiters++
		s.mu.Unlock()

		t := time.NewTimer(left)
		select {
		case <-ch:
			t.Stop()
			continue
		case <-ctx.Done():
			t.Stop()
			s.unwait(ch)
			return nil, ctx.Err()
		case <-t.C:
			s.unwait(ch)
			return nil, nil
		}
	}
}

// unwait withdraws a waiter that stopped waiting on ch without a wake-up.
func (s *MemStream) unwait(ch chan struct{}) {
	s.mu.Lock()
	if s.notify == ch && s.waiters > 0 {
		s.waiters--
	}
	s.mu.Unlock()
}

// claimLocked hands pending messages idle for ClaimAfter or longer to
// consumer, oldest first; pending entries trimmed from the ring are dropped
// from the pending list, as XAUTOCLAIM does.
func (s *MemStream) claimLocked(g *memGroup, consumer string, max int, now time.Time) []Message {
	var out []Message
	for _, seq := range g.order {
		if len(out) == max {
			break
		}
		p, ok := g.pending[seq]
		if !ok {
			continue
		}
		if seq < s.head {
			delete(g.pending, seq)
			continue
		}
		if now.Sub(p.at) < s.cfg.ClaimAfter {
			continue
		}
		p.consumer, p.at = consumer, now
		out = append(out, s.messageLocked(seq, true))
	}
	if len(g.order) > 2*len(g.pending)+32 {
		kept := g.order[:0]
		for _, seq := range g.order {
			if _, ok := g.pending[seq]; ok {
				kept = append(kept, seq)
			}
		}
		g.order = kept
	}
	return out
}

// deliverLocked appends new messages for consumer to out, up to max in all.
func (s *MemStream) deliverLocked(g *memGroup, consumer string, max int, now time.Time, out []Message) []Message {
	seq := g.delivered
	if seq < s.head {
		seq = s.head // the ring overwrote what the group had not read
	}
	for ; seq < s.next && len(out) < max; seq++ {
		g.pending[seq] = &memPending{consumer: consumer, at: now}
		g.order = append(g.order, seq)
		out = append(out, s.messageLocked(seq, false))
	}
	g.delivered = seq
	return out
}

func (s *MemStream) messageLocked(seq uint64, redelivered bool) Message {
	e := s.ring[seq%uint64(len(s.ring))]
	return Message{ID: strconv.FormatUint(seq, 10), Position: e.pos, Added: e.added, Redelivered: redelivered}
}

// Ack implements Stream.
func (s *MemStream) Ack(_ context.Context, group string, ids ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[group]
	if !ok {
		return fmt.Errorf("acknowledging in group %q of stream %s: %w", group, s.cfg.Name, ErrUnknownGroup)
	}
	for _, id := range ids {
		seq, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return fmt.Errorf("acknowledging in group %q of stream %s: %q is not a message id", group, s.cfg.Name, id)
		}
		delete(g.pending, seq)
	}
	return nil
}

// Lag implements Stream.
func (s *MemStream) Lag(_ context.Context, group string) (int64, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[group]
	if !ok {
		return 0, time.Time{}, fmt.Errorf("measuring the lag of group %q of stream %s: %w", group, s.cfg.Name, ErrUnknownGroup)
	}
	start := max(g.delivered, s.head)
	if start >= s.next {
		return 0, time.Time{}, nil
	}
	return int64(s.next - start), s.ring[start%uint64(len(s.ring))].added, nil
}

// Pending returns how many messages of group are delivered and not yet
// acknowledged.
func (s *MemStream) Pending(group string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.groups[group]; ok {
		return len(g.pending)
	}
	return 0
}

// Len returns how many entries the stream retains.
func (s *MemStream) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.next - s.head)
}

// Close implements Stream: readers waiting return ErrStreamClosed.
func (s *MemStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.notify)
		s.waiters = 0
	}
	return nil
}
