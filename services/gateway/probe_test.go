package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestProbeStateThresholds(t *testing.T) {
	for sentence, tc := range map[string]struct {
		results string // o = success, x = failure
		want    string // health after each result: H or U
	}{
		"Three consecutive failures make a target unhealthy, not two.": {
			results: "xxx", want: "HHU",
		},
		"A success resets the failure count.": {
			results: "xxoxxox", want: "HHHHHHH",
		},
		"Two consecutive successes make it healthy again, not one.": {
			results: "xxxoo", want: "HHUUH",
		},
		"A failure between successes restarts the recovery.": {
			results: "xxxoxoo", want: "HHUUUUH",
		},
		"More failures keep it unhealthy.": {
			results: "xxxxxx", want: "HHUUUU",
		},
	} {
		t.Run(sentence, func(t *testing.T) {
			p := newProbeState(3, 2)
			var got strings.Builder
			for _, c := range tc.results {
				h, _ := p.observe(c == 'o')
				if h {
					got.WriteByte('H')
				} else {
					got.WriteByte('U')
				}
			}
			if got.String() != tc.want {
				t.Fatalf("health %s, want %s", got.String(), tc.want)
			}
		})
	}
}

func TestProbeStateReportsChangesOnce(t *testing.T) {
	p := newProbeState(3, 2)
	var changes []bool
	for _, ok := range []bool{false, false, false, false, true, true, true} {
		if _, changed := p.observe(ok); changed {
			changes = append(changes, ok)
		}
	}
	if len(changes) != 2 || changes[0] || !changes[1] {
		t.Fatalf("changes %v, want one to unhealthy then one to healthy", changes)
	}
}

// TestProbeLoopFailsOverAroundAnUnhealthyRegion drives Run's probe loop
// with a hand-fed ticker: the region's healthz fails three times and the
// very next request avoids it; two good probes bring it back.
func TestProbeLoopFailsOverAroundAnUnhealthyRegion(t *testing.T) {
	ticks := make(chan time.Time)
	tg := newTestGateway(t, []string{"a", "b"}, func(c *Config) {
		c.NewTicker = func(time.Duration) Ticker { return &fakeTicker{c: ticks} }
	})
	tg.probed = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	a := tg.ups["a"]
	a.probeCode.Store(http.StatusServiceUnavailable)
	tick := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			ticks <- time.Now()
			select { // the round's results are applied
			case <-tg.probed:
			case <-time.After(5 * time.Second):
				t.Fatal("a probe round did not finish within 5 s")
			}
		}
	}
	tick(2)
	if !tg.byName["a"].healthy.Load() {
		t.Fatal("a is unhealthy after 2 failed probes; the threshold is 3")
	}
	tick(1)
	if tg.byName["a"].healthy.Load() {
		t.Fatal("a is healthy after 3 failed probes")
	}
	before := a.hits.Load()
	for range 10 {
		if resp, _ := tg.do(t, "GET", "/v1/rides/1", nil, ""); resp.Header.Get(HeaderRegion) != "b" {
			t.Fatalf("served by %q while a is unhealthy", resp.Header.Get(HeaderRegion))
		}
	}
	if a.hits.Load() != before {
		t.Fatal("an unhealthy region received traffic")
	}
	if v := counter(tg.m.probeHealthy.WithLabelValues("a", "a")); v != 0 {
		t.Fatalf("carpool_probe_healthy{target=a} = %v, want 0", v)
	}

	a.probeCode.Store(0)
	tick(1)
	if tg.byName["a"].healthy.Load() {
		t.Fatal("a healthy after one good probe; the threshold is 2")
	}
	tick(1)
	if !tg.byName["a"].healthy.Load() {
		t.Fatal("a is unhealthy after 2 good probes")
	}
	seen := map[string]bool{}
	for range 4 {
		resp, _ := tg.do(t, "GET", "/v1/rides/1", nil, "")
		seen[resp.Header.Get(HeaderRegion)] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("served by %v after recovery, want both", seen)
	}
}

func TestProbeCountsTimeoutsAndRefusedConnectionsAsFailures(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b", "c"}, func(c *Config) {
		c.Probes.Timeout = 50 * time.Millisecond
	})
	// b answers its probe too late; c is gone.
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	tg.ups["b"].srv.Config.Handler = slow
	tg.ups["c"].srv.Close()
	ctx := context.Background()
	for range 3 {
		tg.probeOnce(ctx)
	}
	for name, want := range map[string]bool{"a": true, "b": false, "c": false} {
		if got := tg.byName[name].healthy.Load(); got != want {
			t.Errorf("%s healthy = %v, want %v", name, got, want)
		}
	}
	if d := counter(tg.m.probeDuration.WithLabelValues("a", "b")); d < 0.04 || d > 1 {
		t.Errorf("carpool_probe_duration_seconds{target=b} = %v, want about the 50 ms timeout", d)
	}
}
