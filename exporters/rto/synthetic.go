package rto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// SyntheticName is the exporter label value of the synthetic probe.
const SyntheticName = "synthetic"

// Defaults of SyntheticConfig.
const (
	DefaultInterval = time.Second
	DefaultTimeout  = 900 * time.Millisecond
	// DefaultRiderID marks the probe's rides, so reports can leave them out.
	DefaultRiderID = "synthetic-probe"
	// maxLeftovers bounds the rides per region whose cancel failed and is
	// retried.
	maxLeftovers = 100
	// leftoversPerProbe bounds the leftover cancels after one probe.
	leftoversPerProbe = 5
)

// DefaultPoint is where the probe's rides start when no point is given
// (central Shanghai, where the demo's regions are).
var DefaultPoint = LatLng{Lat: 31.2304, Lng: 121.4737}

// LatLng is a point in degrees.
type LatLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// RegionAPI is one probed region.
type RegionAPI struct {
	// Name is the region label.
	Name string
	// BaseURL is the region's ride API (its service entry or gateway):
	// rides are created with POST BaseURL/v1/rides.
	BaseURL string
	// Point is the pickup; the dropoff is 0.01° north-east of it. Zero
	// uses DefaultPoint.
	Point LatLng
}

// Ticker delivers the probe rounds.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type realTicker struct{ *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.Ticker.C }

// SyntheticConfig configures a Synthetic probe.
type SyntheticConfig struct {
	// Regions are probed independently, every Interval; at least one.
	Regions []RegionAPI
	// Interval between two probes of a region; default 1 s.
	Interval time.Duration
	// Timeout bounds one probe (create and cancel); below Interval;
	// default 900 ms.
	Timeout time.Duration
	// RiderID is the rides' rider_id; default DefaultRiderID.
	RiderID string
	// Transport sends the requests; default an own *http.Transport.
	Transport http.RoundTripper
	// Now measures durations; default time.Now.
	Now func() time.Time
	// NewTicker makes the round ticker; default time.NewTicker.
	NewTicker func(time.Duration) Ticker
	// Log receives failures (once per change of outcome); default discard.
	Log *slog.Logger
}

func (c *SyntheticConfig) defaults() {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RiderID == "" {
		c.RiderID = DefaultRiderID
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
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     3 * c.Interval,
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	for i := range c.Regions {
		if c.Regions[i].Point == (LatLng{}) {
			c.Regions[i].Point = DefaultPoint
		}
	}
}

// Validate checks the configuration.
func (c SyntheticConfig) Validate() error {
	var errs []error
	if len(c.Regions) == 0 {
		errs = append(errs, errors.New("synthetic probe: no region; give at least one region=base-url"))
	}
	names := map[string]bool{}
	for _, r := range c.Regions {
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("synthetic probe: region with URL %q has no name", r.BaseURL))
		}
		if names[r.Name] {
			errs = append(errs, fmt.Errorf("synthetic probe: region %q is given twice", r.Name))
		}
		names[r.Name] = true
		if u, err := url.Parse(r.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("synthetic probe: region %s: base URL %q is not an http(s) URL with a host", r.Name, r.BaseURL))
		}
		if r.Point.Lat < -90 || r.Point.Lat > 90 || r.Point.Lng < -180 || r.Point.Lng > 180 {
			errs = append(errs, fmt.Errorf("synthetic probe: region %s: point %v is off the map", r.Name, r.Point))
		}
	}
	if c.Interval <= 0 || c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("synthetic probe: interval (%s) and timeout (%s) must be positive", c.Interval, c.Timeout))
	} else if c.Timeout >= c.Interval {
		errs = append(errs, fmt.Errorf("synthetic probe: timeout %s is not below interval %s; a probe must end before the next starts", c.Timeout, c.Interval))
	}
	return errors.Join(errs...)
}

var (
	synSuccessDesc  = desc(catalog.SyntheticProbeSuccess)
	synDurationDesc = desc(catalog.SyntheticProbeDuration)
	synRunsDesc     = desc(catalog.SyntheticProbeRuns)
	synFailuresDesc = desc(catalog.SyntheticProbeFailures)
)

// regionState is what the probe leaves for scrapes, and its leftovers.
type regionState struct {
	busy atomic.Bool // a probe of the region is in flight

	mu        sync.Mutex
	probed    bool
	ok        bool
	duration  time.Duration
	runs      float64
	failures  map[string]float64 // by step
	lastErr   string
	lastRide  string   // the last ride created (tests)
	leftovers []string // rides created whose cancel failed
}

