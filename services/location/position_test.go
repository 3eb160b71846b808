package location

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

func TestDecodePosition(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	lim := decodeLimits{now: now, maxAhead: 10 * time.Second, maxAge: 30 * time.Second}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := map[string]struct {
		msg, bound string
		want       Position
		wantField  string // "-" for no error
		stale      bool
	}{
		"A complete message with an RFC 3339 ts is accepted.": {
			msg: `{"driver_id":"d1","lat":52.5,"lng":13.4,"ts":"2026-11-25T09:59:59Z"}`, wantField: "-",
			want: Position{DriverID: "d1", Lat: 52.5, Lng: 13.4, TS: now.Add(-time.Second)},
		},
		"A ts in Unix milliseconds is accepted.": {
			msg: fmt.Sprintf(`{"driver_id":"d1","lat":0,"lng":0,"ts":%d}`, now.UnixMilli()-1500), wantField: "-",
			want: Position{DriverID: "d1", TS: now.Add(-1500 * time.Millisecond)},
		},
		"A message without driver_id takes the connection's driver.": {
			msg: `{"lat":1,"lng":2,"ts":"2026-11-25T10:00:00Z"}`, bound: "d9", wantField: "-",
			want: Position{DriverID: "d9", Lat: 1, Lng: 2, TS: now},
		},
		"A traceparent is kept.": {
			msg: `{"driver_id":"d1","lat":1,"lng":2,"ts":"2026-11-25T10:00:00Z","traceparent":"` + tp + `"}`, wantField: "-",
			want: Position{DriverID: "d1", Lat: 1, Lng: 2, TS: now, TraceParent: tp},
		},
		"A message without driver_id on an anonymous connection names driver_id.": {
			msg: `{"lat":1,"lng":2,"ts":"2026-11-25T10:00:00Z"}`, wantField: "driver_id",
		},
		"Another driver's position on a bound connection names driver_id.": {
			msg: `{"driver_id":"d2","lat":1,"lng":2,"ts":"2026-11-25T10:00:00Z"}`, bound: "d1", wantField: "driver_id",
		},
		"A driver id with a space names driver_id.": {
			msg: `{"driver_id":"d 1","lat":1,"lng":2,"ts":"2026-11-25T10:00:00Z"}`, wantField: "driver_id",
		},
		"A missing lat names lat.": {
			msg: `{"driver_id":"d1","lng":2,"ts":"2026-11-25T10:00:00Z"}`, wantField: "lat",
		},
		"A lat above 90 names lat.": {
			msg: `{"driver_id":"d1","lat":91,"lng":2,"ts":"2026-11-25T10:00:00Z"}`, wantField: "lat",
		},
		"A lng below -180 names lng.": {
			msg: `{"driver_id":"d1","lat":1,"lng":-180.5,"ts":"2026-11-25T10:00:00Z"}`, wantField: "lng",
		},
		"A string lat names lat.": {
			msg: `{"driver_id":"d1","lat":"52","lng":2,"ts":"2026-11-25T10:00:00Z"}`, wantField: "lat",
		},
		"A missing ts names ts.": {
			msg: `{"driver_id":"d1","lat":1,"lng":2}`, wantField: "ts",
		},
		"A ts that is not a time names ts.": {
			msg: `{"driver_id":"d1","lat":1,"lng":2,"ts":"yesterday"}`, wantField: "ts",
		},
		"A ts a minute ahead of the server names ts.": {
			msg: `{"driver_id":"d1","lat":1,"lng":2,"ts":"2026-11-25T10:01:00Z"}`, wantField: "ts",
		},
		"A malformed traceparent names traceparent.": {
			msg: `{"driver_id":"d1","lat":1,"lng":2,"ts":"2026-11-25T10:00:00Z","traceparent":"00-zz-01"}`, wantField: "traceparent",
		},
		"An unknown field is named.": {
			msg: `{"driver_id":"d1","lat":1,"lng":2,"ts":"2026-11-25T10:00:00Z","speed":3}`, wantField: "speed",
		},
		"Malformed JSON names no field.": {
			msg: `{"driver_id":"d1",`, wantField: "",
		},
		"A JSON array names no field.": {
			msg: `[1,2]`, wantField: "",
		},
		"Two objects in one message name no field.": {
			msg: `{"driver_id":"d1","lat":1,"lng":2,"ts":"2026-11-25T10:00:00Z"} {}`, wantField: "",
		},
		"A position older than the allowed age is stale, not bad.": {
			msg: `{"driver_id":"d1","lat":1,"lng":2,"ts":"2026-11-25T09:00:00Z"}`, stale: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := decodePosition([]byte(tc.msg), tc.bound, lim)
			if tc.stale {
				if !errors.Is(err, errStale) {
					t.Fatalf("got %v, want errStale", err)
				}
				return
			}
			var fe *FieldError
			switch {
			case tc.wantField == "-" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.wantField == "-":
				if !got.TS.Equal(tc.want.TS) {
					t.Fatalf("ts = %v, want %v", got.TS, tc.want.TS)
				}
				got.TS = tc.want.TS
				if got != tc.want {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
			case !errors.As(err, &fe):
				t.Fatalf("got %v, want a FieldError on %q", err, tc.wantField)
			case fe.Field != tc.wantField:
				t.Fatalf("field = %q (%s), want %q", fe.Field, fe.Msg, tc.wantField)
			case fe.Msg == "":
				t.Fatal("the error has no message")
			}
		})
	}
}

func TestHaversine(t *testing.T) {
	f := func(a, b LatLng, want, tol float64) {
		t.Helper()
		if got := haversineMeters(a, b); math.Abs(got-want) > tol {
			t.Errorf("distance %v → %v = %.0f m, want %.0f ± %.0f", a, b, got, want, tol)
		}
	}
	f(LatLng{0, 0}, LatLng{0, 0}, 0, 0)
	f(LatLng{0, 0}, LatLng{1, 0}, 111195, 1)                         // one degree of latitude
	f(LatLng{52.5200, 13.4050}, LatLng{48.8566, 2.3522}, 878e3, 3e3) // Berlin–Paris
	f(LatLng{0, 179.9}, LatLng{0, -179.9}, 22239, 1)                 // across the antimeridian
}
