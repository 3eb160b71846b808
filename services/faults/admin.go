package faults

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
)

// maxBody bounds an admin request body.
const maxBody = 64 << 10

// Handler serves the fault admin API for one region:
//
//	GET    /admin/faults  the current faults
//	PUT    /admin/faults  replace them with the JSON State in the body
//	PATCH  /admin/faults  merge the JSON State fields present in the body
//	DELETE /admin/faults  clear every fault
//
// Every call needs "Authorization: Bearer <token>"; an empty token disables
// the API (every call is 404), which is the default.
func Handler(in *Injector, token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			writeJSONError(w, http.StatusNotFound, "the fault admin API is disabled; start the region with an admin token to enable it")
			return
		}
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="carpoolsla-faults"`)
			writeJSONError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		switch r.Method {
		case http.MethodGet:
		case http.MethodPut, http.MethodPatch:
			next := State{}
			if r.Method == http.MethodPatch {
				next = in.State()
			}
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&next); err != nil {
				writeJSONError(w, http.StatusBadRequest, "invalid fault state: "+err.Error())
				return
			}
			if err := in.Set(next); err != nil {
				writeJSONError(w, http.StatusBadRequest, err.Error())
				return
			}
		case http.MethodDelete:
			in.Clear()
		default:
			w.Header().Set("Allow", "GET, PUT, PATCH, DELETE")
			writeJSONError(w, http.StatusMethodNotAllowed, "use GET, PUT, PATCH or DELETE")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(in.State())
	})
}
