package enginetest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/carpoolsla/carpoolsla/services/gateway"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/engine/actuate"
)

// realGateways starts one real gateway per region on loopback (their
// upstreams are never called: only the admin API is used).
func realGateways(t *testing.T, names ...string) ([]*gateway.Gateway, []actuate.Gateway) {
	t.Helper()
	var ups []gateway.Upstream
	for _, n := range names {
		ups = append(ups, gateway.Upstream{Name: n, BaseURL: "http://127.0.0.1:1"})
	}
	var gws []*gateway.Gateway
	var targets []actuate.Gateway
	for _, n := range names {
		g, err := gateway.New(gateway.Config{Region: n, Regions: ups, AdminToken: adminToken}, prometheus.NewRegistry(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(g.Handler())
		t.Cleanup(srv.Close)
		gws = append(gws, g)
		targets = append(targets, actuate.Gateway{Region: n, URL: srv.URL})
	}
	return gws, targets
}

// TestThePusherSpeaksTheGatewaysProtocol pushes route tables to real
// gateways (services/gateway): a table applies everywhere, a resend and
// an older version are harmless, a bad token and a bad table fail at once
// with the gateway's own message.
func TestThePusherSpeaksTheGatewaysProtocol(t *testing.T) {
	names := []string{"sh-a", "sh-b", "bj-a"}
	gws, targets := realGateways(t, names...)
	reg := prometheus.NewRegistry()
	p, err := actuate.New(actuate.Config{Gateways: targets, Token: adminToken, Registerer: reg, BackoffInitial: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v2 := engine.RouteTable{Version: 2, Regions: map[string]engine.RouteEntry{
		"sh-a": {Weight: 100, Breaker: engine.Closed},
		"sh-b": {Weight: 0, Breaker: engine.Open},
		"bj-a": {Weight: 37.5, Breaker: engine.Recovering},
	}}
	for _, tc := range []struct {
		what  string
		table engine.RouteTable
	}{
		{"the table", v2},
		{"the same table again", v2},
		{"an older table", engine.RouteTable{Version: 1, Regions: map[string]engine.RouteEntry{"sh-b": {Weight: 100, Breaker: engine.Closed}}}},
	} {
		if err := p.Apply(ctx, tc.table); err != nil {
			t.Fatalf("pushing %s: %v", tc.what, err)
		}
		for i, g := range gws {
			st := g.Status()
			if st.Version != 2 || st.Regions["sh-b"].Breaker != gateway.BreakerOpen || st.Regions["sh-b"].Weight != 0 ||
				st.Regions["bj-a"].Breaker != gateway.BreakerRecovering || st.Regions["bj-a"].Weight != 37.5 {
				t.Errorf("after %s, gateway %s holds %+v", tc.what, names[i], st)
			}
		}
	}
	if n, err := testutil.GatherAndCount(reg, catalog.EnginePushLastSuccess.Name); err != nil || n != len(names) {
		t.Errorf("%d last-success series (%v), want one per gateway", n, err)
	}

	t.Run("A wrong token fails at once and says what to check.", func(t *testing.T) {
		bad, err := actuate.New(actuate.Config{Gateways: targets[:1], Token: "wrong", Attempts: 5})
		if err != nil {
			t.Fatal(err)
		}
		err = bad.Apply(ctx, engine.RouteTable{Version: 9, Regions: v2.Regions})
		var se *actuate.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusUnauthorized || !strings.Contains(err.Error(), "1 attempt(s)") || !strings.Contains(err.Error(), "--admin-token-file") {
			t.Errorf("Apply with a wrong token = %v; want a 401 after one attempt that names --admin-token-file", err)
		}
		if gws[0].Status().Version != 2 {
			t.Error("a push with a wrong token changed the table")
		}
	})
	t.Run("A table the gateways refuse names the field.", func(t *testing.T) {
		err := p.Apply(ctx, engine.RouteTable{Version: 10, Regions: map[string]engine.RouteEntry{"mars": {Weight: 1, Breaker: engine.Closed}}})
		var se *actuate.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusBadRequest || se.Field != "regions.mars" {
			t.Errorf("Apply of a table with an unknown region = %v; want a 400 naming regions.mars", err)
		}
		for _, n := range names {
			if !strings.Contains(err.Error(), "gateway "+n) {
				t.Errorf("the error does not name gateway %s: %v", n, err)
			}
		}
	})
}
