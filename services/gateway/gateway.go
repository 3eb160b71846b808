// Package gateway is a region's HTTP entry. It routes each request to a
// region by smooth weighted round robin over the region weights the SLA
// engine pushes (PUT /admin/routing, with a pull fallback), never to a region
// whose breaker is open; probes every region and fails over around unhealthy
// ones at once; ejects a region after consecutive failures on live traffic
// (Envoy-style outlier detection, never the last serving region); retries a
// failed request that carries an Idempotency-Key once in another region,
// within a 10 % retry budget; and runs payments in the rider's home region
// (unit-based routing), answering 409 when that region is unavailable.
//
// A Gateway is a library: New builds it, Handler serves it and Run runs its
// probes and weight pull loop until the context ends.
package gateway

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Header names the gateway reads or writes.
const (
	// HeaderRegion is set on every proxied response to the region that served it.
	HeaderRegion = "X-Carpool-Region"
	// HeaderRiderID carries the rider id that places a request in a logical unit.
	HeaderRiderID = "X-Rider-ID"
	// HeaderUnit is set on responses to requests with a rider id: the rider's unit.
	HeaderUnit = "X-Carpool-Unit"
	// HeaderIdempotencyKey makes a request safe to retry in another region.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Gateway routes one region's incoming HTTP traffic between regions.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	m      *metrics

	regions []*region
	byName  map[string]*region
	units   []Unit // indexed by unit number

	mu       sync.Mutex // guards the routing table, the SWRR state and ejections
	rr       swrr
	weights  []int64  // milli-weights by region index
	eligible []bool   // scratch for pick
	names    []string // region names by index (the rendezvous hash's peers)
	version  int64
	lastPush time.Time

	budget      *retryBudget
	transport   http.RoundTripper
	probeClient *http.Client
	proxy       *httputil.ReverseProxy
	handler     http.Handler

	obsMu sync.RWMutex
	obs   map[obsKey]prometheus.Observer

	// probed, when set (tests), receives after each probe round of Run.
	probed chan struct{}

	// cached metric children
	panicRoutes, deniedBudget, deniedNoRegion prometheus.Counter
}

// breaker is a region's circuit breaker state as the engine reports it.
type breaker uint8

const (
	breakerClosed breaker = iota
	breakerRecovering
	breakerOpen
)

// region is one routing target.
type region struct {
	idx      int
	name     string
	city     string
	base     *url.URL
	probeURL string
	spanName string

	healthy     atomic.Bool  // probe verdict; read on every routing decision
	consecutive atomic.Int64 // consecutive failed attempts on live traffic
	probe       probeState   // owned by the probe loop

	breaker breaker // guarded by Gateway.mu
	out     outlier // guarded by Gateway.mu

	// cached metric children
	probeHealthy, probeDuration prometheus.Gauge
	attemptOK, attemptErr       prometheus.Counter
	retries, ejections, skipped prometheus.Counter
	homeUnavailable             prometheus.Counter
	routeWeight                 prometheus.Gauge
}

