package gateway

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Upstream is one region the gateway can send traffic to.
type Upstream struct {
	// Name is the region's name, e.g. "sh-a". It is the target label of the
	// gateway's metrics and the key of the routing table.
	Name string
	// City is informational (logs, GET /admin/routing).
	City string
	// BaseURL is the region's service entry, e.g. "http://127.0.0.1:8081".
	// Requests keep their path and query, appended to BaseURL's path; probes
	// send HEAD BaseURL + Probes.Path.
	BaseURL string
}

// ProbeConfig configures the active health checks of every region.
type ProbeConfig struct {
	// Interval between two probes of a target. Default 1 s.
	Interval time.Duration
	// Timeout of one probe; it must be shorter than Interval. Default 300 ms.
	Timeout time.Duration
	// UnhealthyAfter consecutive failures mark a target unhealthy. Default 3.
	UnhealthyAfter int
	// HealthyAfter consecutive successes mark it healthy again. Default 2.
	HealthyAfter int
	// Path probed with HEAD. Default "/healthz".
	Path string
}

// ProbeConfigFromSpec takes the probe settings of the SLA spec
// (spec.Routing.Probes); Path keeps its default.
func ProbeConfigFromSpec(p spec.Probes) ProbeConfig {
	return ProbeConfig{
		Interval:       time.Duration(p.Interval),
		Timeout:        time.Duration(p.Timeout),
		UnhealthyAfter: p.UnhealthyAfter,
		HealthyAfter:   p.HealthyAfter,
	}
}

// RetryConfig configures the retry of failed requests that carry an
// Idempotency-Key.
type RetryConfig struct {
	// BudgetRatio caps retries as a share of requests over BudgetWindow:
	// a retry is allowed while retries < BudgetRatio × requests. Default 0.1
	// (at most 10 % extra load). Set Disabled to turn retries off.
	BudgetRatio float64
	// BudgetWindow is the sliding window the ratio is counted over. Default 10 s.
	BudgetWindow time.Duration
	// MinRetriesPerSecond is a floor under the ratio: this many retries a
	// second (over BudgetWindow) are allowed whatever the traffic, so a
	// region that dies while traffic is low does not fail riders for want of
	// budget (Finagle's minRetriesPerSec). Default 10; negative for none.
	MinRetriesPerSecond float64
	// Disabled turns retries off.
	Disabled bool
}

// EjectionConfig configures passive outlier detection (as Envoy's
// consecutive-5xx detector): ConsecutiveFailures failed attempts in a row to
// a region eject it at once for BaseEjection × (times ejected), at most
// MaxEjection. Each DecayInterval a region spends back in service lowers
// its count of ejections by one.
type EjectionConfig struct {
	// ConsecutiveFailures in a row (5xx, connection error or timeout) eject a
	// region. Default 5.
	ConsecutiveFailures int
	// BaseEjection is the first ejection's length. Default 30 s.
	BaseEjection time.Duration
	// MaxEjection caps an ejection's length. Default 300 s.
	MaxEjection time.Duration
	// DecayInterval: each one spent in service forgets one past ejection.
	// Default 10 s.
	DecayInterval time.Duration
	// Disabled turns passive ejection off.
	Disabled bool
}

// FaultInjector applies injected faults to the gateway's proxied traffic.
// *faults.Injector satisfies it.
type FaultInjector interface {
	Middleware(service string, next http.Handler) http.Handler
}

// Ticker delivers ticks on C until Stop. NewTicker in Config makes them;
// tests inject a ticker they drive by hand.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Config configures a Gateway. The zero value of every field but Region and
// Regions takes its default.
type Config struct {
	// Region is the gateway's own region; it must be one of Regions.
	Region string
	// Regions lists every region, the gateway's own included.
	Regions []Upstream
	// Probes configures the active health checks (from spec.Routing.Probes).
	Probes ProbeConfig
	// AdminToken protects PUT/GET /admin/routing (Bearer token). Empty
	// disables the admin API (404); the pull fallback still works.
	AdminToken string
	// WeightsURL is fetched (GET, same JSON as PUT /admin/routing, with the
	// AdminToken as Bearer token) when pushes stop arriving. Empty disables
	// the pull fallback.
	WeightsURL string
	// PullInterval is how often the pull loop checks whether pushes stopped.
	// Default 5 s (the spec's weight period).
	PullInterval time.Duration
	// PushStaleAfter without a push makes the gateway pull. Default 15 s.
	PushStaleAfter time.Duration
	// Retry configures retries of requests carrying an Idempotency-Key.
	Retry RetryConfig
	// Ejection configures passive outlier detection.
	Ejection EjectionConfig
	// TryTimeout bounds one attempt to an upstream, response body included.
	// Default 2 s.
	TryTimeout time.Duration
	// MaxBodyBytes bounds a request body (it is buffered to be retried);
	// a larger one is answered 413. Default 1 MiB.
	MaxBodyBytes int64
	// Units is the number of logical units riders are hashed into. Default
	// 64; at least one per region.
	Units int
	// Faults, when set, applies injected faults (service "gateway") to
	// proxied requests.
	Faults FaultInjector
	// Transport sends requests to upstreams; default a tuned *http.Transport.
	Transport http.RoundTripper
	// ProbeTransport sends probes; default its own *http.Transport.
	ProbeTransport http.RoundTripper
	// Now is the clock; default time.Now.
	Now func() time.Time
	// NewTicker makes the probe and pull tickers; default time.NewTicker.
	NewTicker func(time.Duration) Ticker
}

// Service is the service label value of the gateway's metrics and logs and
// the service name its faults are injected under.
const Service = "gateway"

// defaults fills in every unset field.
func (c *Config) defaults() {
	if c.Probes.Interval == 0 {
		c.Probes.Interval = time.Second
	}
	if c.Probes.Timeout == 0 {
		c.Probes.Timeout = 300 * time.Millisecond
	}
	if c.Probes.UnhealthyAfter == 0 {
		c.Probes.UnhealthyAfter = 3
	}
	if c.Probes.HealthyAfter == 0 {
		c.Probes.HealthyAfter = 2
	}
	if c.Probes.Path == "" {
		c.Probes.Path = "/healthz"
	}
	if c.PullInterval == 0 {
		c.PullInterval = 5 * time.Second
	}
	if c.PushStaleAfter == 0 {
		c.PushStaleAfter = 15 * time.Second
	}
	if c.Retry.BudgetRatio == 0 {
		c.Retry.BudgetRatio = 0.1
	}
	if c.Retry.BudgetWindow == 0 {
		c.Retry.BudgetWindow = 10 * time.Second
	}
	switch {
	case c.Retry.MinRetriesPerSecond == 0:
		c.Retry.MinRetriesPerSecond = 10
	case c.Retry.MinRetriesPerSecond < 0:
		c.Retry.MinRetriesPerSecond = 0
	}
	if c.Ejection.ConsecutiveFailures == 0 {
		c.Ejection.ConsecutiveFailures = 5
	}
	if c.Ejection.BaseEjection == 0 {
		c.Ejection.BaseEjection = 30 * time.Second
	}
	if c.Ejection.MaxEjection == 0 {
		c.Ejection.MaxEjection = 300 * time.Second
	}
	if c.Ejection.DecayInterval == 0 {
		c.Ejection.DecayInterval = 10 * time.Second
	}
	if c.TryTimeout == 0 {
		c.TryTimeout = 2 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.Units == 0 {
		c.Units = 64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewTicker == nil {
		c.NewTicker = func(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
	}
}

// Validate checks the configuration, fields against each other included.
func (c Config) Validate() error {
	var errs []error
	if c.Region == "" {
		errs = append(errs, errors.New("region: the gateway's own region is required"))
	}
	if len(c.Regions) == 0 {
		errs = append(errs, errors.New("regions: at least one region is required"))
	}
	seen := map[string]bool{}
	for i, u := range c.Regions {
		switch {
		case u.Name == "":
			errs = append(errs, fmt.Errorf("regions[%d].name is empty", i))
		case seen[u.Name]:
			errs = append(errs, fmt.Errorf("regions[%d].name %q is listed twice", i, u.Name))
		}
		seen[u.Name] = true
		if p, err := url.Parse(u.BaseURL); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("regions[%d].base_url %q must be an absolute http(s) URL", i, u.BaseURL))
		}
	}
	if c.Region != "" && len(c.Regions) > 0 && !seen[c.Region] {
		errs = append(errs, fmt.Errorf("region %q is not one of regions", c.Region))
	}
	p := c.Probes
	if p.Interval <= 0 || p.Timeout <= 0 {
		errs = append(errs, errors.New("probes: interval and timeout must be positive"))
	} else if p.Timeout >= p.Interval {
		errs = append(errs, fmt.Errorf("probes.timeout %v must be shorter than probes.interval %v", p.Timeout, p.Interval))
	}
	if p.UnhealthyAfter < 1 || p.HealthyAfter < 1 {
		errs = append(errs, errors.New("probes: unhealthy_after and healthy_after must be at least 1"))
	}
	if c.Retry.BudgetRatio < 0 || c.Retry.BudgetRatio > 1 {
		errs = append(errs, fmt.Errorf("retry.budget_ratio %g must be in [0, 1]", c.Retry.BudgetRatio))
	}
	if c.Retry.MinRetriesPerSecond > 10_000 || math.IsNaN(c.Retry.MinRetriesPerSecond) {
		errs = append(errs, fmt.Errorf("retry.min_retries_per_second %g must be at most 10000", c.Retry.MinRetriesPerSecond))
	}
	if c.Retry.BudgetWindow <= 0 {
		errs = append(errs, errors.New("retry.budget_window must be positive"))
	}
	e := c.Ejection
	if e.ConsecutiveFailures < 1 {
		errs = append(errs, errors.New("ejection.consecutive_failures must be at least 1"))
	}
	if e.BaseEjection <= 0 || e.MaxEjection < e.BaseEjection {
		errs = append(errs, fmt.Errorf("ejection: base_ejection %v must be positive and at most max_ejection %v", e.BaseEjection, e.MaxEjection))
	}
	if e.DecayInterval <= 0 {
		errs = append(errs, errors.New("ejection.decay_interval must be positive"))
	}
	if c.TryTimeout <= 0 {
		errs = append(errs, errors.New("try_timeout must be positive"))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("max_body_bytes must be positive"))
	}
	if c.Units < len(c.Regions) {
		errs = append(errs, fmt.Errorf("units %d must be at least the number of regions (%d) so that every region is home to a unit", c.Units, len(c.Regions)))
	}
	if c.WeightsURL != "" {
		if p, err := url.Parse(c.WeightsURL); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("weights_url %q must be an absolute http(s) URL", c.WeightsURL))
		}
		if c.PullInterval <= 0 || c.PushStaleAfter <= 0 {
			errs = append(errs, errors.New("pull_interval and push_stale_after must be positive"))
		}
	}
	return errors.Join(errs...)
}

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }
