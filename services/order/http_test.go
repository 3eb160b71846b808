package order

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestBadInput(t *testing.T) {
	e := newEnv(t, envOpt{})
	existing := e.createRide(t)
	rides := e.store.Len()
	idsBefore := e.ids.calls.Load()
	ride := "/v1/rides/" + itoa(existing.ID)
	tests := map[string]struct {
		method, path, body string
		hdr                []string
		code               int
		field              string
		allow              string
	}{
		"Malformed JSON names the body.":             {"POST", "/v1/rides", `{"rider_id": "r1",`, nil, 400, "body", ""},
		"Broken JSON syntax names the body.":         {"POST", "/v1/rides", `{"rider_id" "r1"}`, nil, 400, "body", ""},
		"An empty body names the body.":              {"POST", "/v1/rides", ``, nil, 400, "body", ""},
		"A JSON array names the body.":               {"POST", "/v1/rides", `[1,2]`, nil, 400, "body", ""},
		"Two JSON values name the body.":             {"POST", "/v1/rides", rideBody + rideBody, nil, 400, "body", ""},
		"A missing rider names rider_id.":            {"POST", "/v1/rides", `{"pickup":{"lat":1,"lng":2},"dropoff":{"lat":1,"lng":2}}`, nil, 400, "rider_id", ""},
		"A blank rider names rider_id.":              {"POST", "/v1/rides", `{"rider_id":"  ","pickup":{"lat":1,"lng":2},"dropoff":{"lat":1,"lng":2}}`, nil, 400, "rider_id", ""},
		"A rider id with a control character fails.": {"POST", "/v1/rides", `{"rider_id":"a\u0001","pickup":{"lat":1,"lng":2},"dropoff":{"lat":1,"lng":2}}`, nil, 400, "rider_id", ""},
		"A too long rider id fails.":                 {"POST", "/v1/rides", `{"rider_id":"` + strings.Repeat("x", 200) + `","pickup":{"lat":1,"lng":2},"dropoff":{"lat":1,"lng":2}}`, nil, 400, "rider_id", ""},
		"A missing pickup names pickup.":             {"POST", "/v1/rides", `{"rider_id":"r1","dropoff":{"lat":1,"lng":2}}`, nil, 400, "pickup", ""},
		"A missing dropoff names dropoff.":           {"POST", "/v1/rides", `{"rider_id":"r1","pickup":{"lat":1,"lng":2}}`, nil, 400, "dropoff", ""},
		"A missing latitude names pickup.lat.":       {"POST", "/v1/rides", `{"rider_id":"r1","pickup":{"lng":2},"dropoff":{"lat":1,"lng":2}}`, nil, 400, "pickup.lat", ""},
		"A missing longitude names dropoff.lng.":     {"POST", "/v1/rides", `{"rider_id":"r1","pickup":{"lat":1,"lng":2},"dropoff":{"lat":1}}`, nil, 400, "dropoff.lng", ""},
		"A latitude of 91 names pickup.lat.":         {"POST", "/v1/rides", `{"rider_id":"r1","pickup":{"lat":91,"lng":2},"dropoff":{"lat":1,"lng":2}}`, nil, 400, "pickup.lat", ""},
		"A longitude of -181 names dropoff.lng.":     {"POST", "/v1/rides", `{"rider_id":"r1","pickup":{"lat":1,"lng":2},"dropoff":{"lat":1,"lng":-181}}`, nil, 400, "dropoff.lng", ""},
		"A string latitude names pickup.lat.":        {"POST", "/v1/rides", `{"rider_id":"r1","pickup":{"lat":"north","lng":2},"dropoff":{"lat":1,"lng":2}}`, nil, 400, "pickup.lat", ""},
		"A numeric rider id names rider_id.":         {"POST", "/v1/rides", `{"rider_id":7,"pickup":{"lat":1,"lng":2},"dropoff":{"lat":1,"lng":2}}`, nil, 400, "rider_id", ""},
		"An unknown field is named.":                 {"POST", "/v1/rides", `{"rider_id":"r1","colour":"red","pickup":{"lat":1,"lng":2},"dropoff":{"lat":1,"lng":2}}`, nil, 400, "colour", ""},
		"An oversize body is 413.":                   {"POST", "/v1/rides", `{"rider_id":"` + strings.Repeat("x", 20<<10) + `"}`, nil, 413, "body", ""},
		"A form body is 415.":                        {"POST", "/v1/rides", `rider_id=r1`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "Content-Type", ""},
		"A non-ASCII Idempotency-Key is refused.":    {"POST", "/v1/rides", rideBody, []string{"Idempotency-Key", "clé\x01"}, 400, "Idempotency-Key", ""},
		"A too long Idempotency-Key is refused.":     {"POST", "/v1/rides", rideBody, []string{"Idempotency-Key", strings.Repeat("k", 300)}, 400, "Idempotency-Key", ""},
		"GET on the collection is 405 with Allow.":   {"GET", "/v1/rides", "", nil, 405, "method", "POST"},
		"DELETE on a ride is 405 with Allow.":        {"DELETE", ride, "", nil, 405, "method", "GET, HEAD"},
		"GET on complete is 405 with Allow.":         {"GET", ride + "/complete", "", nil, 405, "method", "POST"},
		"POST on healthz is 405 with Allow.":         {"POST", "/healthz", "", nil, 405, "method", "GET, HEAD"},
		"An unknown path is 404.":                    {"GET", "/v2/rides", "", nil, 404, "path", ""},
		"An unknown action is 404.":                  {"POST", ride + "/teleport", "", nil, 404, "path", ""},
		"An unknown ride is 404.":                    {"GET", "/v1/rides/999999", "", nil, 404, "id", ""},
		"Completing an unknown ride is 404.":         {"POST", "/v1/rides/999999/complete", "", nil, 404, "id", ""},
		"Cancelling an unknown ride is 404.":         {"POST", "/v1/rides/999999/cancel", "", nil, 404, "id", ""},
		"A non-numeric ride id names id.":            {"GET", "/v1/rides/abc", "", nil, 400, "id", ""},
		"A negative ride id names id.":               {"POST", "/v1/rides/-4/start", "", nil, 400, "id", ""},
		"A cancel with an unknown field is refused.": {"POST", ride + "/cancel", `{"why":"late"}`, nil, 400, "why", ""},
		"A cancel with malformed JSON is refused.":   {"POST", ride + "/cancel", `{"reason":`, nil, 400, "body", ""},
		"An oversize cancel body is 413.":            {"POST", ride + "/cancel", `{"reason":"` + strings.Repeat("x", 20<<10) + `"}`, nil, 413, "body", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := e.do(tc.method, tc.path, tc.body, tc.hdr...)
			if w.Code != tc.code {
				t.Fatalf("%d %s; want %d", w.Code, w.Body, tc.code)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q; want application/json", ct)
			}
			var eb errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error == "" {
				t.Fatalf("body %q is not a JSON error (%v)", w.Body, err)
			}
			if eb.Field != tc.field {
				t.Errorf("field %q (%s); want %q", eb.Field, eb.Error, tc.field)
			}
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q; want %q", got, tc.allow)
			}
		})
	}
	// Nothing was half-written by any of them.
	if e.store.Len() != rides || e.ids.calls.Load() != idsBefore {
		t.Errorf("bad input wrote rides (%d → %d) or took ids (%d → %d)", rides, e.store.Len(), idsBefore, e.ids.calls.Load())
	}
	if got, _, _ := e.store.GetRide(t.Context(), existing.ID); got.Version != existing.Version {
		t.Errorf("bad input changed ride %d: version %d → %d", existing.ID, existing.Version, got.Version)
	}
	if got := toFloat64(e.svc.tel.created); got != 1 {
		t.Errorf("orders created = %v; want 1", got)
	}
}

