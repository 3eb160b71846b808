package gateway

import (
	"net/http"
	"testing"
	"time"
)

func TestEjectionTimeGrowsWithRepeatsAndIsCapped(t *testing.T) {
	c := EjectionConfig{BaseEjection: 30 * time.Second, MaxEjection: 100 * time.Second, DecayInterval: 10 * time.Second}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var o outlier
	for i, want := range []time.Duration{30 * time.Second, 60 * time.Second, 90 * time.Second, 100 * time.Second, 100 * time.Second} {
		got := o.eject(now, c)
		if got != want {
			t.Fatalf("ejection %d lasts %v, want %v", i+1, got, want)
		}
		if !o.ejected(now.Add(got - time.Nanosecond)) {
			t.Fatalf("ejection %d: not ejected just before its end", i+1)
		}
		if o.ejected(now.Add(got)) {
			t.Fatalf("ejection %d: still ejected at its end", i+1)
		}
		now = now.Add(got) // ejected again the moment it returns
	}
}

func TestEjectionMultiplierDecaysInService(t *testing.T) {
	c := EjectionConfig{BaseEjection: 30 * time.Second, MaxEjection: 300 * time.Second, DecayInterval: 10 * time.Second}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var o outlier
	now = now.Add(o.eject(now, c))
	now = now.Add(o.eject(now, c))  // 2 ejections, back in service now
	now = now.Add(15 * time.Second) // one decay interval in service
	if got := o.eject(now, c); got != 60*time.Second {
		t.Fatalf("third ejection after 15 s in service lasts %v, want 60 s (one ejection forgotten)", got)
	}
	now = now.Add(60*time.Second + time.Hour)
	if got := o.eject(now, c); got != 30*time.Second {
		t.Fatalf("ejection after an hour in service lasts %v, want the base 30 s", got)
	}
}

// TestPassiveEjection drives live traffic at a failing region through the
// gateway with a fake clock.
func TestPassiveEjection(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b"}, func(c *Config) { c.Retry.Disabled = true })
	a := tg.ups["a"]
	a.status.Store(http.StatusInternalServerError)
	// Weights a=1, b=0: every request goes to a while a serves.
	tg.push(t, `{"version":1,"regions":{"a":{"weight":1,"breaker":"closed"},"b":{"weight":0,"breaker":"closed"}}}`)

	for i := 1; i <= 5; i++ {
		if resp, _ := tg.do(t, "POST", "/v1/rides", nil, "{}"); resp.Header.Get(HeaderRegion) != "a" {
			t.Fatalf("request %d served by %q before the ejection", i, resp.Header.Get(HeaderRegion))
		}
	}
	if got := counter(tg.byName["a"].ejections); got != 1 {
		t.Fatalf("%v ejections after 5 consecutive 5xx, want 1", got)
	}
	hits := a.hits.Load()
	for range 5 {
		if resp, _ := tg.do(t, "POST", "/v1/rides", nil, "{}"); resp.Header.Get(HeaderRegion) != "b" {
			t.Fatalf("served by %q while a is ejected", resp.Header.Get(HeaderRegion))
		}
	}
	if a.hits.Load() != hits {
		t.Fatal("an ejected region received traffic")
	}
	// Back after the base ejection, 30 s; five more failures eject it for 60 s.
	tg.clock.Advance(30 * time.Second)
	for range 5 {
		tg.do(t, "POST", "/v1/rides", nil, "{}")
	}
	st := tg.Status().Regions["a"]
	if !st.Ejected || st.Ejections != 2 || !st.EjectedUntil.Equal(tg.clock.Now().Add(60*time.Second)) {
		t.Fatalf("second ejection: %+v, want ejected for 60 s (2 ejections)", st)
	}
	tg.clock.Advance(59 * time.Second)
	if resp, _ := tg.do(t, "POST", "/v1/rides", nil, "{}"); resp.Header.Get(HeaderRegion) != "b" {
		t.Fatal("a is back before its 60 s ejection ended")
	}
	tg.clock.Advance(time.Second)
	if resp, _ := tg.do(t, "POST", "/v1/rides", nil, "{}"); resp.Header.Get(HeaderRegion) != "a" {
		t.Fatal("a is not back when its 60 s ejection ended")
	}
}

func TestSuccessResetsConsecutiveFailures(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b"}, func(c *Config) { c.Retry.Disabled = true })
	tg.push(t, `{"version":1,"regions":{"a":{"weight":1,"breaker":"closed"},"b":{"weight":0,"breaker":"closed"}}}`)
	a := tg.ups["a"]
	for range 3 {
		a.status.Store(http.StatusServiceUnavailable)
		for range 4 {
			tg.do(t, "GET", "/v1/rides/1", nil, "")
		}
		a.status.Store(0)
		tg.do(t, "GET", "/v1/rides/1", nil, "")
	}
	if got := counter(tg.byName["a"].ejections); got != 0 {
		t.Fatalf("%v ejections with never 5 failures in a row", got)
	}
}

func TestTheLastServingRegionIsNeverEjected(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b"}, func(c *Config) { c.Retry.Disabled = true })
	tg.ups["a"].status.Store(http.StatusBadGateway)
	tg.ups["b"].status.Store(http.StatusBadGateway)
	for range 40 {
		tg.do(t, "GET", "/v1/rides/1", nil, "")
	}
	ejected := counter(tg.byName["a"].ejections) + counter(tg.byName["b"].ejections)
	skipped := counter(tg.byName["a"].skipped) + counter(tg.byName["b"].skipped)
	if ejected != 1 {
		t.Fatalf("%v ejections when both regions fail, want exactly 1 (the other is the last)", ejected)
	}
	if skipped < 1 {
		t.Fatal("the refused ejection of the last region was not counted")
	}
	// The last region keeps serving.
	st := tg.Status()
	if st.Regions["a"].Ejected == st.Regions["b"].Ejected {
		t.Fatalf("want exactly one region ejected: %+v", st.Regions)
	}
}

func TestPanicModeServesFromAllWhenNoneIsHealthy(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b", "c"}, nil)
	tg.push(t, `{"version":1,"regions":{"c":{"weight":1,"breaker":"open"}}}`)
	tg.setHealthy("a", false)
	tg.setHealthy("b", false)
	seen := map[string]int{}
	for range 10 {
		resp, _ := tg.do(t, "GET", "/v1/rides/1", nil, "")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d in panic mode", resp.StatusCode)
		}
		seen[resp.Header.Get(HeaderRegion)]++
	}
	if seen["a"] != 5 || seen["b"] != 5 || seen["c"] != 0 {
		t.Fatalf("panic mode served %v, want a and b equally and never the open c", seen)
	}
	if got := counter(tg.panicRoutes); got != 10 {
		t.Fatalf("carpool_gateway_panic_routes_total = %v, want 10", got)
	}
}
