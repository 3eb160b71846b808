package telemetry

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestStatusRecorder(t *testing.T) {
	cases := map[string]struct {
		handler  func(w http.ResponseWriter)
		want     int
		hijacked bool
	}{
		"A handler that writes nothing answered 200.": {func(w http.ResponseWriter) {}, 200, false},
		"The first final status is the one kept.": {func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.WriteHeader(http.StatusOK)
		}, 503, false},
		"A body without a header is a 200.":          {func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, 200, false},
		"An informational status is not the answer.": {func(w http.ResponseWriter) { w.WriteHeader(http.StatusEarlyHints); w.WriteHeader(201) }, 201, false},
		"A hijacked connection without a status is 101.": {func(w http.ResponseWriter) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = c.Close()
			}
		}, 101, true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			done := make(chan *StatusRecorder, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := NewStatusRecorder(w)
				c.handler(rec)
				done <- rec
			}))
			defer srv.Close()
			if resp, err := http.Get(srv.URL); err == nil {
				resp.Body.Close()
			}
			rec := <-done
			if rec.Status() != c.want || rec.Hijacked() != c.hijacked {
				t.Errorf("status %d hijacked %v, want %d %v", rec.Status(), rec.Hijacked(), c.want, c.hijacked)
			}
		})
	}
}
