package actuate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/sla/engine"
)

const token = "s3cret"

var table = engine.RouteTable{Version: 7, Regions: map[string]engine.RouteEntry{
	"sh-a": {Weight: 50, Breaker: engine.Closed},
	"sh-b": {Weight: 0, Breaker: engine.Open},
	"bj-a": {Weight: 12.5, Breaker: engine.Recovering},
}}

// fakeGateway answers PUT /admin/routing like a gateway: versioned, with
// the bearer token; fail decides, per attempt (1-based), to answer
// something else instead.
type fakeGateway struct {
	srv      *httptest.Server
	attempts atomic.Int32
	mu       sync.Mutex
	version  int64
	got      []engine.RouteTable
	// fail returns a status to answer with (0: behave), or -1 to drop the
	// connection.
	fail func(attempt int, r *http.Request) int
}

func newFakeGateway(t *testing.T, fail func(attempt int, r *http.Request) int) *fakeGateway {
	t.Helper()
	g := &fakeGateway{fail: fail}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	n := int(g.attempts.Add(1))
	if g.fail != nil {
		switch code := g.fail(n, r); {
		case code == -1:
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
			return
		case code > 0:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"error":"injected %d","field":"regions.sh-b.weight","version":3}`, code)
			return
		}
	}
	if r.Method != http.MethodPut || r.URL.Path != RoutingPath || r.Header.Get("Authorization") != "Bearer "+token ||
		r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, `{"error":"unexpected %s %s auth=%q"}`, r.Method, r.URL.Path, r.Header.Get("Authorization"))
		return
	}
	var tb engine.RouteTable
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tb); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.got = append(g.got, tb)
	applied := tb.Version > g.version
	if applied {
		g.version = tb.Version
	}
	v := g.version
	g.mu.Unlock()
	fmt.Fprintf(w, `{"applied":%t,"version":%d}`, applied, v)
}

func newPusher(t *testing.T, reg prometheus.Registerer, now time.Time, gws ...*fakeGateway) *Pusher {
	t.Helper()
	cfg := Config{Token: token, Timeout: 2 * time.Second, Attempts: 3, BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Registerer: reg, Now: func() time.Time { return now }}
	for i, g := range gws {
		cfg.Gateways = append(cfg.Gateways, Gateway{Region: []string{"sh-a", "sh-b", "bj-a"}[i], URL: g.srv.URL})
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestATableReachesEveryGatewayAndAResendIsHarmless(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Unix(1_800_000_000, 500_000_000)
	gws := []*fakeGateway{newFakeGateway(t, nil), newFakeGateway(t, nil), newFakeGateway(t, nil)}
	p := newPusher(t, reg, now, gws...)
	for range 2 { // the same version twice: the second is a no-op, not an error
		if err := p.Apply(context.Background(), table); err != nil {
			t.Fatal(err)
		}
	}
	for i, g := range gws {
		region := p.cfg.Gateways[i].Region
		if len(g.got) != 2 || g.got[0].Version != 7 || len(g.got[0].Regions) != 3 || g.got[0].Regions["bj-a"] != table.Regions["bj-a"] {
			t.Errorf("gateway %s received %+v, want the table twice", region, g.got)
		}
		if v := testutil.ToFloat64(p.lastSuccess.WithLabelValues(region)); v != 1_800_000_000.5 {
			t.Errorf("last success of %s = %v, want the clock's %v", region, v, 1_800_000_000.5)
		}
		if v := testutil.ToFloat64(p.version.WithLabelValues(region)); v != 7 {
			t.Errorf("pushed version of %s = %v, want 7", region, v)
		}
		if v := testutil.ToFloat64(p.errors.WithLabelValues(region)); v != 0 {
			t.Errorf("push errors of %s = %v, want 0", region, v)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP carpool_engine_push_errors_total Route-table pushes to a region's gateway that failed after every retry (a network error, a timeout, a 5xx, or a rejection such as a 401 or 400).
# TYPE carpool_engine_push_errors_total counter
carpool_engine_push_errors_total{gateway="bj-a"} 0
carpool_engine_push_errors_total{gateway="sh-a"} 0
carpool_engine_push_errors_total{gateway="sh-b"} 0
`), "carpool_engine_push_errors_total"); err != nil {
		t.Error(err)
	}
}

