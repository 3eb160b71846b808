package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// allToA sends every first attempt to region a while a serves (b weight 0).
const allToA = `{"version":1,"regions":{"a":{"weight":1,"breaker":"closed"},"b":{"weight":0,"breaker":"closed"}}}`

func TestRetries(t *testing.T) {
	for sentence, tc := range map[string]struct {
		breakA     func(*upstream)
		key        bool
		wantCode   int
		wantRegion string
		wantBHits  int64
	}{
		"A 503 with an Idempotency-Key is retried in another region.": {
			breakA: func(u *upstream) { u.status.Store(503) }, key: true, wantCode: 200, wantRegion: "b", wantBHits: 1,
		},
		"A 500 with an Idempotency-Key is retried in another region.": {
			breakA: func(u *upstream) { u.status.Store(500) }, key: true, wantCode: 200, wantRegion: "b", wantBHits: 1,
		},
		"A refused connection with an Idempotency-Key is retried in another region.": {
			breakA: func(u *upstream) { u.srv.Close() }, key: true, wantCode: 200, wantRegion: "b", wantBHits: 1,
		},
		"A timeout with an Idempotency-Key is retried in another region.": {
			breakA: func(u *upstream) { u.delay.Store(int64(5 * time.Second)) }, key: true, wantCode: 200, wantRegion: "b", wantBHits: 1,
		},
		"A 503 without a key is not retried.": {
			breakA: func(u *upstream) { u.status.Store(503) }, wantCode: 503, wantRegion: "a",
		},
		"A refused connection without a key is a 502.": {
			breakA: func(u *upstream) { u.srv.Close() }, wantCode: 502,
		},
		"A timeout without a key is a 504.": {
			breakA: func(u *upstream) { u.delay.Store(int64(5 * time.Second)) }, wantCode: 504,
		},
		"A 4xx is the client's answer and is not retried.": {
			breakA: func(u *upstream) { u.status.Store(409) }, key: true, wantCode: 409, wantRegion: "a",
		},
	} {
		t.Run(sentence, func(t *testing.T) {
			tg := newTestGateway(t, []string{"a", "b"}, func(c *Config) { c.TryTimeout = 200 * time.Millisecond })
			tg.push(t, allToA)
			tc.breakA(tg.ups["a"])
			hdr := map[string]string{"Content-Type": "application/json"}
			if tc.key {
				hdr[HeaderIdempotencyKey] = "ride-42"
			}
			body := `{"rider":"r1","pickup":[1,2]}`
			resp, _ := tg.do(t, "POST", "/v1/rides?src=test", hdr, body)
			if resp.StatusCode != tc.wantCode || resp.Header.Get(HeaderRegion) != tc.wantRegion {
				t.Fatalf("status %d from %q, want %d from %q", resp.StatusCode, resp.Header.Get(HeaderRegion), tc.wantCode, tc.wantRegion)
			}
			b := tg.ups["b"]
			if got := b.hits.Load(); got != tc.wantBHits {
				t.Fatalf("b received %d requests, want %d", got, tc.wantBHits)
			}
			if tc.wantBHits > 0 {
				b.mu.Lock()
				got, key := b.bodies[0], b.headers.Get(HeaderIdempotencyKey)
				b.mu.Unlock()
				if got != body || key != "ride-42" {
					t.Fatalf("the retry carried body %q and key %q, want the original", got, key)
				}
				if n := counter(tg.byName["b"].retries); n != 1 {
					t.Fatalf("carpool_gateway_retries_total{target=b} = %v", n)
				}
			}
		})
	}
}

// TestRegionKilledMidTrafficCostsNoRide kills a region's server while
// riders keep booking with Idempotency-Keys: every request succeeds, the
// dead region is ejected after 5 failures, and retries stay within budget.
func TestRegionKilledMidTrafficCostsNoRide(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b", "c"}, nil)
	var failed, sent atomic.Int64
	var mu sync.Mutex
	var failures []string
	book := func(worker, n int) {
		for i := range n {
			key := fmt.Sprintf("w%d-%d-%d", worker, i, time.Now().UnixNano())
			req, _ := http.NewRequest("POST", tg.srv.URL+"/v1/rides", strings.NewReader(`{"rider":"x"}`))
			req.Header.Set(HeaderIdempotencyKey, key)
			resp, err := tg.srv.Client().Do(req)
			sent.Add(1)
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
				mu.Lock()
				failures = append(failures, fmt.Sprint(err, resp))
				mu.Unlock()
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	}
	run := func(n int) {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() { book(w, n) })
		}
		wg.Wait()
	}
	run(50) // 200 requests of warm traffic over a, b and c
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() { book(w+10, 100) })
	}
	tg.ups["a"].srv.Close() // region a dies mid-traffic
	wg.Wait()
	run(25)

	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d rides failed after region a died: %v", f, sent.Load(), failures)
	}
	if got := counter(tg.byName["a"].ejections); got != 1 {
		t.Fatalf("a ejected %v times, want 1", got)
	}
	retries := counter(tg.byName["b"].retries) + counter(tg.byName["c"].retries)
	if retries < 1 || retries > 0.1*float64(sent.Load()) {
		t.Fatalf("%v retries for %d requests: want at least one and at most 10 %%", retries, sent.Load())
	}
	t.Logf("%d requests, %v retries, 0 failed", sent.Load(), retries)
}

