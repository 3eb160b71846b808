package drill

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/gateway"
)

// fakeGateway answers ride creations with a fixed status and records the
// idempotency keys it saw.
type fakeGateway struct {
	region string
	status int
	block  chan struct{} // when set, every request waits for it to close
	mu     sync.Mutex
	keys   []string
	next   atomic.Int64
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.block != nil {
		<-g.block
	}
	g.mu.Lock()
	g.keys = append(g.keys, r.Header.Get(gateway.HeaderIdempotencyKey))
	g.mu.Unlock()
	if r.Header.Get(gateway.HeaderRiderID) == "" || r.URL.Path != "/v1/rides" || r.Method != http.MethodPost {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.Header().Set(gateway.HeaderRegion, g.region)
	w.WriteHeader(g.status)
	if g.status == http.StatusCreated {
		fmt.Fprintf(w, `{"id":"%d","region":%q}`, 1000+g.next.Add(1), g.region)
	} else {
		fmt.Fprint(w, `{"error":"no"}`)
	}
}

func startGateways(t *testing.T, gws ...*fakeGateway) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, g := range gws {
		srv := httptest.NewServer(g)
		t.Cleanup(srv.Close)
		out[g.region] = srv.URL
	}
	return out
}

func testLoad(t *testing.T, urls map[string]string, n, inFlight int) *load {
	t.Helper()
	l, err := newLoad(loadConfig{Gateways: urls, Regions: all, Rate: 2000, Units: 64, RidersPerHome: 4, Fallbacks: 2,
		RequestTimeout: 5 * time.Second, MaxInFlight: inFlight, MaxOrders: n, Point: DefaultPoint, RunID: "t", HTTP: http.DefaultClient, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLoadFallsBackLikeAnApp: a rider's home gateway first; after a 5xx
// (or no answer) the next region's, with the same key; never after a 4xx.
func TestLoadFallsBackLikeAnApp(t *testing.T) {
	shA := &fakeGateway{region: "sh-a", status: http.StatusServiceUnavailable}
	shB := &fakeGateway{region: "sh-b", status: http.StatusConflict}
	bjA := &fakeGateway{region: "bj-a", status: http.StatusCreated}
	l := testLoad(t, startGateways(t, shA, shB, bjA), 30, 64)
	for home, rs := range l.riders {
		if len(rs) != 4 {
			t.Errorf("%s is home to %d riders, want 4", home, len(rs))
		}
		for _, r := range rs {
			if got := gateway.UnitOf(r.id, 64, all).Home; got != home {
				t.Errorf("rider %s is homed in %s by the gateways, not %s", r.id, got, home)
			}
		}
	}
	l.run(context.Background())
	orders := l.orders()
	if sum := l.summary(); sum.Scheduled != 30 || sum.Dropped != 0 {
		t.Errorf("the executor scheduled %d and dropped %d, want 30 and 0", sum.Scheduled, sum.Dropped)
	}
	if len(orders) != 30 || l.pending() != 0 {
		t.Fatalf("%d orders finished, %d pending; want 30, 0", len(orders), l.pending())
	}
	homes := map[string]int{}
	for _, o := range orders {
		homes[o.Home]++
		switch o.Home {
		case "sh-a": // 503, then sh-b's 409 ends it: no third try after a 4xx
			if o.OK || len(o.Attempts) != 2 || o.Attempts[1].Gateway != "sh-b" || o.Attempts[1].Status != http.StatusConflict {
				t.Errorf("sh-a rider: %+v", o)
			}
		case "sh-b": // 409 at home: not retried
			if o.OK || len(o.Attempts) != 1 {
				t.Errorf("sh-b rider: %+v", o)
			}
		case "bj-a":
			if !o.OK || o.RideID <= 1000 || o.Origin != "bj-a" || o.ServedBy != "bj-a" || len(o.Attempts) != 1 {
				t.Errorf("bj-a rider: %+v", o)
			}
		}
	}
	if homes["sh-a"] != 10 || homes["sh-b"] != 10 || homes["bj-a"] != 10 {
		t.Errorf("homes %v, want 10 each", homes)
	}
	// The fallback used the same key as the first attempt.
	shA.mu.Lock()
	defer shA.mu.Unlock()
	shB.mu.Lock()
	defer shB.mu.Unlock()
	seen := map[string]bool{}
	for _, k := range shB.keys {
		seen[k] = true
	}
	for _, k := range shA.keys {
		if !seen[k] {
			t.Errorf("key %s failed at sh-a and was not retried at sh-b", k)
		}
	}
}

// TestLoadDropsRidesItCannotSend: with every in-flight slot taken, a ride
// due is counted as dropped instead of waiting (an open model).
func TestLoadDropsRidesItCannotSend(t *testing.T) {
	release := make(chan struct{})
	g := &fakeGateway{region: "sh-a", status: http.StatusCreated, block: release}
	urls := startGateways(t, g, &fakeGateway{region: "sh-b", status: http.StatusCreated, block: release}, &fakeGateway{region: "bj-a", status: http.StatusCreated, block: release})
	l := testLoad(t, urls, 20, 2)
	done := make(chan struct{})
	go func() { l.run(context.Background()); close(done) }()
	// Every ride is due within 10 ms at 2000/s: by 2 s all 20 were either
	// started (2, blocked) or dropped.
	deadline := time.After(10 * time.Second)
	for l.pending() < 2 {
		select {
		case <-deadline:
			t.Fatal("the two slots were not taken within 10s")
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case <-done:
		t.Fatal("the load ended with rides blocked in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	<-done
	st := loadStats(l.orders(), time.Time{}, false)
	sum := l.summary()
	if sum.Scheduled != 20 || st.Sent != 2 || sum.Dropped != 18 || st.Acked != 2 {
		t.Fatalf("scheduled %d, sent %d, dropped %d, acked %d: want 20, 2 (the slots), 18, 2", sum.Scheduled, st.Sent, sum.Dropped, st.Acked)
	}
}

func TestFallbackOrder(t *testing.T) {
	for home, want := range map[string]string{"sh-a": "sh-a,sh-b,bj-a", "sh-b": "sh-b,bj-a,sh-a", "bj-a": "bj-a,sh-a,sh-b"} {
		if got := fmt.Sprint(fallbackOrder(all, home)); got != fmt.Sprint(strings.Split(want, ",")) {
			t.Errorf("%s: %v, want %v", home, got, want)
		}
	}
}
