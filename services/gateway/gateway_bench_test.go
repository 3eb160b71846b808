package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkPick measures one routing decision (SWRR over three regions with
// their health, breaker and ejection checks).
func BenchmarkPick(b *testing.B) {
	g := benchGateway(b, "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
	g.apply(Table{Version: 1, Regions: map[string]RegionRoute{
		"r0": {Weight: 50, Breaker: BreakerClosed}, "r1": {Weight: 30, Breaker: BreakerRecovering}, "r2": {Weight: 20, Breaker: BreakerClosed},
	}}, "push")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if i, _ := g.pick(-1); i < 0 {
				b.Fatal("no region")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g.pick(-1)
			}
		})
	})
	// A request with an Idempotency-Key: rendezvous hashing of the key.
	b.Run("keyed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if i, _ := g.pickFor("3f9c0d2a-1b7e-4c55-9a0e-7d1c2b3a4f5e", -1); i < 0 {
				b.Fatal("no region")
			}
		}
	})
}

func BenchmarkSWRRNext(b *testing.B) {
	var s swrr
	w := []int64{5000, 1000, 1000}
	e := []bool{true, true, true}
	b.ReportAllocs()
	for b.Loop() {
		s.next(w, e)
	}
}

// BenchmarkProxyOverhead sends the same requests straight to an upstream
// and through the gateway (full instrumentation: metrics, no-op tracer,
// trace context propagation), interleaved in the same run so that both see
// the same machine, and reports requests per second of each.
func BenchmarkProxyOverhead(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"1"}`))
	}))
	defer up.Close()
	g := benchGateway(b, up.URL)
	gw := httptest.NewServer(g.Handler())
	defer gw.Close()
	// The standard library's reverse proxy, uninstrumented: the floor of any proxy hop.
	target, _ := url.Parse(up.URL)
	plainProxy := httputil.NewSingleHostReverseProxy(target)
	plainProxy.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	plain := httptest.NewServer(plainProxy)
	defer plain.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	send := func(base string) {
		req, _ := http.NewRequest("POST", base+"/v1/rides", strings.NewReader(`{"rider":"r1"}`))
		req.Header.Set(HeaderIdempotencyKey, "k")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	send(up.URL)
	send(gw.URL)

	b.Run("sequential", func(b *testing.B) {
		var direct, via time.Duration
		for b.Loop() {
			t0 := time.Now()
			send(up.URL)
			t1 := time.Now()
			send(gw.URL)
			direct += t1.Sub(t0)
			via += time.Since(t1)
		}
		n := float64(b.N)
		b.ReportMetric(n/direct.Seconds(), "direct-req/s")
		b.ReportMetric(n/via.Seconds(), "gateway-req/s")
		b.ReportMetric(float64((via-direct).Microseconds())/n, "overhead-µs/req")
	})
	for _, tc := range []struct{ name, base string }{
		{"parallel-direct", up.URL}, {"parallel-plain-reverseproxy", plain.URL}, {"parallel-gateway", gw.URL},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetParallelism(4)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					send(tc.base)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

func benchGateway(b *testing.B, urls ...string) *Gateway {
	b.Helper()
	cfg := Config{Region: "r0"}
	for i, u := range urls {
		cfg.Regions = append(cfg.Regions, Upstream{Name: "r" + string(rune('0'+i)), BaseURL: u})
	}
	g, err := New(cfg, prometheus.NewRegistry(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return g
}
