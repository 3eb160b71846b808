package telemetry

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// This file encodes slog attributes as JSON the way slog.JSONHandler does
// (groups nest, empty groups vanish, durations are nanoseconds, errors their
// message), so that a sink receives the attributes already encoded.

// appendComma appends the separator a new member of the object being written
// needs.
func appendComma(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	return b
}

// appendAttrs appends as members; it reports whether it wrote any.
func appendAttrs(b []byte, as []slog.Attr) ([]byte, bool) {
	wrote := false
	for _, a := range as {
		var w bool
		b, w = appendAttr(b, a)
		wrote = wrote || w
	}
	return b, wrote
}

// appendAttr appends a as a member, following slog's rules: an empty attribute
// is dropped, a group without attributes is dropped, a group with an empty key
// is inlined. It reports whether it wrote anything.
func appendAttr(b []byte, a slog.Attr) ([]byte, bool) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b, false
	}
	if a.Value.Kind() == slog.KindGroup {
		as := a.Value.Group()
		if len(as) == 0 {
			return b, false
		}
		if a.Key == "" {
			return appendAttrs(b, as)
		}
		mark := len(b)
		b = appendComma(b)
		b = appendJSONString(b, a.Key)
		b = append(b, ':', '{')
		b, wrote := appendAttrs(b, as)
		if !wrote {
			return b[:mark], false
		}
		return append(b, '}'), true
	}
	b = appendComma(b)
	b = appendJSONString(b, a.Key)
	b = append(b, ':')
	return appendJSONValue(b, a.Value), true
}

// appendJSONValue appends a resolved, non-group value.
func appendJSONValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendJSONString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendJSONString(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindTime:
		b = append(b, '"')
		b = v.Time().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	default:
		return appendJSONAny(b, v.Any())
	}
}

// appendJSONAny appends an arbitrary value: an error as its message, anything
// else through encoding/json, and what encoding/json refuses as its %+v text.
func appendJSONAny(b []byte, x any) []byte {
	if err, ok := x.(error); ok {
		if _, isMarshaler := x.(json.Marshaler); !isMarshaler {
			return appendJSONString(b, err.Error())
		}
	}
	j, err := json.Marshal(x)
	if err != nil {
		return appendJSONString(b, fmt.Sprintf("%+v", x))
	}
	return append(b, j...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Unlike encoding/json it leaves
// <, > and & alone (as slog.JSONHandler does); invalid UTF-8 becomes U+FFFD,
// and U+2028/U+2029 are escaped so that the line stays one line for JavaScript.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