func TestRetriesAndFailures(t *testing.T) {
	tests := map[string]struct {
		fail         func(attempt int, r *http.Request) int
		wantAttempts int
		wantErr      string // "" for success
	}{
		"Two 503s then a success is a success on the third attempt.": {
			fail:         func(n int, _ *http.Request) int { return map[bool]int{true: 503}[n <= 2] },
			wantAttempts: 3,
		},
		"A dropped connection is retried.": {
			fail:         func(n int, _ *http.Request) int { return map[bool]int{true: -1}[n == 1] },
			wantAttempts: 2,
		},
		"A 429 is retried.": {
			fail:         func(n int, _ *http.Request) int { return map[bool]int{true: 429}[n == 1] },
			wantAttempts: 2,
		},
		"A gateway that always answers 500 fails after every attempt.": {
			fail:         func(int, *http.Request) int { return 500 },
			wantAttempts: 3,
			wantErr:      "failed after 3 attempt(s): status 500: injected 500",
		},
		"A 400 is not retried and names the field.": {
			fail:         func(int, *http.Request) int { return 400 },
			wantAttempts: 1,
			wantErr:      "status 400: injected 400 (field regions.sh-b.weight)",
		},
		"A 401 is not retried and says to check the token.": {
			fail:         func(int, *http.Request) int { return 401 },
			wantAttempts: 1,
			wantErr:      "check --admin-token-file",
		},
		"A 404 says the admin API is off.": {
			fail:         func(int, *http.Request) int { return 404 },
			wantAttempts: 1,
			wantErr:      "routing admin API is off",
		},
		"A stale-version conflict (409) counts as done.": {
			fail:         func(int, *http.Request) int { return 409 },
			wantAttempts: 1,
		},
		"A 200 that is not a gateway's answer is an error.": {
			fail: func(int, *http.Request) int { return 0 },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var g *fakeGateway
			if strings.HasPrefix(name, "A 200 that is not") {
				g = &fakeGateway{}
				g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					g.attempts.Add(1)
					fmt.Fprint(w, `<html>welcome</html>`)
				}))
				t.Cleanup(g.srv.Close)
				tc.wantAttempts, tc.wantErr = 1, "without a routing answer"
			} else {
				g = newFakeGateway(t, tc.fail)
			}
			p := newPusher(t, prometheus.NewRegistry(), time.Unix(1_800_000_000, 0), g)
			err := p.Apply(context.Background(), table)
			if got := int(g.attempts.Load()); got != tc.wantAttempts {
				t.Errorf("%d attempts, want %d", got, tc.wantAttempts)
			}
			errs := testutil.ToFloat64(p.errors.WithLabelValues("sh-a"))
			last := testutil.ToFloat64(p.lastSuccess.WithLabelValues("sh-a"))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Apply = %v, want success", err)
				}
				if errs != 0 || last != 1_800_000_000 {
					t.Errorf("errors %v, last success %v; want 0 and the clock", errs, last)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "gateway sh-a") {
				t.Fatalf("Apply = %v, want an error naming gateway sh-a and containing %q", err, tc.wantErr)
			}
			if errs != 1 || last != 0 {
				t.Errorf("errors %v, last success %v; want 1 and unset", errs, last)
			}
		})
	}
}

