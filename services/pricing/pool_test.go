package pricing

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// newTestPool builds a pool for region "eu" with a fresh registry and a
// 5 s timeout unless cfg says otherwise, closed when the test ends.
func newTestPool(t *testing.T, cfg PoolConfig) *Pool {
	t.Helper()
	if cfg.Region == "" {
		cfg.Region = "eu"
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// gateSupply holds every quote in DriversIn until its gate opens, so that
// tests can keep calls in flight on a server.
type gateSupply struct {
	arrived atomic.Int64
	gate    chan struct{}
	once    sync.Once
}

// newGateSupply returns a closed gate. Tests register t.Cleanup(gate.open)
// after starting the servers that use it, so that (cleanups running last
// first) the gate opens before those servers stop gracefully.
func newGateSupply() *gateSupply {
	return &gateSupply{gate: make(chan struct{})}
}

func (g *gateSupply) DriversIn(string) int {
	g.arrived.Add(1)
	<-g.gate
	return 1
}

func (g *gateSupply) open() { g.once.Do(func() { close(g.gate) }) }

// waitFor polls cond every 5 ms until it holds, and fails the test when
// the deadline d passes first.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not done after %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPoolSwapsTargetsWithoutFailingCallsInFlight(t *testing.T) {
	const inFlight = 200
	gate := newGateSupply()
	oldSrv, _ := startServer(t, Config{Region: "old", Supply: gate})
	newSrv, _ := startServer(t, Config{Region: "new"})
	t.Cleanup(gate.open) // runs before the servers stop
	reg := prometheus.NewRegistry()
	pool := newTestPool(t, PoolConfig{Targets: []string{oldSrv.Addr()}, Registerer: reg, Timeout: 10 * time.Second})

	type result struct {
		region string
		err    error
	}
	results := make(chan result, inFlight)
	for i := range inFlight {
		go func() {
			resp, err := pool.Quote(context.Background(), ride("r"+string(rune('a'+i%26))))
			results <- result{resp.GetRegion(), err}
		}()
	}
	waitFor(t, "200 calls in flight on the old server", 10*time.Second, func() bool { return gate.arrived.Load() == inFlight })

	if err := pool.SetTargets([]string{newSrv.Addr()}); err != nil {
		t.Fatal(err)
	}
	// New calls go to the new server at once, while the old one still
	// holds the 200 calls on its connection.
	for range 20 {
		resp, err := pool.Quote(callCtx(t), ride("r1"))
		if err != nil || resp.GetRegion() != "new" {
			t.Fatalf("a call after the swap: region %q, %v", resp.GetRegion(), err)
		}
	}
	if pool.Draining() != 1 || oldSrv.Connections() != 1 {
		t.Fatalf("during the drain: pool draining %d, old server connections %d; want 1 and 1", pool.Draining(), oldSrv.Connections())
	}
	if got := gaugeValue(t, reg, catalog.PoolStateDraining); got != 1 {
		t.Fatalf("draining gauge %v, want 1", got)
	}

	gate.open()
	for range inFlight {
		r := <-results
		if r.err != nil || r.region != "old" {
			t.Fatalf("a call in flight during the swap: region %q, %v", r.region, r.err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pool.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old server to see its connection closed", 10*time.Second, func() bool { return oldSrv.Connections() == 0 })
	if pool.Draining() != 0 || newSrv.Connections() != 1 || gaugeValue(t, reg, catalog.PoolStateDraining) != 0 ||
		gaugeValue(t, reg, catalog.PoolStateActive) != 1 {
		t.Fatalf("after the drain: pool draining %d, new server connections %d", pool.Draining(), newSrv.Connections())
	}
	if got := pool.Targets(); len(got) != 1 || got[0] != newSrv.Addr() {
		t.Fatalf("targets %v", got)
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, state string) float64 {
	t.Helper()
	for _, m := range findFamily(t, reg, catalog.PricingPoolConnections.Name).GetMetric() {
		if labelsEqual(m, map[string]string{catalog.LabelRegion: "eu", catalog.LabelPoolState: state}) {
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func TestPoolSpreadsCallsOverTargets(t *testing.T) {
	a, _ := startServer(t, Config{Region: "a"})
	b, _ := startServer(t, Config{Region: "b"})
	pool := newTestPool(t, PoolConfig{Targets: []string{a.Addr(), b.Addr()}})
	counts := map[string]int{}
	for range 40 {
		resp, err := pool.Quote(callCtx(t), ride("r1"))
		if err != nil {
			t.Fatal(err)
		}
		counts[resp.GetRegion()]++
	}
	if counts["a"] != 20 || counts["b"] != 20 {
		t.Fatalf("sequential calls spread %v, want 20 each (ties round-robin)", counts)
	}
}

func TestPoolPrefersTheLeastLoadedTarget(t *testing.T) {
	gate := newGateSupply()
	busy, _ := startServer(t, Config{Region: "busy", Supply: gate})
	idle, _ := startServer(t, Config{Region: "idle"})
	t.Cleanup(gate.open)
	pool := newTestPool(t, PoolConfig{Targets: []string{busy.Addr(), idle.Addr()}})

	// Park calls until one is held on the busy server; the other went to
	// the idle one and came back.
	done := make(chan error, 8)
	for i := 0; gate.arrived.Load() == 0 && i < 8; i++ {
		go func() { _, err := pool.Quote(context.Background(), ride("r1")); done <- err }()
		waitFor(t, "a call to settle", 5*time.Second, func() bool { return gate.arrived.Load() > 0 || len(done) > 0 })
		if len(done) > 0 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	if gate.arrived.Load() != 1 {
		t.Fatalf("%d calls held on the busy server, want 1", gate.arrived.Load())
	}
	for range 10 {
		resp, err := pool.Quote(callCtx(t), ride("r1"))
		if err != nil || resp.GetRegion() != "idle" {
			t.Fatalf("with one call held on busy: region %q, %v", resp.GetRegion(), err)
		}
	}
	gate.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPoolAvoidsATargetInTransientFailure(t *testing.T) {
	live, _ := startServer(t, Config{Region: "live"})
	dead, err := New(Config{Region: "dead"})
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr()
	_ = dead.lis.Close() // nothing listens there any more
	pool := newTestPool(t, PoolConfig{Targets: []string{deadAddr, live.Addr()}})
	waitFor(t, "the dead target's connection to fail", 10*time.Second, func() bool {
		for _, c := range pool.set.Load().conns {
			if c.target == deadAddr {
				return c.cc.GetState() == connectivity.TransientFailure
			}
		}
		return false
	})
	for range 20 {
		if resp, err := pool.Quote(callCtx(t), ride("r1")); err != nil || resp.GetRegion() != "live" {
			t.Fatalf("region %q, %v", resp.GetRegion(), err)
		}
	}
}

func TestPoolClosesAnIdleRetiredConnectionAtOnce(t *testing.T) {
	a, _ := startServer(t, Config{Region: "a"})
	b, _ := startServer(t, Config{Region: "b"})
	pool := newTestPool(t, PoolConfig{Targets: []string{a.Addr(), b.Addr()}})
	for range 4 {
		if _, err := pool.Quote(callCtx(t), ride("r1")); err != nil {
			t.Fatal(err)
		}
	}
	keep := pool.set.Load().conns[1]
	if err := pool.SetTargets([]string{b.Addr()}); err != nil {
		t.Fatal(err)
	}
	if err := pool.WaitDrained(callCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's connection to close", 10*time.Second, func() bool { return a.Connections() == 0 })
	if pool.set.Load().conns[0] != keep || b.Connections() != 1 {
		t.Fatal("the connection to a target kept across the swap was replaced")
	}
}

func TestPoolForceClosesAfterTheDrainTimeout(t *testing.T) {
	gate := newGateSupply()
	stuck, _ := startServer(t, Config{Region: "stuck", Supply: gate})
	t.Cleanup(gate.open)
	pool := newTestPool(t, PoolConfig{Targets: []string{stuck.Addr()}, DrainTimeout: 50 * time.Millisecond, Timeout: 30 * time.Second})
	done := make(chan error, 1)
	go func() { _, err := pool.Quote(context.Background(), ride("r1")); done <- err }()
	waitFor(t, "the call to be held", 5*time.Second, func() bool { return gate.arrived.Load() == 1 })
	if err := pool.SetTargets(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if code := status.Code(err); code != codes.Canceled && code != codes.Unavailable {
			t.Fatalf("a call cut by the drain timeout: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck call was not cut")
	}
	if err := pool.WaitDrained(callCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestPoolErrors(t *testing.T) {
	var in faults.Injector
	s, _ := startServer(t, Config{Faults: &in})
	tests := map[string]struct {
		setup func(t *testing.T) *Pool
		want  codes.Code
		text  string
	}{
		"A pool without targets answers unavailable.": {func(t *testing.T) *Pool { return newTestPool(t, PoolConfig{}) }, codes.Unavailable, "no targets"},
		"A closed pool answers unavailable.": {func(t *testing.T) *Pool {
			p := newTestPool(t, PoolConfig{Targets: []string{s.Addr()}})
			_ = p.Close()
			if err := p.SetTargets([]string{s.Addr()}); !errors.Is(err, ErrPoolClosed) {
				t.Fatalf("SetTargets after Close: %v", err)
			}
			return p
		}, codes.Unavailable, "closed"},
		"A server-side fault keeps its status through the pool.": {func(t *testing.T) *Pool {
			_ = in.Set(faults.State{Services: map[string]faults.ServiceFaults{"pricing": {ErrorRate: 1}}})
			t.Cleanup(in.Clear)
			return newTestPool(t, PoolConfig{Targets: []string{s.Addr()}})
		}, codes.Unavailable, "injected"},
		"The pool's timeout cuts a slow call.": {func(t *testing.T) *Pool {
			_ = in.Set(faults.State{Services: map[string]faults.ServiceFaults{"pricing": {Latency: faults.Latency{Fixed: faults.Duration(5 * time.Second)}}}})
			t.Cleanup(in.Clear)
			return newTestPool(t, PoolConfig{Targets: []string{s.Addr()}, Timeout: 50 * time.Millisecond})
		}, codes.DeadlineExceeded, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := tc.setup(t).Quote(callCtx(t), ride("r1"))
			if status.Code(err) != tc.want || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v (%v), want %v mentioning %q", status.Code(err), err, tc.want, tc.text)
			}
		})
	}
}

func TestPoolConfigValidate(t *testing.T) {
	tests := map[string]PoolConfig{
		"A pool without a region is rejected.":  {Targets: []string{"127.0.0.1:1"}},
		"A target without a port is rejected.":  {Region: "eu", Targets: []string{"127.0.0.1"}},
		"An empty target is rejected.":          {Region: "eu", Targets: []string{""}},
		"A negative timeout is rejected.":       {Region: "eu", Timeout: -time.Second},
		"A negative drain timeout is rejected.": {Region: "eu", DrainTimeout: -time.Second},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := NewPool(cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
	got, err := normalizeTargets([]string{"127.0.0.1:1", " 127.0.0.1:1 ", "dns:///pricing.eu:7000", "[::1]:2"})
	if err != nil || strings.Join(got, ",") != "127.0.0.1:1,dns:///pricing.eu:7000,[::1]:2" {
		t.Fatalf("normalizeTargets: %v %v", got, err)
	}
}

func TestPoolChurnsTargetsUnderLoadWithoutFailures(t *testing.T) {
	a, _ := startServer(t, Config{Region: "a"})
	b, _ := startServer(t, Config{Region: "b"})
	pool := newTestPool(t, PoolConfig{Targets: []string{a.Addr()}, Timeout: 10 * time.Second})
	sets := [][]string{{b.Addr()}, {a.Addr(), b.Addr()}, {a.Addr()}, {b.Addr(), a.Addr()}}

	const workers, callsEach = 32, 40
	var failed, ok atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range workers {
		wg.Go(func() {
			for range callsEach {
				if _, err := pool.Quote(context.Background(), ride("r1")); err != nil {
					failed.Add(1)
					t.Errorf("call failed during target churn: %v", err)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	swaps := 0
	go func() {
		wg.Wait()
		close(stop)
	}()
	for running := true; running && swaps < 200; swaps++ {
		if err := pool.SetTargets(sets[swaps%len(sets)]); err != nil {
			t.Fatal(err)
		}
		select {
		case <-stop:
			running = false
		case <-time.After(2 * time.Millisecond):
		}
	}
	<-stop
	if failed.Load() != 0 || ok.Load() != workers*callsEach {
		t.Fatalf("%d ok, %d failed over %d swaps", ok.Load(), failed.Load(), swaps)
	}
	if err := pool.WaitDrained(callCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls, %d target swaps, no failure", ok.Load(), swaps)
}
