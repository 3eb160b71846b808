package drill

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/gateway"
)

func TestParseEngineStatus(t *testing.T) {
	h := 42.5
	cases := map[string]struct {
		body string
		want map[string]EngineRegion
		err  string
	}{
		"Regions keyed by name, with health.": {`{"regions":{"sh-a":{"breaker":"open","health":42.5},"sh-b":{"breaker":"closed"}}}`,
			map[string]EngineRegion{"sh-a": {Breaker: "open", Health: &h}, "sh-b": {Breaker: "closed"}}, ""},
		"A list naming each region, with state and health_score.": {`{"at":"x","regions":[{"region":"sh-a","state":"recovering","health_score":42.5},{"name":"sh-b","breaker":"closed"}]}`,
			map[string]EngineRegion{"sh-a": {Breaker: "recovering", Health: &h}, "sh-b": {Breaker: "closed"}}, ""},
		"sla/engine's status: a list with unknown (null) numbers.": {`{"tick":"t","regions":[{"region":"sh-a","health":null,"latency_p99_seconds":0.5,"breaker":"closed"}],"global":{}}`,
			map[string]EngineRegion{"sh-a": {Breaker: "closed"}}, ""},
		"A breaker given as an object with its state.": {`{"regions":{"sh-a":{"breaker":{"state":"open","since":"t"}}}}`,
			map[string]EngineRegion{"sh-a": {Breaker: "open"}}, ""},
		"No regions is an error.":             {`{"status":"ok"}`, nil, `no "regions"`},
		"A region without a breaker is named": {`{"regions":{"sh-a":{"health":3}}}`, nil, "sh-a has no breaker state"},
		"A nameless list entry is an error.":  {`{"regions":[{"breaker":"open"}]}`, nil, `neither "region" nor "name"`},
		"Not JSON is an error.":               {`<html>`, nil, "not a JSON object"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := parseEngineStatus([]byte(c.body))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error containing %q", err, c.err)
				}
				return
			}
			if err != nil || len(got) != len(c.want) {
				t.Fatalf("got %v %v", got, err)
			}
			for r, w := range c.want {
				g := got[r]
				if g.Breaker != w.Breaker || (g.Health == nil) != (w.Health == nil) || (g.Health != nil && *g.Health != *w.Health) {
					t.Errorf("%s: %+v, want %+v", r, g, w)
				}
				if r == "sh-a" && strings.Contains(c.body, "latency_p99_seconds") && (g.LatencyP99 == nil || *g.LatencyP99 != 0.5) {
					t.Errorf("%s: %+v, want %+v", r, g, w)
				}
			}
		})
	}
}

func TestPairValues(t *testing.T) {
	body := `# HELP carpool_sync_lag_seconds x
# TYPE carpool_sync_lag_seconds gauge
carpool_sync_lag_seconds{source_region="sh-a",target_region="sh-b"} 1.25
carpool_sync_lag_seconds{target_region="bj-a", source_region="sh-a"} 3e-1 1700000000000
carpool_sync_lag_seconds_count{source_region="x",target_region="y"} 9
carpool_sync_lag_seconds{source_region="we\"ird",target_region="sh-b"} 7
carpool_sync_lag_seconds{source_region="sh-b"} 4
carpool_sync_lag_seconds{source_region="sh-b",target_region="sh-a"} NaNx
carpool_rpo_exposure_seconds{source_region="sh-a",target_region="sh-b"} 0.5
`
	got := pairValues([]byte(body), "carpool_sync_lag_seconds")
	want := map[pairKey]float64{{"sh-a", "sh-b"}: 1.25, {"sh-a", "bj-a"}: 0.3, {`we"ird`, "sh-b"}: 7}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%v = %v, want %v", k, got[k], v)
		}
	}
	if exp := pairValues([]byte(body), "carpool_rpo_exposure_seconds"); exp[pairKey{"sh-a", "sh-b"}] != 0.5 || len(exp) != 1 {
		t.Errorf("exposure %v", exp)
	}
}

// TestPollerReadsGatewaysAndEngine polls fake gateways and an engine over
// HTTP, with the token, and keeps what answered.
func TestPollerReadsGatewaysAndEngine(t *testing.T) {
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"missing or wrong bearer token"}`))
				return
			}
			h(w, r)
		}
	}
	gw := httptest.NewServer(auth(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/routing" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(gateway.Status{Region: "sh-a", Regions: map[string]gateway.RegionStatus{"sh-a": healthy}})
	}))
	defer gw.Close()
	eng := httptest.NewServer(auth(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"regions":{"sh-a":{"breaker":"closed"}}}`))
	}))
	defer eng.Close()
	p := &poller{http: http.DefaultClient, token: "tok", engine: eng.URL, poll: 10 * time.Millisecond, mpoll: time.Hour, now: time.Now,
		gateways: map[string]string{"sh-a": gw.URL, "sh-b": "http://127.0.0.1:1"}, metrics: map[string]string{}, errs: map[string]string{}}
	p.pollControl(context.Background())
	s, ok := p.latest()
	if !ok || s.Gateways["sh-a"].Region != "sh-a" || s.Engine["sh-a"].Breaker != "closed" {
		t.Fatalf("sample %+v", s)
	}
	if _, read := s.Gateways["sh-b"]; read {
		t.Fatal("an unreachable gateway has a status")
	}
	if e := p.lastErrors()["gateway sh-b"]; !strings.Contains(e, "127.0.0.1:1") {
		t.Errorf("the unreachable gateway's error: %q", e)
	}
	p.token = "wrong"
	p.pollControl(context.Background())
	if e := p.lastErrors()["gateway sh-a"]; !strings.Contains(e, "--admin-token-file") {
		t.Errorf("a refused token: %q", e)
	}
}
