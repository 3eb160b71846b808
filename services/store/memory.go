package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/google/btree"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/services/hlc"
)

// MaxScanLimit bounds the limit of one ScanRange or Since call.
const MaxScanLimit = 100_000

// Config configures a Memory store.
type Config struct {
	// Region is the store's region. Required.
	Region string
	// Clock versions the writes; default a clock of Region on time.Now
	// with the default maximum offset. Its region must be Region.
	Clock *hlc.Clock
}

func (c *Config) defaults() error {
	if c.Clock == nil && c.Region != "" {
		clk, err := hlc.New(hlc.Config{Region: c.Region})
		if err != nil {
			return fmt.Errorf("building the store's default clock: %w", err)
		}
		c.Clock = clk
	}
	return nil
}

// Validate checks the configuration after defaults are filled in.
func (c Config) Validate() error {
	if c.Region == "" {
		return fmt.Errorf("store config: region is required")
	}
	if c.Clock.Region() != c.Region {
		return fmt.Errorf("store config: the clock belongs to region %q, not %q", c.Clock.Region(), c.Region)
	}
	return nil
}

// Stats are a Memory store's running counts.
type Stats struct {
	Puts, Won, Lost, Duplicates, Conflicts uint64
}

// Memory is the in-process Store: tables in B-trees ordered by key, the
// outbox in a slice, one lock over both so that a write and its outbox
// event are one atomic step.
type Memory struct {
	region string
	clock  *hlc.Clock

	mu      sync.RWMutex
	tables  map[string]*table
	outbox  []Event // events base+1 .. base+len(outbox)
	base    uint64
	applied map[string]uint64 // origin -> applied seq
	changed chan struct{}
	watched bool // someone holds changed; close it at the next append
	stats   Stats
}

type row struct {
	key string
	rec Record
}

type table struct {
	rows map[string]*row
	keys *btree.BTreeG[*row]
}

func newTable() *table {
	return &table{rows: map[string]*row{}, keys: btree.NewG(32, func(a, b *row) bool { return a.key < b.key })}
}

// Memory implements Store.
var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-process store.
func NewMemory(cfg Config) (*Memory, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Memory{
		region:  cfg.Region,
		clock:   cfg.Clock,
		tables:  map[string]*table{},
		applied: map[string]uint64{},
		changed: make(chan struct{}),
	}, nil
}

// Region implements Store.
func (m *Memory) Region() string { return m.region }

// Clock returns the store's hybrid logical clock.
func (m *Memory) Clock() *hlc.Clock { return m.clock }

// Put implements Store. value must be a JSON document; it is stored
// compacted (insignificant whitespace removed), so that every region holds
// the same bytes.
func (m *Memory) Put(ctx context.Context, tbl, key string, value []byte) (Record, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, value); err != nil {
		return Record{}, fmt.Errorf("putting %s/%s: value: not a JSON document (%v): %w", tbl, key, err, ErrInvalid)
	}
	if buf.Len() == 0 {
		return Record{}, fmt.Errorf("putting %s/%s: value: empty: %w", tbl, key, ErrInvalid)
	}
	return m.write(ctx, tbl, key, buf.Bytes(), false)
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, tbl, key string) (Record, error) {
	return m.write(ctx, tbl, key, nil, true)
}

func checkName(what, tbl, key string) error {
	if tbl == "" {
		return fmt.Errorf("%s: table: empty: %w", what, ErrInvalid)
	}
	if key == "" {
		return fmt.Errorf("%s %s: key: empty: %w", what, tbl, ErrInvalid)
	}
	return nil
}

func (m *Memory) write(ctx context.Context, tbl, key string, value []byte, deleted bool) (Record, error) {
	if err := checkName("writing", tbl, key); err != nil {
		return Record{}, err
	}
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("writing %s/%s: %w", tbl, key, err)
	}
	var carrier map[string]string
	if trace.SpanContextFromContext(ctx).IsValid() {
		carrier = map[string]string{}
		propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(carrier))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tableLocked(tbl)
	r := t.rows[key]
	// The clock is at or past every version the store holds (Apply merges
	// each remote version first), so ver is newer than the current record.
	ver := m.clock.Now()
	rec := Record{Table: tbl, Key: key, Value: value, Version: ver, Origin: m.region, Deleted: deleted}
	if r != nil {
		rec.Prev = r.rec.Version
	}
	m.installLocked(t, r, rec)
	m.appendLocked(Event{Seq: m.base + uint64(len(m.outbox)) + 1, Record: rec, Trace: carrier})
	m.stats.Puts++
	return rec, nil
}