func TestRetryBudgetCapsExtraLoad(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b"}, func(c *Config) { c.Ejection.Disabled = true; c.Retry.MinRetriesPerSecond = -1 })
	tg.push(t, allToA)
	tg.ups["a"].status.Store(503)
	const n = 200
	ok := 0
	for i := range n {
		resp, _ := tg.do(t, "POST", "/v1/rides", map[string]string{HeaderIdempotencyKey: fmt.Sprint(i)}, "{}")
		if resp.StatusCode == 200 {
			ok++
		}
	}
	a, b := tg.ups["a"].hits.Load(), tg.ups["b"].hits.Load()
	if a != n || b != n/10 {
		t.Fatalf("a got %d, b got %d retries for %d requests; want %d and %d (10 %% extra load)", a, b, n, n, n/10)
	}
	if ok != n/10 {
		t.Fatalf("%d requests succeeded, want the %d retried ones", ok, n/10)
	}
	if got := counter(tg.deniedBudget); got != n-n/10 {
		t.Fatalf("carpool_gateway_retries_denied_total{reason=budget} = %v, want %d", got, n-n/10)
	}
}

// At low traffic a region that dies takes its ejection's five failures
// before the gateway stops sending it riders; ten requests a window give the
// ratio alone one retry, so riders failed. The floor retries every one of
// them; without it (MinRetriesPerSecond < 0) most fail.
func TestALowTrafficRegionDyingFailsNoRider(t *testing.T) {
	for _, tc := range []struct {
		floor float64
		ok    int
	}{{0, 5}, {-1, 1}} {
		tg := newTestGateway(t, []string{"a", "b"}, func(c *Config) { c.Retry.MinRetriesPerSecond = tc.floor })
		tg.push(t, allToA)
		tg.ups["a"].status.Store(503)
		ok := 0
		for i := range 5 {
			resp, _ := tg.do(t, "POST", "/v1/rides", map[string]string{HeaderIdempotencyKey: fmt.Sprint("low-", i)}, "{}")
			if resp.StatusCode == 200 {
				ok++
			}
		}
		if ok != tc.ok {
			t.Errorf("MinRetriesPerSecond %v: %d of 5 riders served; want %d", tc.floor, ok, tc.ok)
		}
	}
}

func TestNoRetryWhenNoOtherRegion(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b"}, nil)
	tg.push(t, `{"version":1,"regions":{"b":{"weight":1,"breaker":"open"}}}`)
	tg.ups["a"].status.Store(503)
	resp, _ := tg.do(t, "POST", "/v1/rides", map[string]string{HeaderIdempotencyKey: "k"}, "{}")
	if resp.StatusCode != 503 || tg.ups["b"].hits.Load() != 0 {
		t.Fatalf("status %d, b hits %d: want the 503 and nothing to the open b", resp.StatusCode, tg.ups["b"].hits.Load())
	}
	if got := counter(tg.deniedNoRegion); got != 1 {
		t.Fatalf("retries denied for no region = %v, want 1", got)
	}
}

