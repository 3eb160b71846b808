package verify

import (
	"context"
	"fmt"
	"math/big"
	"slices"
)

// Table names what is compared between two regions and how it is chunked.
type Table struct {
	// Name is the table: a region store's table, or "[database.]name"
	// (MySQL) / "[schema.]name" (PostgreSQL).
	Name string `json:"name"`
	// Key is the unique, non-null column the table is ordered and chunked
	// by. SQL backends discover the primary key when it is empty (a
	// composite primary key needs an explicit single unique column); the
	// region stores' key is the record key.
	Key string `json:"key,omitempty"`
	// Columns are the compared columns, the key first. SQL backends
	// discover every column when it is empty, and put the key first when
	// it is missing. The region stores have one column, "value".
	Columns []string `json:"columns,omitempty"`
}

// Range is the keys k with Lo < k <= Hi in the backend's key order; an end
// that is not set is open.
type Range struct {
	Lo    string `json:"lo,omitempty"`
	Hi    string `json:"hi,omitempty"`
	HasLo bool   `json:"has_lo,omitempty"`
	HasHi bool   `json:"has_hi,omitempty"`
}

// All is the range of every key.
var All = Range{}

// String implements fmt.Stringer: (lo, hi] with -inf/+inf for open ends.
func (r Range) String() string {
	lo, hi := "-inf", "+inf"
	if r.HasLo {
		lo = fmt.Sprintf("%q", r.Lo)
	}
	if r.HasHi {
		hi = fmt.Sprintf("%q", r.Hi)
	}
	return "(" + lo + ", " + hi + "]"
}

// below returns the part of r at or below key k: (r.Lo, k].
func (r Range) below(k string) Range { return Range{Lo: r.Lo, HasLo: r.HasLo, Hi: k, HasHi: true} }

// above returns the part of r above key k: (k, r.Hi].
func (r Range) above(k string) Range { return Range{Lo: k, HasLo: true, Hi: r.Hi, HasHi: r.HasHi} }

// Checksum sums a set of rows: how many, and the sum modulo 2^64 of their
// salted 64-bit row hashes. A sum (unlike an XOR) does not cancel a row
// counted twice, and a row hash over the whole canonical row (unlike a
// linear CRC) does not cancel values swapped between rows. The sum is
// additive, so the checksum of a range minus that of its lower half is the
// checksum of its upper half.
type Checksum struct {
	Rows int64  `json:"rows"`
	Sum  uint64 `json:"sum"`
}

// Add returns c plus the row with hash h.
func (c Checksum) Add(h uint64) Checksum { return Checksum{Rows: c.Rows + 1, Sum: c.Sum + h} }

// Minus returns the checksum of the rows of c that are not in d, d being a
// subset of c.
func (c Checksum) Minus(d Checksum) Checksum {
	return Checksum{Rows: c.Rows - d.Rows, Sum: c.Sum - d.Sum}
}

// two64 is 2^64, the modulus of a checksum's sum.
var two64 = new(big.Int).Lsh(big.NewInt(1), 64)

// sumFromDecimal reduces an exact decimal sum of row hashes (what SQL's
// SUM returns, signed or unsigned) modulo 2^64.
func sumFromDecimal(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return 0, fmt.Errorf("the database's hash sum %q is not an integer", s)
	}
	return n.Mod(n, two64).Uint64(), nil
}

// Row is a row's column values as text, in the order of Table.Columns; a
// nil value is SQL NULL. Values are the backend's text form (for MySQL the
// bytes as stored, for PostgreSQL the column cast to text, for the region
// stores the JSON document).
type Row []*string

// Equal reports whether r and o hold the same values.
func (r Row) Equal(o Row) bool {
	return slices.EqualFunc(r, o, func(a, b *string) bool {
		if a == nil || b == nil {
			return a == b
		}
		return *a == *b
	})
}

// sameRow reports whether two observations of a row are the same: both
// absent, or both present with equal values.
func sameRow(a, b Row) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(b)
}

// Backend is one region's copy of the tables, as the verifier reads it.
// Keys are the backend's text form of the key column; the backend orders
// and compares them (the verifier never does, so a collation is never
// second-guessed). Implementations are safe for concurrent use.
type Backend interface {
	// Chunk checksums the first n rows of r in key order and returns the
	// key of the last of them; fewer than n rows means r holds no more.
	// last is meaningless when no row was found.
	Chunk(ctx context.Context, t Table, r Range, n int, salt uint64) (cs Checksum, last string, err error)
	// Checksum checksums every row of r.
	Checksum(ctx context.Context, t Table, r Range, salt uint64) (Checksum, error)
	// RowHashes returns the salted hash of every row of r by key. The
	// verifier calls it on small ranges only.
	RowHashes(ctx context.Context, t Table, r Range, salt uint64) (map[string]uint64, error)
	// Rows returns the rows of the given keys; a key without a row is
	// absent from the map.
	Rows(ctx context.Context, t Table, keys []string) (map[string]Row, error)
}

// Bounder is implemented by a backend that finds a chunk's upper key more
// cheaply than it checksums the chunk (an index-only scan in SQL). With
// it the source's chunk checksums run on the workers, concurrently; without
// it (the region stores, where a scan is a scan) the chunk producer
// checksums the source's chunk in the same pass that finds its end.
type Bounder interface {
	// Boundary returns the key at position n (from 0) of r in key order;
	// ok is false when r holds n keys or fewer.
	Boundary(ctx context.Context, t Table, r Range, n int) (key string, ok bool, err error)
}

// Describer is implemented by a backend that can fill in a table's key
// and columns from its schema.
type Describer interface {
	Describe(ctx context.Context, t Table) (Table, error)
}

// Repairer is implemented by a target backend that can write a row back
// to what the source holds: the statement in the backend's own language
// (SQL, or a store PUT/DELETE) and its execution.
type Repairer interface {
	// Statement returns what makes the target's row of key, have (nil: no
	// row), equal to want (nil: no row): an INSERT, UPDATE or DELETE.
	Statement(t Table, key string, have, want Row) string
	// Apply executes Statement(t, key, have, want) on the target.
	Apply(ctx context.Context, t Table, key string, have, want Row) error
}
