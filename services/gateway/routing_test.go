package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

func TestAdminRoutingAuth(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b"}, nil)
	table := `{"version":1,"regions":{"a":{"weight":50,"breaker":"closed"}}}`
	for sentence, tc := range map[string]struct {
		auth string
		want int
	}{
		"A push without a token is 401.":          {auth: "", want: 401},
		"A push with a wrong token is 401.":       {auth: "Bearer nope", want: 401},
		"A push with a non-bearer scheme is 401.": {auth: "Basic " + testToken, want: 401},
		"A push with the token is applied.":       {auth: "Bearer " + testToken, want: 200},
	} {
		t.Run(sentence, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPut, tg.srv.URL+"/admin/routing", strings.NewReader(table))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := tg.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	if tg.Status().Version != 1 {
		t.Fatal("an unauthenticated push changed the table")
	}
}

func TestAdminRoutingDisabledWithoutToken(t *testing.T) {
	tg := newTestGateway(t, []string{"a"}, func(c *Config) { c.AdminToken = "" })
	req, _ := http.NewRequest(http.MethodPut, tg.srv.URL+"/admin/routing", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer ")
	resp, err := tg.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d with the admin API disabled, want 404", resp.StatusCode)
	}
}

func TestAdminRoutingVersioning(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b"}, nil)
	steps := []struct {
		table       string
		wantApplied bool
		wantVersion float64
		wantWeightA float64
	}{
		{`{"version":5,"regions":{"a":{"weight":50,"breaker":"closed"}}}`, true, 5, 50},
		{`{"version":5,"regions":{"a":{"weight":10,"breaker":"closed"}}}`, false, 5, 50},
		{`{"version":4,"regions":{"a":{"weight":10,"breaker":"closed"}}}`, false, 5, 50},
		{`{"version":6,"regions":{"a":{"weight":12.5,"breaker":"recovering"}}}`, true, 6, 12.5},
		{`{"version":6,"regions":{"a":{"weight":12.5,"breaker":"recovering"}}}`, false, 6, 12.5},
	}
	for i, s := range steps {
		code, out := tg.push(t, s.table)
		if code != 200 || out["applied"] != s.wantApplied || out["version"] != s.wantVersion {
			t.Fatalf("step %d: %d %v, want applied=%v version=%v", i, code, out, s.wantApplied, s.wantVersion)
		}
		if w := tg.Status().Regions["a"].Weight; w != s.wantWeightA {
			t.Fatalf("step %d: weight of a %v, want %v", i, w, s.wantWeightA)
		}
	}
	st := tg.Status()
	if st.Regions["a"].Breaker != BreakerRecovering || st.Regions["b"].Weight != 1 || st.Regions["b"].Breaker != BreakerClosed {
		t.Fatalf("status %+v: a recovering, b untouched (weight 1, closed)", st.Regions)
	}
	if got := counter(tg.m.updates.WithLabelValues("a", catalog.RoutingSourcePush, catalog.RoutingStale)); got != 3 {
		t.Fatalf("%v stale pushes counted, want 3", got)
	}
	if got := counter(tg.m.version.WithLabelValues("a")); got != 6 {
		t.Fatalf("carpool_gateway_routing_version = %v, want 6", got)
	}
	if got := counter(tg.byName["a"].routeWeight); got != 12.5 {
		t.Fatalf("carpool_gateway_route_weight{target=a} = %v, want 12.5", got)
	}
}

func TestAdminRoutingBadInput(t *testing.T) {
	tg := newTestGateway(t, []string{"sh-a", "sh-b"}, nil)
	for sentence, tc := range map[string]struct {
		body, field string
	}{
		"Malformed JSON names the body.":                      {`{"version":`, "body"},
		"A JSON array names the body.":                        {`[1]`, "body"},
		"A missing version is named.":                         {`{"regions":{"sh-a":{"weight":1,"breaker":"closed"}}}`, "version"},
		"A negative version is named.":                        {`{"version":-1,"regions":{"sh-a":{"weight":1,"breaker":"closed"}}}`, "version"},
		"A fractional version is named.":                      {`{"version":1.5,"regions":{"sh-a":{"weight":1,"breaker":"closed"}}}`, "version"},
		"A string version is named.":                          {`{"version":"2","regions":{"sh-a":{"weight":1,"breaker":"closed"}}}`, "version"},
		"Missing regions are named.":                          {`{"version":2}`, "regions"},
		"Empty regions are named.":                            {`{"version":2,"regions":{}}`, "regions"},
		"An unknown top-level field is named.":                {`{"version":2,"regions":{"sh-a":{"weight":1,"breaker":"closed"}},"extra":1}`, "extra"},
		"An unknown region is named.":                         {`{"version":2,"regions":{"mars":{"weight":1,"breaker":"closed"}}}`, "regions.mars"},
		"A region that is not an object is named.":            {`{"version":2,"regions":{"sh-a":3}}`, "regions.sh-a"},
		"A missing weight is named.":                          {`{"version":2,"regions":{"sh-a":{"breaker":"closed"}}}`, "regions.sh-a.weight"},
		"A negative weight is named.":                         {`{"version":2,"regions":{"sh-a":{"weight":-1,"breaker":"closed"}}}`, "regions.sh-a.weight"},
		"A weight above the maximum is named.":                {`{"version":2,"regions":{"sh-a":{"weight":10001,"breaker":"closed"}}}`, "regions.sh-a.weight"},
		"A string weight is named.":                           {`{"version":2,"regions":{"sh-a":{"weight":"5","breaker":"closed"}}}`, "regions.sh-a.weight"},
		"A missing breaker is named.":                         {`{"version":2,"regions":{"sh-a":{"weight":1}}}`, "regions.sh-a.breaker"},
		"An unknown breaker state is named.":                  {`{"version":2,"regions":{"sh-a":{"weight":1,"breaker":"half-open"}}}`, "regions.sh-a.breaker"},
		"An unknown region field is named.":                   {`{"version":2,"regions":{"sh-a":{"weight":1,"breaker":"open","color":"red"}}}`, "regions.sh-a.color"},
		"A bad second region rejects the whole table.":        {`{"version":2,"regions":{"sh-a":{"weight":9,"breaker":"open"},"sh-b":{"weight":1,"breaker":"shut"}}}`, "regions.sh-b.breaker"},
		"An oversize body is named (and answered 413 below).": {`{"version":2,"regions":{"sh-a":{"weight":1,"breaker":"closed"}},"pad":"` + strings.Repeat("x", maxAdminBody) + `"}`, "body"},
	} {
		t.Run(sentence, func(t *testing.T) {
			code, out := tg.push(t, tc.body)
			if code != 400 && code != 413 {
				t.Fatalf("status %d, want 400 (or 413 for size)", code)
			}
			if out["field"] != tc.field {
				t.Fatalf("field %v, want %q (error %v)", out["field"], tc.field, out["error"])
			}
			if msg, _ := out["error"].(string); msg == "" {
				t.Fatal("no error message")
			}
		})
	}
	st := tg.Status()
	if st.Version != 0 || st.Regions["sh-a"].Breaker != BreakerClosed || st.Regions["sh-a"].Weight != 1 {
		t.Fatalf("bad input changed the table: %+v", st)
	}
}

func TestAdminRoutingMethodsAndStatus(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b"}, nil)
	tg.push(t, `{"version":3,"regions":{"b":{"weight":7,"breaker":"open"}}}`)
	for method, want := range map[string]int{"GET": 200, "POST": 405, "DELETE": 405} {
		req, _ := http.NewRequest(method, tg.srv.URL+"/admin/routing", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := tg.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st Status
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", method, resp.StatusCode, want)
		}
		if method == "GET" && (st.Version != 3 || st.Regions["b"].Breaker != BreakerOpen || st.Regions["b"].Weight != 7 || st.Regions["a"].City != "city-a") {
			t.Fatalf("GET status %+v", st)
		}
	}
}

func TestBreakerOpenRegionReceivesNothing(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b", "c"}, nil)
	tg.push(t, `{"version":1,"regions":{"a":{"weight":100,"breaker":"open"},"b":{"weight":1,"breaker":"closed"},"c":{"weight":1,"breaker":"closed"}}}`)
	// Even when the others fail, retries and panic mode avoid the open region.
	tg.ups["b"].status.Store(http.StatusServiceUnavailable)
	tg.setHealthy("c", false)
	for i := range 50 {
		tg.do(t, "POST", "/v1/rides", map[string]string{HeaderIdempotencyKey: "k"}, "{}")
		if i == 25 {
			tg.setHealthy("b", false) // nothing healthy: panic mode
		}
	}
	if got := tg.ups["a"].hits.Load(); got != 0 {
		t.Fatalf("the open region received %d requests", got)
	}
	// Every breaker open: 503, nothing sent.
	tg.push(t, `{"version":2,"regions":{"b":{"weight":1,"breaker":"open"},"c":{"weight":1,"breaker":"open"}}}`)
	before := tg.ups["b"].hits.Load() + tg.ups["c"].hits.Load()
	resp, body := tg.do(t, "GET", "/v1/rides/1", nil, "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "breaker is open") {
		t.Fatalf("all breakers open: %d %s", resp.StatusCode, body)
	}
	if tg.ups["b"].hits.Load()+tg.ups["c"].hits.Load() != before {
		t.Fatal("traffic sent with every breaker open")
	}
}

// weightsServer serves a routing table for the pull fallback.
type weightsServer struct {
	mu    sync.Mutex
	table string
	auth  string
	pulls int
}

func (w *weightsServer) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pulls++
	w.auth = r.Header.Get("Authorization")
	rw.Header().Set("Content-Type", "application/json")
	_, _ = rw.Write([]byte(w.table))
}

