// Package hlc is a hybrid logical clock (Kulkarni, Demirbas et al., "Logical
// Physical Clocks and Consistent Snapshots in Globally Distributed
// Databases", 2014). A Timestamp pairs the largest physical time seen, in
// milliseconds, with a logical counter that orders events within one
// millisecond; the region that issued it breaks the remaining ties, so
// timestamps form a total order that respects causality: an event that
// happens after another one (locally, or by receiving its timestamp) always
// gets a greater timestamp.
//
// A Clock issues timestamps for local and send events (Now) and merges the
// timestamps of received events (Update). It refuses a remote timestamp that
// is further ahead of its physical clock than the maximum offset, so a
// region with a runaway clock cannot drag every other region's clock into
// the future.
package hlc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Timestamp is a hybrid logical clock reading. The zero value is the
// smallest timestamp and means "none".
type Timestamp struct {
	// WallMS is the physical part: Unix milliseconds, the largest physical
	// time the issuing clock had seen.
	WallMS int64
	// Logical orders timestamps that share WallMS.
	Logical uint32
	// Region is the region whose clock issued the timestamp; it breaks ties
	// between regions so that the order is total.
	Region string
}

// Compare returns -1, 0 or +1 as t is before, equal to or after o, ordering
// by WallMS, then Logical, then Region (byte-wise).
func (t Timestamp) Compare(o Timestamp) int {
	switch {
	case t.WallMS < o.WallMS:
		return -1
	case t.WallMS > o.WallMS:
		return 1
	case t.Logical < o.Logical:
		return -1
	case t.Logical > o.Logical:
		return 1
	}
	return strings.Compare(t.Region, o.Region)
}

// Less reports whether t is before o in the total order of Compare.
func (t Timestamp) Less(o Timestamp) bool { return t.Compare(o) < 0 }

// IsZero reports whether t is the zero timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// Time returns the physical part of t as a time.Time.
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.WallMS) }

// clockPart drops the region: the part of a timestamp the HLC rules compare.
func (t Timestamp) clockPart() Timestamp { return Timestamp{WallMS: t.WallMS, Logical: t.Logical} }

// String formats t as "<wall ms>.<logical>@<region>", for example
// "1764028800000.3@eu-west". Parse reads it back.
func (t Timestamp) String() string { return string(t.AppendText(nil)) }

// AppendText appends the String form of t to b.
func (t Timestamp) AppendText(b []byte) []byte {
	b = strconv.AppendInt(b, t.WallMS, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(t.Logical), 10)
	b = append(b, '@')
	return append(b, t.Region...)
}

// MarshalText implements encoding.TextMarshaler (so JSON carries a
// timestamp as its String form).
func (t Timestamp) MarshalText() ([]byte, error) { return t.AppendText(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Timestamp) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Parse reads a timestamp in the String form "<wall ms>.<logical>@<region>".
// The region may be empty (the zero timestamp is "0.0@").
func Parse(s string) (Timestamp, error) {
	num, region, ok := strings.Cut(s, "@")
	if !ok {
		return Timestamp{}, fmt.Errorf("parsing HLC timestamp %q: want <wall ms>.<logical>@<region>, no '@' found", s)
	}
	wallS, logS, ok := strings.Cut(num, ".")
	if !ok {
		return Timestamp{}, fmt.Errorf("parsing HLC timestamp %q: want <wall ms>.<logical>@<region>, no '.' found", s)
	}
	wall, err := strconv.ParseInt(wallS, 10, 64)
	if err != nil {
		return Timestamp{}, fmt.Errorf("parsing the wall milliseconds of HLC timestamp %q: %w", s, err)
	}
	logical, err := strconv.ParseUint(logS, 10, 32)
	if err != nil {
		return Timestamp{}, fmt.Errorf("parsing the logical counter of HLC timestamp %q: %w", s, err)
	}
	return Timestamp{WallMS: wall, Logical: uint32(logical), Region: region}, nil
}

// binaryHeader is the fixed part of the binary form: 8 bytes of wall time
// and 4 of logical counter.
const binaryHeader = 12

// AppendBinary appends the binary form of t to b: the wall time as 8
// big-endian bytes with the sign bit flipped, the logical counter as 4
// big-endian bytes, then the region's bytes. The byte-wise order of two
// encodings is the order of Compare, so encodings can serve as sortable
// keys in a database.
func (t Timestamp) AppendBinary(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, uint64(t.WallMS)^(1<<63))
	b = binary.BigEndian.AppendUint32(b, t.Logical)
	return append(b, t.Region...), nil
}

// MarshalBinary implements encoding.BinaryMarshaler (see AppendBinary).
func (t Timestamp) MarshalBinary() ([]byte, error) {
	return t.AppendBinary(make([]byte, 0, binaryHeader+len(t.Region)))
}

// ErrShortBinary is returned when a binary timestamp is shorter than its
// fixed 12-byte header.
var ErrShortBinary = errors.New("hlc: binary timestamp shorter than 12 bytes")

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (t *Timestamp) UnmarshalBinary(b []byte) error {
	if len(b) < binaryHeader {
		return fmt.Errorf("decoding a %d-byte HLC timestamp: %w", len(b), ErrShortBinary)
	}
	*t = Timestamp{
		WallMS:  int64(binary.BigEndian.Uint64(b) ^ (1 << 63)),
		Logical: binary.BigEndian.Uint32(b[8:]),
		Region:  string(b[binaryHeader:]),
	}
	return nil
}
