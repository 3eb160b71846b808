// Package regiontest starts every region of a spec in a test's process: the
// real servers of each region on loopback, replicating between regions, and
// stops them when the test ends. Tests of the engine, the load generator, the
// drills and the exporters share it.
package regiontest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Start runs a cluster of cfg.Spec's regions until the test ends and waits
// until every region's entry answers /healthz. A nil LogSink discards the
// services' logs; an empty LogLevel is "error". The test fails when the
// cluster does not start, or does not stop within 15 s of the test's end.
func Start(t testing.TB, cfg region.ClusterConfig) *region.Cluster {
	t.Helper()
	if cfg.LogSink == nil {
		cfg.LogSink = telemetry.NewWriterSink(io.Discard)
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	c, err := region.NewCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the cluster stopped with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the cluster did not stop within 15s")
		}
	})
	for _, name := range c.Names() {
		entry := c.Regions[name].URLs()[region.Entry]
		realserver.WaitFor(t, 15*time.Second, "region "+name+" healthy", func() (bool, error) {
			resp, err := http.Get(entry + "/healthz")
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, fmt.Errorf("status %d", resp.StatusCode)
		})
	}
	return c
}
