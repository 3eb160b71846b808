package configdrift

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Path is a dotted path to a field of a configuration, such as
// "metadata.generatedAt" or "regions.*.updated_at": each segment is a map
// key, an array index, or * for every key or element. Keys that contain a
// dot cannot be named.
type Path []string

// ParsePath parses a dotted path.
func ParsePath(s string) (Path, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("an empty path")
	}
	p := Path(strings.Split(s, "."))
	for _, seg := range p {
		if seg == "" {
			return nil, fmt.Errorf("path %q has an empty segment (two dots in a row, or a leading or trailing dot)", s)
		}
	}
	return p, nil
}

func (p Path) String() string { return strings.Join(p, ".") }

// Normalize parses a configuration (JSON, or YAML; several YAML documents
// become an array of them), removes the fields at the ignore paths, and
// returns its canonical form: JSON with sorted keys, no insignificant
// whitespace, and numbers in one spelling (1, 1.0 and 1e0 are 1). Two
// configurations normalize equal when they differ only in key order,
// formatting, format (JSON or YAML), comments, or ignored fields.
func Normalize(data []byte, ignore []Path) ([]byte, error) {
	v, err := parse(data)
	if err != nil {
		return nil, err
	}
	v, err = canonical(v)
	if err != nil {
		return nil, err
	}
	for _, p := range ignore {
		v = drop(v, p)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding the normalized configuration: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Hash is the hex SHA-256 of a normalized configuration.
func Hash(normalized []byte) string {
	sum := sha256.Sum256(normalized)
	return hex.EncodeToString(sum[:])
}

// parse reads JSON when the data is one JSON value, else YAML.
func parse(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	jsonErr := dec.Decode(&v)
	if jsonErr == nil {
		if _, err := dec.Token(); err == io.EOF {
			return v, nil
		}
		jsonErr = errors.New("more than one JSON value")
	}
	ydec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for range 10000 { // bounded: a document per iteration
		var d any
		err := ydec.Decode(&d)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parsing the configuration: not JSON (%v) nor YAML (%w)", jsonErr, err)
		}
		docs = append(docs, d)
	}
	switch len(docs) {
	case 0:
		return nil, errors.New("parsing the configuration: it is empty")
	case 1:
		return docs[0], nil
	default:
		out := make([]any, len(docs))
		copy(out, docs)
		return out, nil
	}
}

// canonical rewrites a parsed value into JSON-encodable values with one
// spelling per number: map[string]any, []any, string, bool, nil and
// json.Number.
func canonical(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := canonical(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any: // YAML with non-string keys
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := canonical(e)
			if err != nil {
				return nil, err
			}
			ks := fmt.Sprint(k)
			if _, dup := out[ks]; dup {
				return nil, fmt.Errorf("two keys of one map both read %q", ks)
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := canonical(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case json.Number:
		return number(string(x))
	case int:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), nil
	case float64:
		return floatNumber(x)
	case time.Time: // a YAML timestamp
		return x.UTC().Format(time.RFC3339Nano), nil
	default:
		return nil, fmt.Errorf("a value of unexpected type %T", v)
	}
}

// number spells a JSON number canonically: integers as integers, others
// as the shortest float that reads back the same.
func number(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return json.Number(strconv.FormatInt(i, 10)), nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return json.Number(strconv.FormatUint(u, 10)), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("the number %q: %w", s, err)
	}
	return floatNumber(f)
}

func floatNumber(f float64) (any, error) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		// YAML's .nan and .inf: no JSON number, keep them distinct.
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	case f == math.Trunc(f) && math.Abs(f) < 1<<53:
		return json.Number(strconv.FormatInt(int64(f), 10)), nil
	default:
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	}
}

// drop removes the fields at p from v (already canonical) and returns v.
func drop(v any, p Path) any {
	if len(p) == 0 {
		return v
	}
	seg, rest := p[0], p[1:]
	switch x := v.(type) {
	case map[string]any:
		keys := []string{seg}
		if seg == "*" {
			keys = keys[:0]
			for k := range x {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			e, ok := x[k]
			if !ok {
				continue
			}
			if len(rest) == 0 {
				delete(x, k)
			} else {
				x[k] = drop(e, rest)
			}
		}
		return x
	case []any:
		if seg == "*" {
			if len(rest) == 0 {
				return []any{}
			}
			for i := range x {
				x[i] = drop(x[i], rest)
			}
			return x
		}
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 || i >= len(x) {
			return x
		}
		if len(rest) == 0 {
			return slices.Delete(x, i, i+1)
		}
		x[i] = drop(x[i], rest)
		return x
	default:
		return v
	}
}
