package report

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// FuzzReportParams sends arbitrary query strings to the report and
// timeseries endpoints: the API must never panic nor answer 5xx (the fake
// history always answers), a 400 must carry the offending param, and a 200
// must be a well-formed report. The seed corpus is in testdata/fuzz.
func FuzzReportParams(f *testing.F) {
	for _, q := range []string{
		"", "month=2026-10", "scope=service&service=order&region=sh-a&from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z",
		"scope=region&region=bj-a&format=csv&limit=1", "month=2026-13", "from=2026-10-01T00:00:00Z", "hours=24&step=60",
		"%zz", "a=1&a=2", "month=0000-01", "from=9999-12-31T23:59:59Z&to=9999-12-31T23:59:59Z",
	} {
		f.Add(q, false)
		f.Add(q, true)
	}
	h, hist, _ := newTestHandler(f, nil)
	withData(hist)
	f.Fuzz(func(t *testing.T, query string, timeseries bool) {
		path := "/api/v1/sla"
		if timeseries {
			path = "/api/v1/sla/timeseries"
		}
		req := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
		req.URL.RawQuery = query
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s?%s = %d %s", path, query, rec.Code, rec.Body)
		case rec.Code == 400:
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Param == "" || e.Error == "" {
				t.Fatalf("%s?%s = 400 %s: no param or message", path, query, rec.Body)
			}
		case rec.Code == 414:
		case rec.Code == 200:
			if rec.Header().Get("Content-Type") == "application/json" {
				var v map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
					t.Fatalf("%s?%s = 200 with invalid JSON: %v", path, query, err)
				}
			}
		default:
			t.Fatalf("%s?%s = %d %s", path, query, rec.Code, rec.Body)
		}
	})
}
