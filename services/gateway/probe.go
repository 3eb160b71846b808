package gateway

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// probeState is the health of one probed target: UnhealthyAfter failures in
// a row make it unhealthy, HealthyAfter successes in a row healthy again. A
// target starts healthy so that a new gateway serves at once.
//
// The zero value is not ready: use newProbeState. Not safe for concurrent
// use; one goroutine (the probe loop) owns it.
type probeState struct {
	unhealthyAfter, healthyAfter int
	healthy                      bool
	fails, successes             int
}

func newProbeState(unhealthyAfter, healthyAfter int) probeState {
	return probeState{unhealthyAfter: unhealthyAfter, healthyAfter: healthyAfter, healthy: true}
}

// observe records one probe result and reports the health after it and
// whether it changed.
func (p *probeState) observe(ok bool) (healthy, changed bool) {
	if ok {
		p.fails = 0
		p.successes++
		if !p.healthy && p.successes >= p.healthyAfter {
			p.healthy, changed = true, true
		}
	} else {
		p.successes = 0
		p.fails++
		if p.healthy && p.fails >= p.unhealthyAfter {
			p.healthy, changed = false, true
		}
	}
	return p.healthy, changed
}

// probeResult is the outcome of one probe of one target.
type probeResult struct {
	ok       bool
	duration time.Duration
	err      error
}

// probe sends HEAD to one target and says whether it answered 2xx or 3xx
// within the timeout.
func (g *Gateway) probe(ctx context.Context, r *region) probeResult {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Probes.Timeout)
	defer cancel()
	start := time.Now() // a measurement, not a state machine: the real clock
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, r.probeURL, nil)
	if err != nil {
		return probeResult{err: fmt.Errorf("building the probe of %s: %w", r.name, err)}
	}
	req.Header.Set("User-Agent", "carpoolsla-gateway-probe/"+g.cfg.Region)
	resp, err := g.probeClient.Do(req)
	d := time.Since(start)
	if err != nil {
		return probeResult{duration: d, err: fmt.Errorf("probing %s: %w", r.name, err)}
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return probeResult{duration: d, err: fmt.Errorf("probing %s: status %d", r.name, resp.StatusCode)}
	}
	return probeResult{ok: true, duration: d}
}

// probeOnce probes every region at once, waits for all (each is bounded by
// the probe timeout) and applies the results. Only the probe loop calls it
// (tests call it directly).
func (g *Gateway) probeOnce(ctx context.Context) {
	results := make([]probeResult, len(g.regions))
	var wg sync.WaitGroup
	for i, r := range g.regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = g.probe(ctx, r)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // cancelled mid-probe: the results say nothing about the targets
	}
	for i, r := range g.regions {
		g.applyProbe(r, results[i])
	}
}

// applyProbe moves a target's probe state machine and publishes the result:
// the routing decision reads r.healthy, so failover is immediate.
func (g *Gateway) applyProbe(r *region, res probeResult) {
	healthy, changed := r.probe.observe(res.ok)
	r.probeDuration.Set(res.duration.Seconds())
	if healthy {
		r.probeHealthy.Set(1)
	} else {
		r.probeHealthy.Set(0)
	}
	if !changed {
		return
	}
	r.healthy.Store(healthy)
	if healthy {
		g.log.Info("region healthy again", "target", r.name, "after_successes", g.cfg.Probes.HealthyAfter)
	} else {
		g.log.Warn("region unhealthy; failing over around it", "target", r.name,
			"after_failures", g.cfg.Probes.UnhealthyAfter, "err", res.err)
	}
}

// runProbes probes every Interval until ctx ends.
func (g *Gateway) runProbes(ctx context.Context) error {
	t := g.cfg.NewTicker(g.cfg.Probes.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			g.probeOnce(ctx)
			if g.probed != nil {
				g.probed <- struct{}{}
			}
		}
	}
}