// Synthetic is the synthetic business probe: Run probes, and it implements
// exporters.Scraper over the results.
type Synthetic struct {
	cfg    SyntheticConfig
	client *http.Client
	states []*regionState
	seq    atomic.Uint64
	// probed, when set (tests), is called after each region's probe in Run,
	// once the region can be probed again.
	probed func(region string)

	running atomic.Bool
}

// NewSynthetic returns a synthetic probe; call Run to start it.
func NewSynthetic(cfg SyntheticConfig) (*Synthetic, error) {
	cfg.Regions = append([]RegionAPI(nil), cfg.Regions...)
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Synthetic{cfg: cfg, client: &http.Client{Transport: cfg.Transport}}
	for range cfg.Regions {
		s.states = append(s.states, &regionState{failures: map[string]float64{
			catalog.SyntheticStepCreate: 0, catalog.SyntheticStepCancel: 0,
		}})
	}
	return s, nil
}

// Run probes every region at once and then every Interval until ctx ends;
// a region whose previous probe is still running skips the round. It
// waits for the probes in flight before it returns.
func (s *Synthetic) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("synthetic probe: Run is running already")
	}
	defer s.running.Store(false)
	t := s.cfg.NewTicker(s.cfg.Interval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		for i := range s.cfg.Regions {
			st := s.states[i]
			if !st.busy.CompareAndSwap(false, true) {
				continue
			}
			wg.Go(func() {
				s.probeRegion(ctx, i)
				st.busy.Store(false)
				if s.probed != nil && ctx.Err() == nil {
					s.probed(s.cfg.Regions[i].Name)
				}
			})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// probeRegion runs one probe of region i and records it.
func (s *Synthetic) probeRegion(ctx context.Context, i int) {
	r, st := s.cfg.Regions[i], s.states[i]
	pctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	start := s.cfg.Now()
	id, step, err := s.probe(pctx, r)
	took := s.cfg.Now().Sub(start)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the outcome says nothing about the region
	}
	st.mu.Lock()
	st.probed = true
	st.runs++
	st.duration = took
	st.ok = err == nil
	if id != "" {
		st.lastRide = id
	}
	if err != nil {
		st.failures[step]++
		if msg := err.Error(); msg != st.lastErr {
			s.cfg.Log.Warn("synthetic probe failed", "region", r.Name, "step", step, "err", msg)
			st.lastErr = msg
		}
		if step == catalog.SyntheticStepCancel && id != "" && retryable(err) {
			if len(st.leftovers) == maxLeftovers {
				s.cfg.Log.Warn("too many synthetic rides left to cancel; forgetting the oldest", "region", r.Name, "ride", st.leftovers[0])
				st.leftovers = st.leftovers[1:]
			}
			st.leftovers = append(st.leftovers, id)
		}
	} else if st.lastErr != "" {
		s.cfg.Log.Info("synthetic probe succeeds again", "region", r.Name)
		st.lastErr = ""
	}
	// A region that takes rides again gets its leftover rides cancelled,
	// a few per probe so that the next probe is not held up.
	var leftovers []string
	if err == nil && len(st.leftovers) > 0 {
		n := min(len(st.leftovers), leftoversPerProbe)
		leftovers = append(leftovers, st.leftovers[:n]...)
		st.leftovers = st.leftovers[n:]
	}
	st.mu.Unlock()
	if len(leftovers) > 0 {
		s.cancelLeftovers(ctx, i, leftovers)
	}
}

// cancelLeftovers retries the cancels that failed, outside any measured
// probe; those that fail again are kept for the next time.
func (s *Synthetic) cancelLeftovers(ctx context.Context, i int, ids []string) {
	r, st := s.cfg.Regions[i], s.states[i]
	var again []string
	for _, id := range ids {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err := s.cancel(cctx, r, id)
		cancel()
		if err != nil && retryable(err) {
			again = append(again, id)
		}
	}
	if len(again) > 0 {
		st.mu.Lock()
		st.leftovers = append(again, st.leftovers...)
		st.mu.Unlock()
	}
}

// rideRequest is the body of POST /v1/rides (docs/services/order.md).
type rideRequest struct {
	RiderID string `json:"rider_id"`
	Pickup  LatLng `json:"pickup"`
	Dropoff LatLng `json:"dropoff"`
}

// probe creates a ride and cancels it. It returns the ride's id (when one
// was created), and the failing step with its error.
func (s *Synthetic) probe(ctx context.Context, r RegionAPI) (string, string, error) {
	body, _ := json.Marshal(rideRequest{RiderID: s.cfg.RiderID, Pickup: r.Point,
		Dropoff: LatLng{Lat: min(r.Point.Lat+0.01, 90), Lng: min(r.Point.Lng+0.01, 180)}})
	key := fmt.Sprintf("%s-%s-%d-%d", s.cfg.RiderID, r.Name, time.Now().UnixNano(), s.seq.Add(1))
	resp, err := s.post(ctx, strings.TrimSuffix(r.BaseURL, "/")+"/v1/rides", body, key)
	if err != nil {
		return "", catalog.SyntheticStepCreate, fmt.Errorf("creating a ride in %s: %w", r.Name, err)
	}
	if resp.code != http.StatusCreated && resp.code != http.StatusOK {
		return "", catalog.SyntheticStepCreate, fmt.Errorf("creating a ride in %s: status %d: %s", r.Name, resp.code, resp.body)
	}
	var ride struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp.body, &ride); err != nil || ride.ID == "" {
		return "", catalog.SyntheticStepCreate, fmt.Errorf("creating a ride in %s: the answer %q carries no ride id", r.Name, resp.body)
	}
	if err := s.cancel(ctx, r, ride.ID); err != nil {
		return ride.ID, catalog.SyntheticStepCancel, err
	}
	return ride.ID, "", nil
}