func (w *weightsServer) set(table string) {
	w.mu.Lock()
	w.table = table
	w.mu.Unlock()
}

func (w *weightsServer) count() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pulls, w.auth
}

func TestPullFallbackWhenPushesStop(t *testing.T) {
	ws := &weightsServer{table: `{"version":2,"regions":{"b":{"weight":30,"breaker":"open"}}}`}
	src := httptest.NewServer(ws)
	defer src.Close()
	ticks := make(chan time.Time)
	tg := newTestGateway(t, []string{"a", "b"}, func(c *Config) {
		c.WeightsURL = src.URL
		c.PullInterval = 5 * time.Second
		c.PushStaleAfter = 15 * time.Second
		c.NewTicker = func(d time.Duration) Ticker {
			if d == c.PullInterval {
				return &fakeTicker{c: ticks}
			}
			return &fakeTicker{c: make(chan time.Time)} // probes never tick here
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	waitVersion := func(v int64) {
		t.Helper()
		realserver.WaitFor(t, 5*time.Second, fmt.Sprintf("routing version %d", v), func() (bool, error) {
			return tg.Status().Version == v, nil
		})
	}
	// No push yet: Run pulls at once.
	waitVersion(2)
	if _, auth := ws.count(); auth != "Bearer "+testToken {
		t.Fatalf("pull sent Authorization %q", auth)
	}
	// A push arrives; while pushes are fresh the gateway does not pull.
	tg.push(t, `{"version":3,"regions":{"b":{"weight":1,"breaker":"closed"}}}`)
	ws.set(`{"version":4,"regions":{"b":{"weight":40,"breaker":"recovering"}}}`)
	pulls, _ := ws.count()
	tg.clock.Advance(10 * time.Second)
	ticks <- time.Now()
	ticks <- time.Now() // the second send returns once the first tick is handled
	if n, _ := ws.count(); n != pulls || tg.Status().Version != 3 {
		t.Fatalf("pulled (%d→%d, version %d) while pushes were fresh", pulls, n, tg.Status().Version)
	}
	// Pushes stop for 15 s: the next tick pulls.
	tg.clock.Advance(6 * time.Second)
	ticks <- time.Now()
	waitVersion(4)
	if st := tg.Status().Regions["b"]; st.Weight != 40 || st.Breaker != BreakerRecovering {
		t.Fatalf("pulled table not applied: %+v", st)
	}
	if got := counter(tg.m.updates.WithLabelValues("a", catalog.RoutingSourcePull, catalog.RoutingApplied)); got != 2 {
		t.Fatalf("%v pulls applied, want 2", got)
	}
	// A broken source keeps the applied table.
	ws.set(`{"version":"x"}`)
	ticks <- time.Now()
	ticks <- time.Now()
	if tg.Status().Version != 4 {
		t.Fatal("an invalid pulled table changed the routing")
	}
}
