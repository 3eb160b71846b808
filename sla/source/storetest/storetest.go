// Package storetest loads a recorded scenario (sourcetest.Scenario) into
// every metric store the engine can read — the embedded store, a real
// Prometheus 2.42 and a real VictoriaMetrics — for tests that compare what
// the engine reads, or decides, across them. The real servers come from
// internal/realserver: a missing one fails the test with how to install it.
package storetest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/embedded"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/source/sourcetest"
)

// Names of the stores Load returns, in order.
const (
	Embedded        = "embedded"
	Prometheus      = "Prometheus 2.42"
	VictoriaMetrics = "VictoriaMetrics"
)

// Store is one store holding the scenario.
type Store struct {
	Name string
	// Querier reads it: the embedded store directly, the others through
	// source.HTTP (the external client).
	Querier source.Querier
	// URL is its Prometheus-compatible query API (the embedded store's
	// Handler served on 127.0.0.1).
	URL string
}

// visibleTimeout bounds the wait for a store to show the scenario.
const visibleTimeout = 30 * time.Second

// Load writes sc into the embedded store (appended), a real Prometheus
// started with --web.enable-remote-write-receiver and a real
// VictoriaMetrics (both by remote write), waits until each shows every
// series, and returns them in that order. The test's cleanup stops them.
// The embedded store is not Run: it holds the scenario and answers, but
// scrapes and evaluates nothing.
func Load(t testing.TB, sc sourcetest.Scenario) []Store {
	t.Helper()
	ctx := context.Background()
	st, err := embedded.Open(embedded.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("storetest: %v", err)
		}
	})
	if err := sc.Append(ctx, st); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	srv := httptest.NewServer(st.Handler())
	t.Cleanup(srv.Close)

	prom := realserver.StartPrometheus(t, realserver.PrometheusOptions{Args: []string{"--web.enable-remote-write-receiver"}})
	if err := sc.RemoteWrite(ctx, nil, prom.URL+"/api/v1/write"); err != nil {
		t.Fatalf("storetest: prometheus: %v", err)
	}
	vm := realserver.StartVictoriaMetrics(t)
	if err := sc.RemoteWrite(ctx, nil, vm.URL+"/api/v1/write"); err != nil {
		t.Fatalf("storetest: victoria-metrics: %v", err)
	}
	vm.Flush(t)

	stores := []Store{
		{Name: Embedded, Querier: st, URL: srv.URL},
		{Name: Prometheus, Querier: Client(t, prom.URL), URL: prom.URL},
		{Name: VictoriaMetrics, Querier: Client(t, vm.URL), URL: vm.URL},
	}
	for _, s := range stores {
		if err := sc.WaitVisible(ctx, s.Querier, visibleTimeout, 200*time.Millisecond); err != nil {
			t.Fatalf("storetest: %s: %v", s.Name, err)
		}
	}
	return stores
}

// Client returns the external source client for a query API URL.
func Client(t testing.TB, url string) source.Querier {
	t.Helper()
	q, err := source.NewHTTP(source.HTTPConfig{URL: url})
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return q
}