// New builds the gateway of cfg.Region. reg receives its metrics (nil: not
// registered), log its logs (nil: discarded), tp its spans (nil: no-op).
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger, tp trace.TracerProvider) (*Gateway, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring the gateway of region %q: %w", cfg.Region, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("registering the gateway metrics of region %q: %w", cfg.Region, err)
	}
	g := &Gateway{
		cfg:      cfg,
		log:      logger.With("service", Service, "region", cfg.Region),
		tracer:   tp.Tracer("github.com/carpoolsla/carpoolsla/services/gateway"),
		prop:     propagation.TraceContext{},
		m:        m,
		byName:   make(map[string]*region, len(cfg.Regions)),
		weights:  make([]int64, len(cfg.Regions)),
		eligible: make([]bool, len(cfg.Regions)),
		budget:   newRetryBudget(cfg.Retry.BudgetRatio, cfg.Retry.BudgetWindow, cfg.Retry.MinRetriesPerSecond),
		obs:      map[obsKey]prometheus.Observer{},
	}
	names := make([]string, 0, len(cfg.Regions))
	for i, u := range cfg.Regions {
		base, _ := url.Parse(u.BaseURL) // Validate checked it
		r := &region{
			idx: i, name: u.Name, city: u.City, base: base,
			probeURL:        strings.TrimSuffix(u.BaseURL, "/") + cfg.Probes.Path,
			spanName:        "upstream " + u.Name,
			probe:           newProbeState(cfg.Probes.UnhealthyAfter, cfg.Probes.HealthyAfter),
			probeHealthy:    m.probeHealthy.WithLabelValues(cfg.Region, u.Name),
			probeDuration:   m.probeDuration.WithLabelValues(cfg.Region, u.Name),
			attemptOK:       m.upstream.WithLabelValues(cfg.Region, u.Name, "ok"),
			attemptErr:      m.upstream.WithLabelValues(cfg.Region, u.Name, "error"),
			retries:         m.retries.WithLabelValues(cfg.Region, u.Name),
			ejections:       m.ejections.WithLabelValues(cfg.Region, u.Name),
			skipped:         m.skipped.WithLabelValues(cfg.Region, u.Name),
			homeUnavailable: m.homeUnavailable.WithLabelValues(cfg.Region, u.Name),
			routeWeight:     m.routeWeight.WithLabelValues(cfg.Region, u.Name),
		}
		r.healthy.Store(true)
		r.probeHealthy.Set(1)
		r.routeWeight.Set(1)
		g.weights[i] = milliWeight(1)
		g.regions = append(g.regions, r)
		g.byName[u.Name] = r
		names = append(names, u.Name)
	}
	g.names = slices.Clone(names)
	slices.Sort(names)
	g.units = make([]Unit, cfg.Units)
	for i := range g.units {
		g.units[i] = unitAt(i, names)
	}
	m.version.WithLabelValues(cfg.Region).Set(0)
	g.panicRoutes = m.panicRoutes.WithLabelValues(cfg.Region)
	g.deniedBudget = m.retriesDenied.WithLabelValues(cfg.Region, catalog.RetryDeniedBudget)
	g.deniedNoRegion = m.retriesDenied.WithLabelValues(cfg.Region, catalog.RetryDeniedNoRegion)

	g.transport = cfg.Transport
	if g.transport == nil {
		g.transport = &http.Transport{
			DialContext:           (&net.Dialer{Timeout: cfg.TryTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true, // a proxy passes encodings through
		}
	}
	probeTransport := cfg.ProbeTransport
	if probeTransport == nil {
		probeTransport = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: cfg.Probes.Timeout}).DialContext,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     3 * cfg.Probes.Interval,
		}
	}
	g.probeClient = &http.Client{
		Transport:     probeTransport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:      g.rewrite,
		Transport:    attemptTransport{g},
		ErrorHandler: g.proxyError,
		BufferPool:   bufferPool{},
		ErrorLog:     log.New(slogWriter{g.log}, "", 0),
	}
	var proxied http.Handler = http.HandlerFunc(g.route)
	if cfg.Faults != nil {
		proxied = cfg.Faults.Middleware(Service, proxied)
	}
	g.handler = g.measure(proxied)
	return g, nil
}

// Handler serves the gateway:
//
//	PUT  /admin/routing    apply a routing table (Bearer AdminToken)
//	GET  /admin/routing    the applied table and each region's probe and ejection state
//	GET  /gateway/healthz  the gateway's own liveness (not proxied)
//	*    anything else     proxied to a region
//
// /metrics is not served here: the caller exposes the registry it passed to New.
func (g *Gateway) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/admin/routing":
			g.serveAdmin(w, r)
		case "/gateway/healthz":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, "{\"status\":\"ok\",\"region\":%q}\n", g.cfg.Region)
		default:
			g.handler.ServeHTTP(w, r)
		}
	})
}

// Run probes every region each probe interval and, when a weights URL is
// set, pulls the routing table whenever pushes stop arriving. It returns nil
// once ctx ends and both loops have stopped.
func (g *Gateway) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = g.runProbes(ctx) })
	wg.Go(func() { errs[1] = g.runPull(ctx) })
	wg.Wait()
	if t, ok := g.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	if t, ok := g.probeClient.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// UnitOf returns the logical unit of a rider under this gateway's regions