func TestPayments(t *testing.T) {
	for sentence, tc := range map[string]struct {
		setup    func(tg *testGateway)
		noRider  bool
		wantCode int
	}{
		"A payment runs in the rider's home region even when weights send everything elsewhere.": {
			setup: func(tg *testGateway) {
				tg.push(t, `{"version":1,"regions":{"a":{"weight":100,"breaker":"closed"},"b":{"weight":0,"breaker":"closed"}}}`)
			},
			wantCode: 200,
		},
		"A payment whose home breaker is open is a 409.": {
			setup:    func(tg *testGateway) { tg.push(t, `{"version":1,"regions":{"b":{"weight":1,"breaker":"open"}}}`) },
			wantCode: 409,
		},
		"A payment whose home fails its probes is a 409.": {
			setup:    func(tg *testGateway) { tg.setHealthy("b", false) },
			wantCode: 409,
		},
		"A payment whose home is ejected is a 409.": {
			setup: func(tg *testGateway) {
				tg.mu.Lock()
				tg.byName["b"].out.eject(tg.clock.Now(), tg.cfg.Ejection)
				tg.mu.Unlock()
			},
			wantCode: 409,
		},
		"A payment whose home refuses connections is a 409.": {
			setup:    func(tg *testGateway) { tg.ups["b"].srv.Close() },
			wantCode: 409,
		},
		"A payment failing with a 503 at home is not retried elsewhere.": {
			setup:    func(tg *testGateway) { tg.ups["b"].status.Store(503) },
			wantCode: 503,
		},
		"A payment without a rider id is a 400 naming the header.": {
			noRider: true, wantCode: 400,
		},
	} {
		t.Run(sentence, func(t *testing.T) {
			tg := newTestGateway(t, []string{"a", "b"}, nil)
			rider, unit := riderHomedIn(t, tg.Gateway, "b")
			if tc.setup != nil {
				tc.setup(tg)
			}
			hdr := map[string]string{HeaderIdempotencyKey: "pay-1"}
			if !tc.noRider {
				hdr[HeaderRiderID] = rider
			}
			resp, body := tg.do(t, "POST", "/v1/payments", hdr, `{"ride":"1","amount":12}`)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.wantCode)
			}
			if a := tg.ups["a"].hits.Load(); a != 0 {
				t.Fatalf("a payment homed in b reached a (%d)", a)
			}
			var e errorBody
			_ = json.Unmarshal(body, &e)
			switch tc.wantCode {
			case 200, 503:
				if resp.Header.Get(HeaderRegion) != "b" {
					t.Fatalf("served by %q, want the home b", resp.Header.Get(HeaderRegion))
				}
			case 409:
				if e.HomeRegion != "b" || e.Unit != unit.Name || e.Error == "" {
					t.Fatalf("409 body %s: want error, home_region b and unit %s", body, unit.Name)
				}
				if got := counter(tg.byName["b"].homeUnavailable); got != 1 {
					t.Fatalf("carpool_gateway_home_unavailable_total = %v", got)
				}
			case 400:
				if e.Field != HeaderRiderID {
					t.Fatalf("400 body %s: want field %s", body, HeaderRiderID)
				}
			}
		})
	}
}

func TestProxyForwardsPathQueryHeadersAndTraceContext(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	a := newUpstream(t, "a")
	reg := prometheus.NewRegistry()
	g, err := New(Config{Region: "a", Regions: []Upstream{{Name: "a", BaseURL: a.srv.URL + "/base/"}}}, reg, nil, tp)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest("GET", srv.URL+"/v1/rides/7?x=1&y=%20", nil)
	req.Header.Set("traceparent", parent)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Region, Path string }
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.Header.Get(HeaderRegion) != "a" || got.Path != "/base/v1/rides/7?x=1&y=%20" {
		t.Fatalf("region %q path %q", resp.Header.Get(HeaderRegion), got.Path)
	}
	a.mu.Lock()
	tp2, xff := a.traceparent, a.headers.Get("X-Forwarded-For")
	a.mu.Unlock()
	if xff != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", xff)
	}
	if !strings.HasPrefix(tp2, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || tp2 == parent {
		t.Fatalf("upstream traceparent %q: want the caller's trace with the gateway's span", tp2)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want a server and a client span", len(spans))
	}
	byKind := map[trace.SpanKind]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byKind[s.SpanKind()] = s
	}
	server, client := byKind[trace.SpanKindServer], byKind[trace.SpanKindClient]
	if server == nil || client == nil {
		t.Fatalf("span kinds %v", byKind)
	}
	if server.Parent().SpanID().String() != "00f067aa0ba902b7" || client.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Fatal("spans are not chained caller → gateway server span → upstream client span")
	}
	if !strings.Contains(tp2, client.SpanContext().SpanID().String()) {
		t.Fatalf("upstream saw %q, want the client span %s", tp2, client.SpanContext().SpanID())
	}
	if server.Name() != "GET /v1/rides/{id}" {
		t.Errorf("server span name %q", server.Name())
	}

	// The request duration histogram carries the trace id as exemplar.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != catalog.RequestDuration.Name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] != "gateway" || labels["operation"] != "GET /v1/rides/{id}" || labels["code"] != "200" || labels["outcome"] != "ok" {
				continue
			}
			for _, b := range m.GetHistogram().GetBucket() {
				if ex := b.GetExemplar(); ex != nil && ex.GetLabel()[0].GetValue() == "4bf92f3577b34da6a3ce929d0e0e4736" {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatal("no carpool_request_duration_seconds{service=gateway} sample with the trace id exemplar")
	}
}

