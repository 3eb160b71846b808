package enginetest

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/services/gateway"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/engine/actuate"
)

// BenchmarkPushToThreeGateways is one Apply of a new route table to three
// real gateways on loopback: three concurrent PUTs, each parsed, checked and
// applied by the gateway.
func BenchmarkPushToThreeGateways(b *testing.B) {
	names := []string{"sh-a", "sh-b", "bj-a"}
	var ups []gateway.Upstream
	for _, n := range names {
		ups = append(ups, gateway.Upstream{Name: n, BaseURL: "http://127.0.0.1:1"})
	}
	var targets []actuate.Gateway
	for _, n := range names {
		g, err := gateway.New(gateway.Config{Region: n, Regions: ups, AdminToken: adminToken}, prometheus.NewRegistry(), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(g.Handler())
		b.Cleanup(srv.Close)
		targets = append(targets, actuate.Gateway{Region: n, URL: srv.URL})
	}
	p, err := actuate.New(actuate.Config{Gateways: targets, Token: adminToken})
	if err != nil {
		b.Fatal(err)
	}
	t := engine.RouteTable{Regions: map[string]engine.RouteEntry{
		"sh-a": {Weight: 100, Breaker: engine.Closed}, "sh-b": {Weight: 0, Breaker: engine.Open}, "bj-a": {Weight: 50, Breaker: engine.Recovering},
	}}
	for b.Loop() {
		t.Version++
		if err := p.Apply(context.Background(), t); err != nil {
			b.Fatal(err)
		}
	}
}