func TestCancelWithAReason(t *testing.T) {
	e := newEnv(t, envOpt{})
	r := e.createRide(t)
	w := e.do("POST", "/v1/rides/"+itoa(r.ID)+"/cancel", `{"reason":"changed my mind"}`, "Content-Type", "application/json")
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got := decodeRide(t, w); got.State != "cancelled" || got.Reason != "changed my mind" {
		t.Fatalf("ride %+v", got)
	}
	if _, held := e.claims.Held(r.DriverID); held {
		t.Error("the driver is still held after the ride was cancelled")
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, envOpt{noRun: true})
	if w := e.do("GET", "/healthz", ""); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), ReasonNotRunning) {
		t.Fatalf("before Run: %d %s", w.Code, w.Body)
	}
	e.run(t)
	for _, m := range []string{"GET", "HEAD"} {
		if w := e.do(m, "/healthz", ""); w.Code != 200 {
			t.Fatalf("%s while running: %d %s", m, w.Code, w.Body)
		}
	}
}

func TestRideJSONCarriesTheIDAsAString(t *testing.T) {
	e := newEnv(t, envOpt{})
	r := e.createRide(t)
	w := e.do("GET", "/v1/rides/"+itoa(r.ID), "")
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if id, ok := raw["id"].(string); !ok || id != itoa(r.ID) {
		t.Fatalf("id = %#v; want the string %q", raw["id"], itoa(r.ID))
	}
	for _, k := range []string{"state", "price", "driver_id", "rider_id", "pickup", "dropoff"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("the ride JSON lacks %q: %s", k, w.Body)
		}
	}
}