func (s *Synthetic) cancel(ctx context.Context, r RegionAPI, id string) error {
	u := strings.TrimSuffix(r.BaseURL, "/") + "/v1/rides/" + url.PathEscape(id) + "/cancel"
	resp, err := s.post(ctx, u, []byte(`{"reason":"synthetic probe"}`), "")
	if err != nil {
		return fmt.Errorf("cancelling ride %s in %s: %w", id, r.Name, err)
	}
	if resp.code != http.StatusOK {
		return fmt.Errorf("cancelling ride %s in %s: %w", id, r.Name, statusError{resp.code, resp.body})
	}
	return nil
}

// statusError is an answer other than the one expected.
type statusError struct {
	code int
	body []byte
}

func (e statusError) Error() string { return fmt.Sprintf("status %d: %s", e.code, e.body) }

// retryable reports whether a failed cancel may succeed later: not when the
// region refused it for good (a 4xx: the ride is gone or past cancelling).
func retryable(err error) bool {
	se, ok := errors.AsType[statusError](err)
	return !ok || se.code >= 500
}

type answer struct {
	code int
	body []byte
}

func (s *Synthetic) post(ctx context.Context, u string, body []byte, key string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "carpoolsla-synthetic-probe")
	req.Header.Set("X-Rider-ID", s.cfg.RiderID)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return answer{}, fmt.Errorf("reading the answer: %w", err)
	}
	return answer{code: resp.StatusCode, body: bytes.TrimSpace(b)}, nil
}

// Name implements exporters.Scraper.
func (s *Synthetic) Name() string { return SyntheticName }

// Describe implements exporters.Scraper.
func (s *Synthetic) Describe(ch chan<- *prometheus.Desc) {
	ch <- synSuccessDesc
	ch <- synDurationDesc
	ch <- synRunsDesc
	ch <- synFailuresDesc
}

// Scrape implements exporters.Scraper: each probed region's last outcome
// and counts. A probe whose loop is not running fails the scrape (up 0).
func (s *Synthetic) Scrape(_ context.Context, ch chan<- prometheus.Metric) error {
	for i, r := range s.cfg.Regions {
		st := s.states[i]
		st.mu.Lock()
		if st.probed {
			ok := 0.0
			if st.ok {
				ok = 1
			}
			ch <- prometheus.MustNewConstMetric(synSuccessDesc, prometheus.GaugeValue, ok, r.Name)
			ch <- prometheus.MustNewConstMetric(synDurationDesc, prometheus.GaugeValue, st.duration.Seconds(), r.Name)
			ch <- prometheus.MustNewConstMetric(synRunsDesc, prometheus.CounterValue, st.runs, r.Name)
			for _, step := range []string{catalog.SyntheticStepCreate, catalog.SyntheticStepCancel} {
				ch <- prometheus.MustNewConstMetric(synFailuresDesc, prometheus.CounterValue, st.failures[step], r.Name, step)
			}
		}
		st.mu.Unlock()
	}
	if !s.running.Load() {
		return errors.New("the synthetic probe loop is not running")
	}
	return nil
}