func (m *Memory) tableLocked(tbl string) *table {
	t := m.tables[tbl]
	if t == nil {
		t = newTable()
		m.tables[tbl] = t
	}
	return t
}

func (m *Memory) installLocked(t *table, r *row, rec Record) {
	if r != nil {
		r.rec = rec
		return
	}
	r = &row{key: rec.Key, rec: rec}
	t.rows[rec.Key] = r
	t.keys.ReplaceOrInsert(r)
}

func (m *Memory) appendLocked(ev Event) {
	m.outbox = append(m.outbox, ev)
	if m.watched {
		close(m.changed)
		m.changed = make(chan struct{})
		m.watched = false
	}
}

// Get implements Store. The returned value is a copy.
func (m *Memory) Get(ctx context.Context, tbl, key string) (Record, bool, error) {
	if err := checkName("reading", tbl, key); err != nil {
		return Record{}, false, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := m.tables[tbl]
	if t == nil {
		return Record{}, false, nil
	}
	r := t.rows[key]
	if r == nil {
		return Record{}, false, nil
	}
	return cloneRecord(r.rec), true, nil
}

func cloneRecord(r Record) Record {
	r.Value = bytes.Clone(r.Value)
	return r
}

// ScanRange implements Store. limit must be in [1, MaxScanLimit]. Values
// are copies.
func (m *Memory) ScanRange(ctx context.Context, tbl, fromKey, toKey string, limit int) ([]Record, error) {
	if tbl == "" {
		return nil, fmt.Errorf("scanning: table: empty: %w", ErrInvalid)
	}
	if limit < 1 || limit > MaxScanLimit {
		return nil, fmt.Errorf("scanning %s: limit: %d is outside [1, %d]: %w", tbl, limit, MaxScanLimit, ErrInvalid)
	}
	if toKey != "" && toKey <= fromKey {
		return nil, nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := m.tables[tbl]
	if t == nil {
		return nil, nil
	}
	var out []Record
	t.keys.AscendGreaterOrEqual(&row{key: fromKey}, func(r *row) bool {
		if toKey != "" && r.key >= toKey {
			return false
		}
		out = append(out, cloneRecord(r.rec))
		return len(out) < limit
	})
	return out, nil
}

// VisitRange calls fn on the records of tbl whose keys are in
// [fromKey, toKey) (toKey "" is the end) in key order, under the store's
// read lock and WITHOUT copying, until fn returns false. fn must not keep
// rec.Value after it returns nor call the store. It is the copy-free scan
// for readers that only hash or count, such as the data verifier.
func (m *Memory) VisitRange(ctx context.Context, tbl, fromKey, toKey string, fn func(rec Record) bool) error {
	if tbl == "" {
		return fmt.Errorf("visiting: table: empty: %w", ErrInvalid)
	}
	if toKey != "" && toKey <= fromKey {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := m.tables[tbl]
	if t == nil {
		return nil
	}
	t.keys.AscendGreaterOrEqual(&row{key: fromKey}, func(r *row) bool {
		if toKey != "" && r.key >= toKey {
			return false
		}
		return fn(r.rec)
	})
	return nil
}

// Tables implements Store.
func (m *Memory) Tables(ctx context.Context) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.tables)), nil
}