func TestOversizeBodyIs413AndSendsNothing(t *testing.T) {
	tg := newTestGateway(t, []string{"a"}, func(c *Config) { c.MaxBodyBytes = 100 })
	resp, body := tg.do(t, "POST", "/v1/rides", map[string]string{HeaderIdempotencyKey: "k"}, strings.Repeat("x", 101))
	var e errorBody
	_ = json.Unmarshal(body, &e)
	if resp.StatusCode != 413 || e.Field != "body" {
		t.Fatalf("status %d body %s, want 413 naming body", resp.StatusCode, body)
	}
	// A chunked body (no Content-Length) is bounded too.
	req, _ := http.NewRequest("POST", tg.srv.URL+"/v1/rides", struct{ *strings.Reader }{strings.NewReader(strings.Repeat("y", 500))})
	resp2, err := tg.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 413 || tg.ups["a"].hits.Load() != 0 {
		t.Fatalf("chunked oversize: %d, upstream hits %d", resp2.StatusCode, tg.ups["a"].hits.Load())
	}
	if resp, _ := tg.do(t, "POST", "/v1/rides", nil, strings.Repeat("z", 100)); resp.StatusCode != 200 {
		t.Fatalf("a body at the limit: %d", resp.StatusCode)
	}
}

func TestInjectedFaultsApplyToProxiedTraffic(t *testing.T) {
	in := &faults.Injector{}
	tg := newTestGateway(t, []string{"a"}, func(c *Config) { c.Faults = in })
	_ = in.Set(faults.State{Services: map[string]faults.ServiceFaults{Service: {ErrorRate: 1}}})
	if resp, _ := tg.do(t, "GET", "/v1/rides/1", nil, ""); resp.StatusCode != 503 || tg.ups["a"].hits.Load() != 0 {
		t.Fatalf("with error rate 1: %d, upstream hits %d", resp.StatusCode, tg.ups["a"].hits.Load())
	}
	// The admin API is not subject to faults.
	if code, _ := tg.push(t, `{"version":1,"regions":{"a":{"weight":1,"breaker":"closed"}}}`); code != 200 {
		t.Fatalf("admin push under faults: %d", code)
	}
	_ = in.Set(faults.State{Down: true})
	req, _ := http.NewRequest("GET", tg.srv.URL+"/v1/rides/1", nil)
	if resp, err := tg.srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("region down: got status %d, want the connection dropped", resp.StatusCode)
	}
	in.Clear()
	if resp, _ := tg.do(t, "GET", "/v1/rides/1", nil, ""); resp.StatusCode != 200 {
		t.Fatalf("after clearing: %d", resp.StatusCode)
	}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, bytes.ToUpper(msg)); err != nil {
				return
			}
		}
	}))
	defer echo.Close()
	g, err := New(Config{Region: "a", Regions: []Upstream{{Name: "a", BaseURL: echo.URL}}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/drivers/stream", nil)
	if err != nil {
		t.Fatalf("dialing through the gateway: %v", err)
	}
	defer c.CloseNow()
	if resp.Header.Get(HeaderRegion) != "a" {
		t.Errorf("upgrade response region %q", resp.Header.Get(HeaderRegion))
	}
	for _, m := range []string{"pos 1", "pos 2"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != strings.ToUpper(m) {
			t.Fatalf("echo %q, %v", got, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// TestMetricsPassPromtool renders the gateway's registry after traffic of
// every kind and runs the real promtool's linter over it.
func TestMetricsPassPromtool(t *testing.T) {
	promtool := realserver.Binary(t, "promtool")
	tg := newTestGateway(t, []string{"a", "b"}, nil)
	tg.push(t, allToA)
	tg.ups["a"].status.Store(503)
	for i := range 12 {
		tg.do(t, "POST", "/v1/rides", map[string]string{HeaderIdempotencyKey: fmt.Sprint(i)}, "{}")
	}
	tg.do(t, "POST", "/v1/payments", nil, "{}")
	tg.probeOnce(context.Background())
	mfs, err := tg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []catalog.Metric{catalog.RequestDuration, catalog.ProbeHealthy, catalog.ProbeDuration,
		catalog.GatewayUpstreamRequests, catalog.GatewayRetries, catalog.GatewayRetriesDenied, catalog.GatewayEjections,
		catalog.GatewayRoutingUpdates, catalog.GatewayRoutingVersion, catalog.GatewayRouteWeight} {
		if !names[m.Name] {
			t.Errorf("%s not exposed", m.Name)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
