package synclag_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/exporters/synclag"
	"github.com/carpoolsla/carpoolsla/services/replication"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// In-process wiring: one Reader over every region store (a
// region.Cluster's), its Collector in a registry, and its Set served next
// to it by exporters.Handler.
func ExampleNewClusterReader() {
	ctx := context.Background()
	now := time.Date(2025, 11, 25, 0, 0, 10, 0, time.UTC)
	clock := func() time.Time { return now }
	a, _ := store.NewMemory(store.Config{Region: "a"})
	b, _ := store.NewMemory(store.Config{Region: "b"})
	// The services write heartbeats with store.HeartbeatWriter; a's
	// stamp from 2.5 s ago replicates to b.
	hb, _ := store.NewHeartbeatWriter(store.HeartbeatConfig{Store: a, Region: "a", Now: func() time.Time { return now.Add(-2500 * time.Millisecond) }})
	_, _ = hb.Beat(ctx)
	rep, _ := replication.New(replication.Config{SourceRegion: "a", Source: replication.NewLocalSource(a), Target: b})
	_, _ = rep.Step(ctx)

	// b never beats, so b→a reports the time since the Reader started (0).
	r, err := synclag.NewClusterReader(map[string]synclag.RegionStore{"a": a, "b": b}, clock)
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(r, 0, nil))
	w := httptest.NewRecorder()
	exporters.Handler(reg, r.Set()).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(w.Body.String(), "\n") {
		if strings.HasPrefix(line, "carpool_sync_lag_seconds") {
			fmt.Println(line)
		}
	}
	// Output:
	// carpool_sync_lag_seconds{source_region="b",target_region="a"} 0
	// carpool_sync_lag_seconds{source_region="a",target_region="b"} 2.5
}