// Apply implements Store. It merges the event's version into the region's
// clock first; a version too far ahead of the local clock is refused with
// an error wrapping hlc.ErrRemoteAhead, nothing is applied and the origin's
// applied offset does not move, so the event can be retried when the
// clocks agree again.
func (m *Memory) Apply(ctx context.Context, ev Event) (ApplyResult, error) {
	rec := ev.Record
	if err := validateEvent(ev, m.region); err != nil {
		return ApplyResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var r *row
	if t := m.tables[rec.Table]; t != nil {
		r = t.rows[rec.Key]
	}
	current := func() Record {
		if r == nil {
			return Record{}
		}
		return r.rec
	}
	if ev.Seq <= m.applied[rec.Origin] {
		m.stats.Duplicates++
		return ApplyResult{Outcome: Duplicate, Current: current()}, nil
	}
	if _, err := m.clock.Update(rec.Version); err != nil {
		return ApplyResult{}, fmt.Errorf("applying event %d of %s (%s/%s): %w", ev.Seq, rec.Origin, rec.Table, rec.Key, err)
	}
	m.applied[rec.Origin] = ev.Seq
	res := ApplyResult{}
	switch {
	case r != nil && r.rec.Version == rec.Version:
		res.Outcome = Duplicate
		m.stats.Duplicates++
	case r == nil || r.rec.Version.Less(rec.Version):
		res.Outcome = Won
		// Concurrent unless the writer had seen the record held here.
		res.Conflict = r != nil && rec.Prev.Less(r.rec.Version)
		rec.Value = bytes.Clone(rec.Value)
		t := m.tableLocked(rec.Table)
		m.installLocked(t, r, rec)
		r = t.rows[rec.Key]
		m.stats.Won++
	default:
		res.Outcome = Lost
		// Concurrent unless the record held here had overwritten a
		// version at or after the event's (the event is stale).
		res.Conflict = r.rec.Prev.Less(rec.Version)
		m.stats.Lost++
	}
	if res.Conflict {
		m.stats.Conflicts++
	}
	res.Current = current()
	return res, nil
}

func validateEvent(ev Event, self string) error {
	rec := ev.Record
	if err := checkName("applying", rec.Table, rec.Key); err != nil {
		return err
	}
	switch {
	case ev.Seq == 0:
		return fmt.Errorf("applying %s/%s: seq: must be at least 1: %w", rec.Table, rec.Key, ErrInvalid)
	case rec.Origin == "":
		return fmt.Errorf("applying %s/%s: origin: empty: %w", rec.Table, rec.Key, ErrInvalid)
	case rec.Origin == self:
		return fmt.Errorf("applying %s/%s: origin: the event comes from this region (%s); a region does not apply its own outbox: %w", rec.Table, rec.Key, self, ErrInvalid)
	case rec.Version.Region != rec.Origin:
		return fmt.Errorf("applying %s/%s: version: issued by region %q, not the origin %q: %w", rec.Table, rec.Key, rec.Version.Region, rec.Origin, ErrInvalid)
	case rec.Deleted != (len(rec.Value) == 0):
		return fmt.Errorf("applying %s/%s: value: a tombstone has no value and a write has one: %w", rec.Table, rec.Key, ErrInvalid)
	}
	return nil
}

// AppliedSeq implements Store.
func (m *Memory) AppliedSeq(ctx context.Context, origin string) (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.applied[origin], nil
}

// Since implements Store. limit must be in [0, MaxScanLimit]; 0 returns no
// events (and still checks the offset). The events share their values with
// the outbox: do not modify them.
func (m *Memory) Since(ctx context.Context, offset uint64, limit int) ([]Event, error) {
	if limit < 0 || limit > MaxScanLimit {
		return nil, fmt.Errorf("reading the outbox of %s: limit: %d is outside [0, %d]: %w", m.region, limit, MaxScanLimit, ErrInvalid)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	hw := m.base + uint64(len(m.outbox))
	switch {
	case offset < m.base:
		return nil, fmt.Errorf("reading the outbox of %s from offset %d: the oldest event kept is %d: %w", m.region, offset, m.base+1, ErrTruncated)
	case offset > hw:
		return nil, fmt.Errorf("reading the outbox of %s from offset %d: the high-water mark is %d: %w", m.region, offset, hw, ErrOffsetAhead)
	}
	start := int(offset - m.base)
	end := min(start+limit, len(m.outbox))
	if start == end {
		return nil, nil
	}
	return slices.Clone(m.outbox[start:end]), nil
}

// HighWater implements Store.
func (m *Memory) HighWater(ctx context.Context) (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.base + uint64(len(m.outbox)), nil
}

// Changed implements Store.
func (m *Memory) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watched = true
	return m.changed
}

// Truncate drops the outbox events with Seq <= upTo (at most up to the
// high-water mark), to bound memory once every replicator has applied
// them. Readers asking for dropped events get ErrTruncated.
func (m *Memory) Truncate(upTo uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	upTo = min(upTo, m.base+uint64(len(m.outbox)))
	if upTo <= m.base {
		return
	}
	m.outbox = slices.Clone(m.outbox[upTo-m.base:])
	m.base = upTo
}

// Stats returns the store's running counts.
func (m *Memory) Stats() Stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.stats
}

// Dump returns every record of every table, ordered by table then key; for
// tests and debugging.
func (m *Memory) Dump() []Record {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Record
	for _, name := range slices.Sorted(maps.Keys(m.tables)) {
		m.tables[name].keys.Ascend(func(r *row) bool {
			out = append(out, cloneRecord(r.rec))
			return true
		})
	}
	return out
}

// String implements fmt.Stringer (for test failures).
func (s Stats) String() string {
	return fmt.Sprintf("puts=%d won=%d lost=%d duplicates=%d conflicts=%d", s.Puts, s.Won, s.Lost, s.Duplicates, s.Conflicts)
}
