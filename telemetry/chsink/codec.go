package chsink

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
	"unsafe"

	"github.com/google/uuid"
)

// This file is the binary record format of the write-ahead log: varints for
// integers and lengths, 8 little-endian bytes for floats, 16 bytes for a
// UUID, Unix nanoseconds for times. It is fast to write and to read back and
// carries no field names: the WAL's segment header says which format it is.

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendUUID(b []byte, id uuid.UUID) []byte { return append(b, id[:]...) }

// appendTime appends t as Unix nanoseconds; the zero time as 0 (so it reads
// back as the Unix epoch, which prepare never leaves in a record).
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func appendStrings(b []byte, ss ...string) []byte {
	for _, s := range ss {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func appendStringSlice(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	return appendStrings(b, ss...)
}

func appendFloats(b []byte, fs ...float64) []byte {
	for _, f := range fs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	return b
}

func appendFloatSlice(b []byte, fs []float64) []byte {
	b = binary.AppendUvarint(b, uint64(len(fs)))
	return appendFloats(b, fs...)
}

// errShortRecord is the decoder's error for a record that ends early or
// claims more bytes than it has.
var errShortRecord = errors.New("record truncated or malformed")

// decoder reads records from one frame's payload. The strings it returns
// point into the payload (no copy), so the payload must never be modified or
// reused: the WAL reader allocates a fresh buffer for every frame. The first
// error sticks; later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err, d.b = errShortRecord, nil }

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uuid() uuid.UUID {
	var id uuid.UUID
	if len(d.b) < len(id) {
		d.fail()
		return id
	}
	copy(id[:], d.b)
	d.b = d.b[len(id):]
	return id
}

func (d *decoder) time() time.Time {
	ns := d.varint()
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	if n == 0 {
		return ""
	}
	s := unsafe.String(&d.b[0], int(n)) // the payload is never modified: see decoder
	d.b = d.b[n:]
	return s
}

// count reads a slice length and checks that at least min bytes per element
// remain, so that a corrupt length cannot make a huge allocation.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/min) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

func (d *decoder) float() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return f
}

func (d *decoder) floats() []float64 {
	n := d.count(8)
	if n == 0 {
		return nil
	}
	fs := make([]float64, n)
	for i := range fs {
		fs[i] = d.float()
	}
	return fs
}

// encodeFrame returns the payload of a WAL frame holding rows: the record
// count, then the records. It appends to b.
func encodeFrame[T any](b []byte, tbl *table[T], rows []T) []byte {
	b = binary.AppendUvarint(b, uint64(len(rows)))
	for i := range rows {
		b = tbl.encode(b, &rows[i])
	}
	return b
}

// decodeFrame appends the records of a frame's payload to rows.
func decodeFrame[T any](rows []T, tbl *table[T], payload []byte) ([]T, error) {
	d := decoder{b: payload}
	n := d.count(1)
	if d.err != nil {
		return rows, d.err
	}
	rows = growBy(rows, n)
	for range n {
		var r T
		tbl.decode(&d, &r)
		if d.err != nil {
			return rows, d.err
		}
		rows = append(rows, r)
	}
	if len(d.b) != 0 {
		return rows, errShortRecord
	}
	return rows, nil
}

// frameRecords reads the record count at the start of a frame's payload.
func frameRecords(payload []byte) (int64, error) {
	n, k := binary.Uvarint(payload)
	if k <= 0 {
		return 0, errShortRecord
	}
	return int64(n), nil
}

func growBy[E any](s []E, n int) []E {
	if cap(s)-len(s) < n {
		s2 := make([]E, len(s), len(s)+n)
		copy(s2, s)
		return s2
	}
	return s
}
