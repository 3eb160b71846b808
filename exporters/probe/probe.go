// Package probe runs the seed's health probes as an exporter: every
// interval (1 s) a region's prober sends HEAD to each target with a timeout
// (300 ms); UnhealthyAfter (3) consecutive failures make a target
// unhealthy, HealthyAfter (2) consecutive successes healthy again. It
// exports, per prober region and target:
//
//	carpool_probe_healthy{region,target}           1 healthy, 0 unhealthy
//	carpool_probe_duration_seconds{region,target}  the last probe's duration
//	carpool_probe_failures_total{region,target}    failed probes
//
// The probe loop (Run) owns the state machine and runs on an injected
// ticker and clock; scrapes read the state it left.
package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Name is the exporter label value of the probe exporter.
const Name = "probe"

// The seed's probe settings, the defaults.
const (
	DefaultInterval       = time.Second
	DefaultTimeout        = 300 * time.Millisecond
	DefaultUnhealthyAfter = 3
	DefaultHealthyAfter   = 2
)

// Target is one probed URL.
type Target struct {
	// Name is the target label, e.g. the probed region.
	Name string
	// URL receives HEAD; 2xx and 3xx (not followed) are success.
	URL string
}

// Ticker delivers the probe rounds; time.Ticker in production, a channel
// the test drives otherwise.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type realTicker struct{ *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.Ticker.C }

// Config configures a Prober. Zero fields take the seed's defaults.
type Config struct {
	// Region is the prober's region, the region label; required.
	Region string
	// Targets are probed concurrently every Interval; at least one.
	Targets []Target
	// Interval between two probe rounds; default 1 s.
	Interval time.Duration
	// Timeout of one probe; below Interval; default 300 ms.
	Timeout time.Duration
	// UnhealthyAfter consecutive failures make a target unhealthy; default 3.
	UnhealthyAfter int
	// HealthyAfter consecutive successes make it healthy again; default 2.
	HealthyAfter int
	// Transport sends the probes; default an own *http.Transport that dials
	// within Timeout.
	Transport http.RoundTripper
	// Now measures probe durations; default time.Now.
	Now func() time.Time
	// NewTicker makes the round ticker; default time.NewTicker.
	NewTicker func(time.Duration) Ticker
	// Log receives health changes; default discard.
	Log *slog.Logger
}

// ConfigFromSpec takes interval, timeout and thresholds from the SLA
// spec's routing.probes.
func ConfigFromSpec(region string, p spec.Probes, targets []Target) Config {
	return Config{
		Region: region, Targets: targets,
		Interval: time.Duration(p.Interval), Timeout: time.Duration(p.Timeout),
		UnhealthyAfter: p.UnhealthyAfter, HealthyAfter: p.HealthyAfter,
	}
}

func (c *Config) defaults() {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.UnhealthyAfter == 0 {
		c.UnhealthyAfter = DefaultUnhealthyAfter
	}
	if c.HealthyAfter == 0 {
		c.HealthyAfter = DefaultHealthyAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewTicker == nil {
		c.NewTicker = func(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
	}
	if c.Transport == nil {
		c.Transport = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: c.Timeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     3 * c.Interval,
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration, fields against each other.
func (c Config) Validate() error {
	var errs []error
	if c.Region == "" {
		errs = append(errs, errors.New("probe: region is empty; set the prober's region (the region label)"))
	}
	if len(c.Targets) == 0 {
		errs = append(errs, errors.New("probe: no target; give at least one name=url"))
	}
	names := map[string]bool{}
	for _, t := range c.Targets {
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("probe: target %q has no name", t.URL))
		}
		if names[t.Name] {
			errs = append(errs, fmt.Errorf("probe: target %q is given twice", t.Name))
		}
		names[t.Name] = true
		if u, err := url.Parse(t.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("probe: target %s: URL %q is not an http(s) URL with a host", t.Name, t.URL))
		}
	}
	if c.Interval <= 0 || c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("probe: interval (%s) and timeout (%s) must be positive", c.Interval, c.Timeout))
	} else if c.Timeout >= c.Interval {
		errs = append(errs, fmt.Errorf("probe: timeout %s is not below interval %s; a probe must end before the next starts", c.Timeout, c.Interval))
	}
	if c.UnhealthyAfter < 1 || c.HealthyAfter < 1 {
		errs = append(errs, fmt.Errorf("probe: unhealthy-after (%d) and healthy-after (%d) must be at least 1", c.UnhealthyAfter, c.HealthyAfter))
	}
	return errors.Join(errs...)
}

// state is the health of one target: UnhealthyAfter failures in a row
// make it unhealthy, HealthyAfter successes in a row healthy again. A
// target starts healthy, as the seed's (and the gateway's) probes do.
type state struct {
	healthy          bool
	fails, successes int
}

