package location

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Position is one driver's reported location. It is the WebSocket message a
// driver sends, the payload of a stream entry and the input of the Index.
//
// On the wire ts is an RFC 3339 time ("2026-11-25T10:00:00.123Z"); the
// server also accepts an integer number of Unix milliseconds.
type Position struct {
	DriverID string    `json:"driver_id"`
	Lat      float64   `json:"lat"`
	Lng      float64   `json:"lng"`
	TS       time.Time `json:"ts"`
	// TraceParent is the W3C traceparent of the span that produced the
	// position; the consumer's span continues that trace.
	TraceParent string `json:"traceparent,omitempty"`
}

// LatLng is a point in degrees (WGS 84).
type LatLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// At returns the position's point.
func (p Position) At() LatLng { return LatLng{Lat: p.Lat, Lng: p.Lng} }

// maxDriverIDLen bounds a driver id.
const maxDriverIDLen = 64

// FieldError is a rejected message's reason, naming the offending field
// (empty when the message as a whole is wrong). It is what the server sends
// back to the driver, as JSON {"error": "...", "field": "..."}.
type FieldError struct {
	Field string `json:"field"`
	Msg   string `json:"error"`
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// validDriverID checks a driver id: 1 to 64 characters of letters, digits
// and . _ : -.
func validDriverID(id string) *FieldError {
	if id == "" {
		return fieldErr("driver_id", "is required (in the driver_id query parameter or in the message)")
	}
	if len(id) > maxDriverIDLen {
		return fieldErr("driver_id", "is %d characters long; at most %d are allowed", len(id), maxDriverIDLen)
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return fieldErr("driver_id", "may hold only letters, digits and . _ : -")
		}
	}
	return nil
}

// wireMessage is a position message as decoded from JSON; pointers tell a
// missing field from a zero one.
type wireMessage struct {
	DriverID    *string         `json:"driver_id"`
	Lat         *float64        `json:"lat"`
	Lng         *float64        `json:"lng"`
	TS          json.RawMessage `json:"ts"`
	TraceParent *string         `json:"traceparent"`
}

// decodeLimits are the checks decodePosition applies.
type decodeLimits struct {
	now      time.Time
	maxAhead time.Duration // a ts later than now+maxAhead is rejected
	maxAge   time.Duration // a ts earlier than now-maxAge is stale
}

// errStale marks a well-formed position too old to be worth publishing.
var errStale = errors.New("position is stale")

// decodePosition parses and validates one message. bound is the driver the
// connection belongs to ("" while unknown). It returns a *FieldError for a
// bad message and errStale for a valid but stale one.
func decodePosition(data []byte, bound string, lim decodeLimits) (Position, error) {
	var w wireMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Position{}, jsonFieldError(err)
	}
	if dec.More() {
		return Position{}, fieldErr("", "a message holds exactly one JSON object")
	}
	var p Position
	switch {
	case w.DriverID == nil || *w.DriverID == "":
		if bound == "" {
			return Position{}, validDriverID("")
		}
		p.DriverID = bound
	default:
		if fe := validDriverID(*w.DriverID); fe != nil {
			return Position{}, fe
		}
		if bound != "" && *w.DriverID != bound {
			return Position{}, fieldErr("driver_id", "this connection streams driver %q; open another connection for %q", bound, *w.DriverID)
		}
		p.DriverID = *w.DriverID
	}
	if w.Lat == nil {
		return Position{}, fieldErr("lat", "is required")
	}
	if *w.Lat < -90 || *w.Lat > 90 {
		return Position{}, fieldErr("lat", "is %g; it must be in [-90, 90]", *w.Lat)
	}
	if w.Lng == nil {
		return Position{}, fieldErr("lng", "is required")
	}
	if *w.Lng < -180 || *w.Lng > 180 {
		return Position{}, fieldErr("lng", "is %g; it must be in [-180, 180]", *w.Lng)
	}
	p.Lat, p.Lng = *w.Lat, *w.Lng
	ts, fe := parseTS(w.TS)
	if fe != nil {
		return Position{}, fe
	}
	if ts.After(lim.now.Add(lim.maxAhead)) {
		return Position{}, fieldErr("ts", "is %s ahead of the server's clock; at most %s is allowed", ts.Sub(lim.now).Round(time.Millisecond), lim.maxAhead)
	}
	p.TS = ts
	if w.TraceParent != nil && *w.TraceParent != "" {
		if !validTraceParent(*w.TraceParent) {
			return Position{}, fieldErr("traceparent", "is not a W3C traceparent (00-<32 hex trace id>-<16 hex span id>-<2 hex flags>)")
		}
		p.TraceParent = *w.TraceParent
	}
	if lim.maxAge > 0 && ts.Before(lim.now.Add(-lim.maxAge)) {
		return p, errStale
	}
	return p, nil
}

// parseTS reads ts as an RFC 3339 string or integer Unix milliseconds.
func parseTS(raw json.RawMessage) (time.Time, *FieldError) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, fieldErr("ts", "is required (RFC 3339 time or Unix milliseconds)")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fieldErr("ts", "is not a string")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fieldErr("ts", "%q is not an RFC 3339 time such as 2026-11-25T10:00:00Z", s)
		}
		return t, nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, fieldErr("ts", "is neither an RFC 3339 time nor positive integer Unix milliseconds")
	}
	return time.UnixMilli(ms), nil
}

// validTraceParent reports whether s is a W3C traceparent with a valid
// trace and span id.
func validTraceParent(s string) bool {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": s})
	return trace.SpanContextFromContext(ctx).IsValid()
}

// jsonFieldError turns an encoding/json error into a FieldError naming the
// field where it can.
func jsonFieldError(err error) *FieldError {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fieldErr("", "a message is a JSON object such as {\"driver_id\":\"d1\",\"lat\":52.5,\"lng\":13.4,\"ts\":\"2026-11-25T10:00:00Z\"}")
		}
		return fieldErr(field, "has the wrong type (%s)", typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fieldErr("", "malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return fieldErr(name, "is not a position field (driver_id, lat, lng, ts, traceparent)")
	default:
		return fieldErr("", "malformed JSON: %v", err)
	}
}

// haversineMeters is the great-circle distance between a and b.
func haversineMeters(a, b LatLng) float64 {
	const r = 6371008.8 // mean Earth radius, metres
	φ1, φ2 := a.Lat*math.Pi/180, b.Lat*math.Pi/180
	dφ := φ2 - φ1
	dλ := (b.Lng - a.Lng) * math.Pi / 180
	h := math.Sin(dφ/2)*math.Sin(dφ/2) + math.Cos(φ1)*math.Cos(φ2)*math.Sin(dλ/2)*math.Sin(dλ/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}