// and unit count.
func (g *Gateway) UnitOf(riderID string) Unit {
	return g.units[fnv1a(riderID)%uint32(len(g.units))]
}

// serving reports whether r takes traffic outside panic mode: breaker not
// open, probe-healthy and not ejected. Needs g.mu.
func (r *region) servingLocked(now time.Time) bool {
	return r.breaker != breakerOpen && r.healthy.Load() && !r.out.ejected(now)
}

// pick chooses the region of a request by SWRR among the serving regions
// other than exclude (-1 for none). When none is serving it picks among all
// regions whose breaker is not open (panic mode, reported). It returns -1
// when no region may take the request.
func (g *Gateway) pick(exclude int) (idx int, panicMode bool) {
	return g.pickFor("", exclude)
}

// pickFor is pick for a request that carries an Idempotency-Key: with a
// key, the region is chosen by weighted rendezvous hashing of the key
// instead of round robin, so that a client's retry of the same request
// reaches the region that holds the key (idempotency keys are kept per
// region and replicate asynchronously; a retry sent to another region
// before the key got there would create a second ride). Keys still spread
// over the regions in proportion to their weights.
func (g *Gateway) pickFor(key string, exclude int) (idx int, panicMode bool) {
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	next := func() int {
		if key != "" {
			return rendezvous(key, g.names, g.weights, g.eligible)
		}
		return g.rr.next(g.weights, g.eligible)
	}
	for i, r := range g.regions {
		g.eligible[i] = i != exclude && r.servingLocked(now)
	}
	if idx := next(); idx >= 0 {
		return idx, false
	}
	for i, r := range g.regions {
		g.eligible[i] = i != exclude && r.breaker != breakerOpen
	}
	idx = next()
	return idx, idx >= 0
}

// home decides where a payment of unit u runs: its home region when that is
// serving, or in panic mode (no region serving at all) when its breaker is
// not open. ok is false when the home region is unavailable.
func (g *Gateway) home(u Unit) (idx int, panicMode, ok bool) {
	r := g.byName[u.Home]
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.servingLocked(now) {
		return r.idx, false, true
	}
	if r.breaker == breakerOpen {
		return r.idx, false, false
	}
	for _, o := range g.regions {
		if o.servingLocked(now) {
			return r.idx, false, false
		}
	}
	return r.idx, true, true
}

// recordAttempt feeds one attempt's outcome to passive outlier detection:
// ConsecutiveFailures in a row eject the region at once, unless it is the
// last one serving.
func (g *Gateway) recordAttempt(r *region, failed bool) {
	if !failed {
		r.attemptOK.Inc()
		if r.consecutive.Load() != 0 {
			r.consecutive.Store(0)
		}
		return
	}
	r.attemptErr.Inc()
	if g.cfg.Ejection.Disabled || r.consecutive.Add(1) < int64(g.cfg.Ejection.ConsecutiveFailures) {
		return
	}
	now := g.cfg.Now()
	g.mu.Lock()
	if r.out.ejected(now) {
		g.mu.Unlock()
		return // failures of requests sent before the ejection
	}
	r.consecutive.Store(0)
	others := false
	for _, o := range g.regions {
		if o != r && o.servingLocked(now) {
			others = true
			break
		}
	}
	if !others {
		g.mu.Unlock()
		r.skipped.Inc()
		g.log.Warn("not ejecting the last serving region", "target", r.name,
			"consecutive_failures", g.cfg.Ejection.ConsecutiveFailures)
		return
	}
	d := r.out.eject(now, g.cfg.Ejection)
	times := r.out.ejections
	g.mu.Unlock()
	r.ejections.Inc()
	g.log.Warn("region ejected after consecutive failures", "target", r.name,
		"consecutive_failures", g.cfg.Ejection.ConsecutiveFailures, "for", d, "times", times)
}

// slogWriter turns the reverse proxy's log lines into warnings.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// bufferPool reuses the reverse proxy's copy buffers.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }
