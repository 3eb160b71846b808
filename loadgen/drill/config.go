package drill

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Target is a running deployment, reached by URL.
type Target struct {
	// Regions maps every region of the spec to its URLs.
	Regions map[string]RegionTarget
	// Engine is the SLA engine's status URL (GET, JSON with each region's
	// breaker state; see EngineStatus); empty when no engine runs.
	Engine string
	// Token is the admin bearer token of the fault admin API, the gateways'
	// GET /admin/routing and the engine's status.
	Token string
}

// RegionTarget is one region's URLs.
type RegionTarget struct {
	// Gateway is the region's gateway: riders create rides through it, and
	// its GET /admin/routing tells where it routes.
	Gateway string
	// API is the region's own ride API (its service entry): acknowledged
	// rides are read back here, bypassing the gateways. Default: Faults.
	API string
	// Faults serves the region's /admin/faults. Default: API.
	Faults string
	// Metrics is the /metrics URL carrying the region's sync lag and RPO
	// exposure (as a replication target). Default: API + "/metrics".
	Metrics string
}

// LatLng is a point, in degrees.
type LatLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// DefaultPoint is where the drill's rides start (central Shanghai); the
// dropoff is 0.01° north-east of it.
var DefaultPoint = LatLng{31.2304, 121.4737}

// Defaults of Config.
const (
	DefaultRate           = 20.0
	DefaultBaseline       = 10 * time.Second
	DefaultHold           = 30 * time.Second
	DefaultSettle         = 2 * time.Second
	DefaultRecoverTimeout = 2 * time.Minute
	DefaultPoll           = 100 * time.Millisecond
	DefaultMetricsPoll    = 500 * time.Millisecond
	DefaultRequestTimeout = 3 * time.Second
	DefaultMaxInFlight    = 256
	DefaultUnits          = 64
	DefaultRidersPerHome  = 32
	DefaultTail           = 2 * time.Second
)

// Config configures one drill.
type Config struct {
	// Spec gives the regions, their cities and the DR objectives.
	Spec *spec.Spec
	// Target is the deployment under test.
	Target Target
	// Scenario is one of spec.Scenarios.
	Scenario string
	// Region is the region the fault hits. For same_city_loss it names the
	// city through one of its regions (every region of that city is hit);
	// City may name it instead.
	Region string
	City   string
	// Value overrides the scenario's fault size (latency_spike: a latency,
	// default 400ms; clock_skew: a skew, default 2s).
	Value string

	// Rate is the rides created per second, over all riders (default 20).
	Rate float64
	// Baseline is how long the load must run without a failure, every
	// gateway seeing every region healthy, before the fault (default 10s:
	// the gateways' retry budget is 10 % of their last 10 s of requests, so
	// a shorter baseline leaves them less budget than steady traffic would);
	// BaselineTimeout bounds the wait for it (default 3×Baseline + 10s).
	Baseline        time.Duration
	BaselineTimeout time.Duration
	// Hold is how long the fault is held at least (default 30s). A failover
	// scenario holds it until the failover is measured, at most MaxWait
	// after T0 (default the scenario's RTO objective + 10s).
	Hold    time.Duration
	MaxWait time.Duration
	// Settle is the time given to replication before acknowledged rides are
	// looked for in the surviving regions, and again for those still missing
	// (default 2s).
	Settle time.Duration
	// RecoverTimeout bounds the wait for recovery after the fault is
	// cleared (default 2m).
	RecoverTimeout time.Duration
	// Tail is how long the load runs on after recovery (default 2s).
	Tail time.Duration
	// Poll is the interval of the gateway and engine status polls, the
	// resolution of the detect, decide and shift phases (default 100ms).
	Poll time.Duration
	// MetricsPoll is the interval of the sync-lag scrapes (default 500ms).
	MetricsPoll time.Duration
	// RequestTimeout bounds one ride request (default 3s).
	RequestTimeout time.Duration
	// MaxInFlight bounds concurrent ride requests; a ride due while it is
	// reached is counted as dropped (default 256).
	MaxInFlight int
	// Fallbacks is how many other regions' gateways a rider's app tries,
	// in spec order after its home, with the same Idempotency-Key, when a
	// gateway does not answer or answers 5xx (default 0: every other
	// region's, as an app holding every region's endpoint would; negative:
	// none).
	Fallbacks int
	// Units is the gateways' logical-unit count (default 64), to home riders.
	Units int
	// RidersPerHome is how many riders each region is home to (default 32).
	RidersPerHome int
	// Point is where rides start (default DefaultPoint).
	Point LatLng

	// External makes the runner measure a fault injected by someone else
	// (Chaos Mesh): it neither injects nor clears. T0 is FaultAt when set,
	// else the first failed health check of a faulted region or the first
	// failed ride attempt after the baseline, whichever comes first;
	// ExternalWait bounds the wait for it (default 5m).
	External     bool
	FaultAt      time.Time
	ExternalWait time.Duration

	// HTTP is the client of every call (nil: a default client); tests wrap
	// its transport to observe the drill independently.
	HTTP *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives progress (nil: discarded).
	Log *slog.Logger
	// Metrics receives the RTO phases and RPO (*rto.Drills implements it);
	// nil: not recorded.
	Metrics MetricsRecorder
	// Recorder stores the result (ClickHouse's drill_results); nil: not stored.
	Recorder Recorder
	// RunID names the drill's riders and idempotency keys (default: from the clock).
	RunID string
}

func (c *Config) defaults() {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Baseline == 0 {
		c.Baseline = DefaultBaseline
	}
	if c.BaselineTimeout == 0 {
		c.BaselineTimeout = 3*c.Baseline + 10*time.Second
	}
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.RecoverTimeout == 0 {
		c.RecoverTimeout = DefaultRecoverTimeout
	}
	if c.Tail == 0 {
		c.Tail = DefaultTail
	}
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	if c.MetricsPoll == 0 {
		c.MetricsPoll = DefaultMetricsPoll
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Fallbacks == 0 && c.Spec != nil {
		c.Fallbacks = len(c.Spec.Regions) - 1
	} else if c.Fallbacks < 0 {
		c.Fallbacks = 0
	}
	if c.Units == 0 {
		c.Units = DefaultUnits
	}
	if c.RidersPerHome == 0 {
		c.RidersPerHome = DefaultRidersPerHome
	}
	if c.Point == (LatLng{}) {
		c.Point = DefaultPoint
	}
	if c.ExternalWait == 0 {
		c.ExternalWait = 5 * time.Minute
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.RunID == "" {
		c.RunID = fmt.Sprintf("%x", c.Now().UnixNano())
	}
	regions := make(map[string]RegionTarget, len(c.Target.Regions))
	for name, rt := range c.Target.Regions {
		if rt.API == "" {
			rt.API = rt.Faults
		}
		if rt.Faults == "" {
			rt.Faults = rt.API
		}
		if rt.Metrics == "" && rt.API != "" {
			rt.Metrics = strings.TrimSuffix(rt.API, "/") + "/metrics"
		}
		regions[name] = rt
	}
	c.Target.Regions = regions
}

// Validate checks the configuration, naming the field at fault and what to
// do. Call it after defaults (New does).
func (c *Config) Validate() error {
	if c.Spec == nil {
		return errors.New("drill: no spec; load one with spec.Load (--spec)")
	}
	var errs []error
	names := c.Spec.RegionNames()
	if !slices.Contains(spec.Scenarios, c.Scenario) {
		errs = append(errs, fmt.Errorf("scenario %q: use one of %s", c.Scenario, strings.Join(spec.Scenarios, ", ")))
	}
	if c.Scenario == spec.ScenarioSameCityLoss && c.City != "" {
		if len(regionsOfCity(c.Spec, c.City)) == 0 {
			errs = append(errs, fmt.Errorf("city %q: no region of the spec is in it; use one of %s", c.City, strings.Join(cities(c.Spec), ", ")))
		}
	} else if !slices.Contains(names, c.Region) {
		errs = append(errs, fmt.Errorf("region %q: use one of %s", c.Region, strings.Join(names, ", ")))
	}
	if len(names) < 2 {
		errs = append(errs, errors.New("the spec has one region: a drill needs another region to fail over to"))
	}
	if c.Value != "" && c.Scenario != spec.ScenarioLatencySpike && c.Scenario != spec.ScenarioClockSkew {
		errs = append(errs, fmt.Errorf("value %q: only latency_spike (a latency) and clock_skew (a skew) take a value", c.Value))
	}
	for _, n := range names {
		rt, ok := c.Target.Regions[n]
		if !ok {
			errs = append(errs, fmt.Errorf("target: region %s has no URLs; give its gateway and its API (--gateway %s=URL --faults %s=URL)", n, n, n))
			continue
		}
		for field, u := range map[string]string{"gateway": rt.Gateway, "api": rt.API, "metrics": rt.Metrics} {
			if err := checkURL(u); err != nil {
				errs = append(errs, fmt.Errorf("target: region %s %s URL %q: %w", n, field, u, err))
			}
		}
	}
	for n := range c.Target.Regions {
		if !slices.Contains(names, n) {
			errs = append(errs, fmt.Errorf("target: region %q is not in the spec (%s)", n, strings.Join(names, ", ")))
		}
	}
	if c.Target.Engine != "" {
		if err := checkURL(c.Target.Engine); err != nil {
			errs = append(errs, fmt.Errorf("target: engine URL %q: %w", c.Target.Engine, err))
		}
	}
	if c.Target.Token == "" {
		errs = append(errs, errors.New("target: no admin token; the fault admin API and the gateways' routing status need it (--admin-token-file)"))
	}
	if c.Rate <= 0 || c.Rate > 10000 {
		errs = append(errs, fmt.Errorf("rate %g: give rides per second in (0, 10000]", c.Rate))
	}
	for name, d := range map[string]time.Duration{"baseline": c.Baseline, "baseline timeout": c.BaselineTimeout, "hold": c.Hold,
		"settle": c.Settle, "recover timeout": c.RecoverTimeout, "tail": c.Tail, "poll": c.Poll, "metrics poll": c.MetricsPoll,
		"request timeout": c.RequestTimeout, "external wait": c.ExternalWait} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	if c.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("max wait %s: must not be negative (0 takes the RTO objective + 10s)", c.MaxWait))
	}
	if c.BaselineTimeout < c.Baseline {
		errs = append(errs, fmt.Errorf("baseline timeout %s is shorter than the baseline %s: the baseline could never be reached", c.BaselineTimeout, c.Baseline))
	}
	if c.Poll > time.Second {
		errs = append(errs, fmt.Errorf("poll %s: the phases are measured to one poll; keep it at 1s or below", c.Poll))
	}
	if c.MaxInFlight < 1 || c.Units < len(names) || c.RidersPerHome < 1 {
		errs = append(errs, fmt.Errorf("max in flight %d, units %d, riders per home %d: need at least 1, the region count and 1", c.MaxInFlight, c.Units, c.RidersPerHome))
	}
	if !c.FaultAt.IsZero() && !c.External {
		errs = append(errs, errors.New("fault-at is for external faults: set External (--external-fault) too"))
	}
	return errors.Join(errs...)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an absolute http(s) URL such as http://127.0.0.1:18105")
	}
	return nil
}

func regionsOfCity(s *spec.Spec, city string) []string {
	var out []string
	for _, r := range s.Regions {
		if r.City == city {
			out = append(out, r.Name)
		}
	}
	return out
}

func cities(s *spec.Spec) []string {
	var out []string
	for _, r := range s.Regions {
		if !slices.Contains(out, r.City) {
			out = append(out, r.City)
		}
	}
	return out
}

func cityOf(s *spec.Spec, region string) string {
	for _, r := range s.Regions {
		if r.Name == region {
			return r.City
		}
	}
	return ""
}
