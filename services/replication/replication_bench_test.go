package replication

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// benchApply replicates b.N pre-written events from a to b through source
// (built from a's store) and reports events per second. Keys cycle over
// 10,000 rides, so most applies overwrite an existing row.
func benchApply(b *testing.B, viaHTTP bool) {
	tt := newTrueTime()
	a, dst := newRegion(b, "a", tt, nil), newRegion(b, "b", tt, nil)
	value := []byte(`{"rider":"u-123","state":"matched","pickup":[52.52,13.405],"dropoff":[52.5,13.39]}`)
	for i := range b.N {
		if _, err := a.store.Put(ctx, "rides", fmt.Sprint("ride-", i%10_000), value); err != nil {
			b.Fatal(err)
		}
	}
	metrics, _ := NewMetrics(prometheus.NewRegistry())
	var src Source = NewLocalSource(a.store)
	if viaHTTP {
		h, err := NewOutboxHandler(HandlerConfig{Outbox: a.store})
		if err != nil {
			b.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle(OutboxPath, h)
		srv := httptest.NewServer(mux)
		defer srv.Close()
		s, err := NewHTTPSource(HTTPSourceConfig{BaseURL: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		src = s
	}
	r, err := New(Config{SourceRegion: "a", Source: src, Target: dst.store, Metrics: metrics, BatchSize: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for r.Stats().Offset < uint64(b.N) {
		if _, err := r.Step(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	if got := r.Stats().Applied; got != uint64(b.N) {
		b.Fatalf("applied %d of %d", got, b.N)
	}
}

// BenchmarkApplyInProcess measures replication apply throughput with the
// in-process transport: pull from the source outbox, LWW apply in the
// target store, metrics, no-op tracing.
func BenchmarkApplyInProcess(b *testing.B) { benchApply(b, false) }

// BenchmarkApplyHTTP is the same through the HTTP outbox handler and
// client on 127.0.0.1 (JSON encoding, 1,000 events per request).
func BenchmarkApplyHTTP(b *testing.B) { benchApply(b, true) }
