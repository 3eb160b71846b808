package verify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"

	"github.com/carpoolsla/carpoolsla/services/store"
)

// StoreReader is what the verifier reads of a region store; every
// store.Store satisfies it.
type StoreReader interface {
	ScanRange(ctx context.Context, table, fromKey, toKey string, limit int) ([]store.Record, error)
	Get(ctx context.Context, table, key string) (store.Record, bool, error)
}

// StoreWriter is what a repair writes to a region store; every store.Store
// satisfies it.
type StoreWriter interface {
	Put(ctx context.Context, table, key string, value []byte) (store.Record, error)
	Delete(ctx context.Context, table, key string) (store.Record, error)
}

// StoreColumn is the one column of a region store's table: the record's
// JSON document.
const StoreColumn = "value"

// storePage is how many records one ScanRange call reads.
const storePage = 1024

// storeSeed seeds the region stores' row hashes. A seed is per process:
// both stores of a comparison are hashed in this process, and the run's
// salt varies the hashes from run to run on top.
var storeSeed = maphash.MakeSeed()

// Store is the Backend of a region store (services/store): the rows of a
// table are its live records (tombstones count as no row, like a deleted
// SQL row), keyed by the record key, with the JSON document as the one
// column. A row's hash is a seeded 64-bit hash (hash/maphash) of the salt,
// the key and the document; the store keeps documents compacted, so equal
// documents are equal bytes. As a repair target it writes with Put and
// Delete, which replicate like any local write: the repaired value then
// reaches every region with a new version (last-writer-wins).
type Store struct {
	r StoreReader
	w StoreWriter
}

// Store implements Backend and Repairer.
var (
	_ Backend  = (*Store)(nil)
	_ Repairer = (*Store)(nil)
)

// NewStore returns the backend of a region store. w may be nil for a
// source, which is never written.
func NewStore(r StoreReader, w StoreWriter) *Store { return &Store{r: r, w: w} }

// Describe implements Describer: the key is the record key and the one
// column the document.
func (s *Store) Describe(_ context.Context, t Table) (Table, error) {
	t.Key, t.Columns = "key", []string{StoreColumn}
	return t, nil
}

// scanBounds turns r into ScanRange's inclusive-from, exclusive-to form:
// the smallest key above Lo is Lo+"\x00", and the smallest above Hi is
// Hi+"\x00" (keys compare as bytes).
func scanBounds(r Range) (from, to string) {
	if r.HasLo {
		from = r.Lo + "\x00"
	}
	if r.HasHi {
		to = r.Hi + "\x00"
	}
	return from, to
}

// Visitor is a store that can hand records to a callback without copying
// them (store.Memory's VisitRange); the verifier then scans without
// allocating per row.
type Visitor interface {
	VisitRange(ctx context.Context, table, fromKey, toKey string, fn func(store.Record) bool) error
}

// scan calls fn on every live record of r in key order until fn returns
// false, reading page records at a time (or visiting them in place when the
// store is a Visitor: fn must then not keep rec.Value).
func (s *Store) scan(ctx context.Context, table string, r Range, page int, fn func(store.Record) bool) error {
	from, to := scanBounds(r)
	if r.HasLo && r.HasHi && to <= from {
		return nil
	}
	if v, ok := s.r.(Visitor); ok {
		err := v.VisitRange(ctx, table, from, to, func(rec store.Record) bool {
			if rec.Deleted {
				return true
			}
			return fn(rec)
		})
		if err != nil {
			return fmt.Errorf("scanning %s %s: %w", table, r, err)
		}
		return nil
	}
	for {
		recs, err := s.r.ScanRange(ctx, table, from, to, page)
		if err != nil {
			return fmt.Errorf("scanning %s %s: %w", table, r, err)
		}
		for _, rec := range recs {
			if rec.Deleted {
				continue
			}
			if !fn(rec) {
				return nil
			}
		}
		if len(recs) < page {
			return nil
		}
		from = recs[len(recs)-1].Key + "\x00"
	}
}

// storeRowHash is the salted hash of a record: the salt, the key's length
// and bytes, then the document.
func storeRowHash(salt uint64, key string, value []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(storeSeed)
	var pre [2 * binary.MaxVarintLen64]byte
	n := binary.LittleEndian.AppendUint64(pre[:0], salt)
	n = binary.AppendUvarint(n, uint64(len(key)))
	h.Write(n)
	h.WriteString(key)
	h.Write(value)
	return h.Sum64()
}

// Chunk implements Backend.
func (s *Store) Chunk(ctx context.Context, t Table, r Range, n int, salt uint64) (Checksum, string, error) {
	var cs Checksum
	var last string
	page := min(n+n/8+1, storePage, store.MaxScanLimit) // a few tombstones fit in one page
	err := s.scan(ctx, t.Name, r, page, func(rec store.Record) bool {
		cs = cs.Add(storeRowHash(salt, rec.Key, rec.Value))
		last = rec.Key
		return cs.Rows < int64(n)
	})
	return cs, last, err
}

// Checksum implements Backend.
func (s *Store) Checksum(ctx context.Context, t Table, r Range, salt uint64) (Checksum, error) {
	var cs Checksum
	err := s.scan(ctx, t.Name, r, storePage, func(rec store.Record) bool {
		cs = cs.Add(storeRowHash(salt, rec.Key, rec.Value))
		return true
	})
	return cs, err
}

// RowHashes implements Backend.
func (s *Store) RowHashes(ctx context.Context, t Table, r Range, salt uint64) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.scan(ctx, t.Name, r, storePage, func(rec store.Record) bool {
		out[rec.Key] = storeRowHash(salt, rec.Key, rec.Value)
		return true
	})
	return out, err
}

// Rows implements Backend.
func (s *Store) Rows(ctx context.Context, t Table, keys []string) (map[string]Row, error) {
	out := make(map[string]Row, len(keys))
	for _, k := range keys {
		rec, ok, err := s.r.Get(ctx, t.Name, k)
		if err != nil {
			return nil, fmt.Errorf("reading %s/%s: %w", t.Name, k, err)
		}
		if ok && !rec.Deleted {
			v := string(rec.Value)
			out[k] = Row{&v}
		}
	}
	return out, nil
}

// Statement implements Repairer: "PUT table/key <document>" or
// "DELETE table/key", the key quoted when it is not plain.
func (s *Store) Statement(t Table, key string, _, want Row) string {
	if len(want) == 0 || want[0] == nil {
		return "DELETE " + t.Name + "/" + storeKey(key)
	}
	return "PUT " + t.Name + "/" + storeKey(key) + " " + *want[0]
}

// storeKey quotes a key that holds spaces or non-printable bytes.
func storeKey(k string) string {
	for _, c := range k {
		if c <= ' ' || c == '"' || c > '~' {
			return strconv.Quote(k)
		}
	}
	return k
}

// errNoWriter: a repair was asked of a store backend built without a writer.
var errNoWriter = errors.New("the store backend has no writer: build it with NewStore(reader, writer) to repair")

// Apply implements Repairer with Put or Delete on the target store.
func (s *Store) Apply(ctx context.Context, t Table, key string, have, want Row) error {
	if s.w == nil {
		return errNoWriter
	}
	var err error
	if len(want) == 0 || want[0] == nil {
		if have == nil {
			return nil
		}
		_, err = s.w.Delete(ctx, t.Name, key)
	} else {
		_, err = s.w.Put(ctx, t.Name, key, []byte(*want[0]))
	}
	if err != nil {
		return fmt.Errorf("repairing %s: %w", s.Statement(t, key, have, want), err)
	}
	return nil
}