// observe records one probe result and reports whether the health changed.
func (s *state) observe(ok bool, unhealthyAfter, healthyAfter int) (changed bool) {
	if ok {
		s.fails = 0
		s.successes++
		if !s.healthy && s.successes >= healthyAfter {
			s.healthy = true
			return true
		}
		return false
	}
	s.successes = 0
	s.fails++
	if s.healthy && s.fails >= unhealthyAfter {
		s.healthy = false
		return true
	}
	return false
}

// targetState is what the probe loop leaves for scrapes.
type targetState struct {
	state
	probed   bool // at least one probe finished
	duration time.Duration
	failures float64
}

var (
	healthyDesc  = desc(catalog.ProbeHealthy)
	durationDesc = desc(catalog.ProbeDuration)
	failuresDesc = desc(catalog.ProbeFailures)
)

func desc(m catalog.Metric) *prometheus.Desc {
	return prometheus.NewDesc(m.Name, m.Help, m.Labels, nil)
}

// Prober probes its targets in Run and implements exporters.Scraper over
// the results.
type Prober struct {
	cfg    Config
	client *http.Client
	// probed, when set (tests), is called after each round.
	probed func()

	mu      sync.Mutex
	running bool
	targets []targetState
}

// New returns a Prober; call Run to start probing.
func New(cfg Config) (*Prober, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Prober{cfg: cfg, targets: make([]targetState, len(cfg.Targets))}
	for i := range p.targets {
		p.targets[i].healthy = true
	}
	p.client = &http.Client{
		Transport:     cfg.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p, nil
}

// Run probes every target at once, then every Interval, until ctx ends.
func (p *Prober) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return errors.New("probe: Run is running already")
	}
	p.running = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
		if t, ok := p.cfg.Transport.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	}()
	t := p.cfg.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.round(ctx)
		if p.probed != nil {
			p.probed()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// result is one probe's outcome.
type result struct {
	ok       bool
	duration time.Duration
	err      error
}

// round probes every target concurrently, waits for all (each is bounded
// by Timeout) and applies the results.
func (p *Prober) round(ctx context.Context) {
	results := make([]result, len(p.cfg.Targets))
	var wg sync.WaitGroup
	for i, t := range p.cfg.Targets {
		wg.Go(func() { results[i] = p.probe(ctx, t) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // cancelled mid-round: the results say nothing about the targets
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range results {
		ts := &p.targets[i]
		ts.probed = true
		ts.duration = r.duration
		if !r.ok {
			ts.failures++
		}
		if ts.observe(r.ok, p.cfg.UnhealthyAfter, p.cfg.HealthyAfter) {
			if ts.healthy {
				p.cfg.Log.Info("target healthy again", "region", p.cfg.Region, "target", p.cfg.Targets[i].Name, "after_successes", p.cfg.HealthyAfter)
			} else {
				p.cfg.Log.Warn("target unhealthy", "region", p.cfg.Region, "target", p.cfg.Targets[i].Name,
					"after_failures", p.cfg.UnhealthyAfter, "err", r.err)
			}
		}
	}
}

// probe sends HEAD to one target: success is 2xx or 3xx within Timeout.
func (p *Prober) probe(ctx context.Context, t Target) result {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	start := p.cfg.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, t.URL, nil)
	if err != nil {
		return result{err: fmt.Errorf("building the probe of %s: %w", t.Name, err)}
	}
	req.Header.Set("User-Agent", "carpoolsla-probe/"+p.cfg.Region)
	resp, err := p.client.Do(req)
	d := p.cfg.Now().Sub(start)
	if err != nil {
		return result{duration: d, err: fmt.Errorf("probing %s: %w", t.Name, err)}
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return result{duration: d, err: fmt.Errorf("probing %s: status %d", t.Name, resp.StatusCode)}
	}
	return result{ok: true, duration: d}
}

// Name implements exporters.Scraper.
func (p *Prober) Name() string { return Name }

// Describe implements exporters.Scraper.
func (p *Prober) Describe(ch chan<- *prometheus.Desc) {
	ch <- healthyDesc
	ch <- durationDesc
	ch <- failuresDesc
}

// Scrape implements exporters.Scraper: it sends each probed target's
// state. A target not yet probed has no series; a prober whose loop is not
// running fails the scrape (up 0), as its numbers are going stale.
func (p *Prober) Scrape(_ context.Context, ch chan<- prometheus.Metric) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, ts := range p.targets {
		if !ts.probed {
			continue
		}
		name := p.cfg.Targets[i].Name
		healthy := 0.0
		if ts.healthy {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(healthyDesc, prometheus.GaugeValue, healthy, p.cfg.Region, name)
		ch <- prometheus.MustNewConstMetric(durationDesc, prometheus.GaugeValue, ts.duration.Seconds(), p.cfg.Region, name)
		ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.CounterValue, ts.failures, p.cfg.Region, name)
	}
	if !p.running {
		return errors.New("the probe loop is not running")
	}
	return nil
}

// Healthy reports a target's current verdict (true before its first probe).
func (p *Prober) Healthy(target string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, t := range p.cfg.Targets {
		if t.Name == target {
			return p.targets[i].healthy
		}
	}
	return false
}