func TestASlowAttemptIsCutAtTheTimeoutAndRetried(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	g := newFakeGateway(t, func(n int, r *http.Request) int {
		if n == 1 {
			// Read the body so the server notices the client hanging up.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-release:
			case <-time.After(10 * time.Second):
			}
			return 503
		}
		return 0
	})
	p := newPusher(t, nil, time.Now(), g)
	p.cfg.Timeout = 50 * time.Millisecond
	start := time.Now()
	if err := p.Apply(context.Background(), table); err != nil {
		t.Fatalf("Apply = %v, want success on the second attempt", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s; the first attempt was not cut at the 50ms timeout", d)
	}
	if n := g.attempts.Load(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

func TestGatewaysArePushedAtOnceAndOneFailureDoesNotStopTheOthers(t *testing.T) {
	var arrived sync.WaitGroup
	arrived.Add(3)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	wait := func(n int, _ *http.Request) int {
		if n == 1 {
			arrived.Done()
			select {
			case <-all:
			case <-time.After(5 * time.Second):
				return 504 // the pushes were not concurrent
			}
		}
		return 0
	}
	bad := newFakeGateway(t, func(n int, r *http.Request) int {
		wait(n, r)
		return 400
	})
	a, c := newFakeGateway(t, wait), newFakeGateway(t, wait)
	p := newPusher(t, nil, time.Now(), a, bad, c)
	err := p.Apply(context.Background(), table)
	if err == nil || !strings.Contains(err.Error(), "gateway sh-b") || strings.Contains(err.Error(), "gateway sh-a") || strings.Contains(err.Error(), "gateway bj-a") {
		t.Fatalf("Apply = %v, want an error for sh-b only", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 400 {
		t.Errorf("the error does not carry the gateway's status: %v", err)
	}
	for _, g := range []*fakeGateway{a, c} {
		if len(g.got) != 1 || g.got[0].Version != 7 {
			t.Errorf("a healthy gateway received %+v (were the pushes concurrent?)", g.got)
		}
	}
}

func TestACancelledContextStopsRetrying(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := newFakeGateway(t, func(int, *http.Request) int { cancel(); return 503 })
	p := newPusher(t, nil, time.Now(), g)
	p.cfg.Attempts = 100
	if err := p.Apply(ctx, table); err == nil {
		t.Fatal("Apply succeeded on a cancelled context")
	}
	if n := g.attempts.Load(); n != 1 {
		t.Errorf("%d attempts after the cancel, want 1", n)
	}
}

func TestConfigValidation(t *testing.T) {
	gw := []Gateway{{Region: "sh-a", URL: "http://127.0.0.1:1"}}
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"No gateway says which flag to give.":          {Config{Token: token}, "--gateway region=URL"},
		"A gateway without a region is named.":         {Config{Token: token, Gateways: []Gateway{{URL: "http://x:1"}}}, "Gateways[0] has no region"},
		"A gateway listed twice is named.":             {Config{Token: token, Gateways: append(gw, gw[0])}, "gateway sh-a is listed twice"},
		"A relative URL shows the form to write.":      {Config{Token: token, Gateways: []Gateway{{Region: "sh-a", URL: "127.0.0.1:1"}}}, "sh-a=http://127.0.0.1:18105"},
		"No token says where it comes from.":           {Config{Gateways: gw}, "--admin-token-file"},
		"A negative timeout names the field.":          {Config{Token: token, Gateways: gw, Timeout: -1}, "Timeout is -1ns"},
		"A negative attempt count names the field.":    {Config{Token: token, Gateways: gw, Attempts: -2}, "Attempts is -2"},
		"A first backoff above the longest is caught.": {Config{Token: token, Gateways: gw, BackoffInitial: 2 * time.Second, BackoffMax: time.Second}, "above BackoffMax"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	p, err := New(Config{Token: token, Gateways: gw})
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.Timeout != DefaultTimeout || p.cfg.Attempts != DefaultAttempts || p.cfg.BackoffInitial != DefaultBackoffInitial || p.cfg.BackoffMax != DefaultBackoffMax {
		t.Errorf("defaults: %+v", p.cfg)
	}
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) (Config, error) {
		var f Flags
		fs := pflag.NewFlagSet("engine", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.Register(fs)
		if err := fs.Parse(args); err != nil {
			return Config{}, err
		}
		return f.Config()
	}
	cfg, err := parse("--gateway", "sh-a=http://127.0.0.1:18105", "--gateway", "sh-b = http://127.0.0.1:18115/", "--admin-token-file", tokenFile, "--push-timeout", "750ms")
	if err != nil {
		t.Fatal(err)
	}
	want := []Gateway{{"sh-a", "http://127.0.0.1:18105"}, {"sh-b", "http://127.0.0.1:18115/"}}
	if len(cfg.Gateways) != 2 || cfg.Gateways[0] != want[0] || cfg.Gateways[1] != want[1] || cfg.Token != token || cfg.Timeout != 750*time.Millisecond || cfg.Attempts != DefaultAttempts {
		t.Errorf("flags gave %+v", cfg)
	}
	if _, err := New(cfg); err != nil {
		t.Errorf("the flags' config does not validate: %v", err)
	}
	bad := map[string]struct {
		args []string
		want string
	}{
		"A gateway without = shows the form.":      {[]string{"--gateway", "http://x:1", "--admin-token-file", tokenFile}, "write region=URL"},
		"A gateway without a token file is named.": {[]string{"--gateway", "sh-a=http://x:1"}, "--admin-token-file is required"},
		"A missing token file is named.":           {[]string{"--gateway", "sh-a=http://x:1", "--admin-token-file", filepath.Join(dir, "nope")}, "--admin-token-file: open"},
		"An empty token file is named.":            {[]string{"--gateway", "sh-a=http://x:1", "--admin-token-file", empty}, "is empty"},
		"Zero attempts is named.":                  {[]string{"--push-attempts", "0"}, "--push-attempts is 0"},
		"A zero timeout is named.":                 {[]string{"--push-timeout", "0s"}, "--push-timeout is 0s"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("flags %v: %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}
