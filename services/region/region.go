// Package region wires one region of the carpool system out of the
// services: a gateway, the order (with dispatch), payment, location and
// pricing servers, each a real server on its own loopback port, plus the
// region store, its replication from every other region, heartbeats, ride
// ids, the ride-state cache and the fault injector. Cluster runs several
// regions in one process for the demo and the tests; `carpoolsla services`
// runs one region per process.
package region

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/gateway"
	"github.com/carpoolsla/carpoolsla/services/hlc"
	"github.com/carpoolsla/carpoolsla/services/ids"
	"github.com/carpoolsla/carpoolsla/services/location"
	"github.com/carpoolsla/carpoolsla/services/order"
	"github.com/carpoolsla/carpoolsla/services/payment"
	"github.com/carpoolsla/carpoolsla/services/pricing"
	"github.com/carpoolsla/carpoolsla/services/replication"
	"github.com/carpoolsla/carpoolsla/services/ridecache"
	"github.com/carpoolsla/carpoolsla/services/store"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Service names, as in the spec and the metrics' service label.
const (
	Gateway  = "gateway"
	Order    = "order"
	Payment  = "payment"
	Location = "location"
	Pricing  = "pricing"
	// Entry is the region's service entry: the address the gateways of
	// every region send this region's traffic to. It routes by path to the
	// order, payment and location servers and serves /healthz.
	Entry = "entry"
)

// Servers lists the region's servers in start order.
var Servers = []string{Entry, Order, Payment, Location, Pricing, Gateway}

// Peer is another region as this one sees it.
type Peer struct {
	Name string
	City string
	// EntryURL is the peer's service entry (its gateway's upstream, and
	// where its replication outbox is served).
	EntryURL string
}

// Config configures one region.
type Config struct {
	Spec *spec.Spec
	// Name is this region's name; it must be a region of Spec.
	Name string
	// Listeners are the region's bound listeners by server name (Servers);
	// Listen binds them on loopback.
	Listeners map[string]net.Listener
	// Peers are the other regions; their entries must be reachable.
	Peers []Peer
	// AdminToken protects the gateway's routing admin API and the fault
	// admin API; empty disables both.
	AdminToken string
	// SpanExporter, when set, receives every server's sampled spans (e.g.
	// telemetry/chsink's ClickHouse exporter) instead of the spec's OTLP
	// endpoint. It is shared and must not stop on Shutdown.
	SpanExporter sdktrace.SpanExporter
	// WeightsURL, when set, is where the gateway pulls its routing table
	// (the SLA engine's GET /api/v1/routing) when the engine's pushes stop.
	WeightsURL string
	// RedisAddr, when set, puts driver positions on Redis Streams and the
	// ride cache's lock on Redis; default in process.
	RedisAddr string
	// Instance distinguishes processes of one region in ride ids (0-7).
	Instance int
	// LogSink receives every service's logs (JSON); default stdout.
	LogSink telemetry.LogSink
	// LogLevel is the services' log level; default "info".
	LogLevel string
	// Now is the base clock (faults add skew to it); default time.Now.
	Now func() time.Time
}

// Listen binds every server of a region on 127.0.0.1, on port base+i for
// the i-th of Servers (base 0 picks free ports).
func Listen(base int) (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	for i, name := range Servers {
		addr := "127.0.0.1:0"
		if base > 0 {
			addr = fmt.Sprintf("127.0.0.1:%d", base+i)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range out {
				_ = l.Close()
			}
			return nil, fmt.Errorf("binding the %s server on %s: %w", name, addr, err)
		}
		out[name] = ln
	}
	return out, nil
}

// URL is the http URL of a bound listener.
func URL(ln net.Listener) string { return "http://" + ln.Addr().String() }

// Region is one running region.
type Region struct {
	cfg      Config
	Faults   *faults.Injector
	Store    *store.Memory
	Location *location.Service
	Order    *order.Service
	Payment  *payment.Service
	Gateway  *gateway.Gateway
	pricing  *pricing.Server
	pool     *pricing.Pool
	hb       *store.HeartbeatWriter
	repls    []*replication.Replicator
	servers  map[string]*http.Server
	// Registries holds each server's metrics registry by server name.
	Registries map[string]*prometheus.Registry
	shutdown   []func(context.Context) error
	log        *slog.Logger
	entrySets  []*vmetrics.Set
}

// AddExporter registers an exporter's collector (and its VictoriaMetrics
// sets) on the region entry's /metrics. Call it before Run.
func (r *Region) AddExporter(c prometheus.Collector, sets ...*vmetrics.Set) error {
	if err := r.Registries[Entry].Register(c); err != nil {
		return fmt.Errorf("region %s: registering an exporter: %w", r.cfg.Name, err)
	}
	r.entrySets = append(r.entrySets, sets...)
	return nil
}

// RunningConfig returns the configuration the region runs with, as JSON:
// the spec it was started from (its SLOs, routing, breaker and health
// settings) and its fault-free service settings. Regions started from
// different specs differ here, which the config-drift exporter reports.
func (r *Region) RunningConfig() ([]byte, error) {
	return json.Marshal(struct {
		Spec  *spec.Spec `json:"spec"`
		Peers int        `json:"peers"`
	}{r.cfg.Spec, len(r.cfg.Peers)})
}

// MetricsTargets returns the /metrics URL of each of the region's HTTP
// servers by server name, the scrape targets of a metrics store. The entry's
// also carries the pricing server's metrics (it speaks gRPC only) and the
// region's exporters.
func (r *Region) MetricsTargets() map[string]string {
	out := map[string]string{}
	for name, ln := range r.cfg.Listeners {
		if name != Pricing {
			out[name] = URL(ln) + "/metrics"
		}
	}
	return out
}

// URLs returns each server's base URL (pricing's is host:port, gRPC).
func (r *Region) URLs() map[string]string {
	out := map[string]string{}
	for name, ln := range r.cfg.Listeners {
		out[name] = URL(ln)
	}
	out[Pricing] = r.cfg.Listeners[Pricing].Addr().String()
	return out
}

func (c *Config) validate() error {
	if c.Spec == nil {
		return errors.New("region: no spec")
	}
	if !slices.Contains(c.Spec.RegionNames(), c.Name) {
		return fmt.Errorf("region %q is not in the spec (%s)", c.Name, strings.Join(c.Spec.RegionNames(), ", "))
	}
	for _, s := range Servers {
		if c.Listeners[s] == nil {
			return fmt.Errorf("region %s: no listener for the %s server", c.Name, s)
		}
	}
	if c.Instance < 0 || c.Instance > 7 {
		return fmt.Errorf("region %s: instance %d is out of range 0-7", c.Name, c.Instance)
	}
	return nil
}

// New builds a region on its listeners. Nothing serves until Run.
func New(cfg Config) (*Region, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Region{cfg: cfg, Faults: &faults.Injector{Now: cfg.Now}, servers: map[string]*http.Server{}, Registries: map[string]*prometheus.Registry{}}
	for _, s := range Servers {
		r.Registries[s] = prometheus.NewRegistry()
	}
	var err error
	if r.log, err = r.logger("region"); err != nil {
		return nil, err
	}
	if err := r.build(); err != nil {
		r.close(context.Background())
		return nil, err
	}
	return r, nil
}

func (r *Region) logger(service string) (*slog.Logger, error) {
	return telemetry.NewLogger(telemetry.LogConfig{Service: service, Region: r.cfg.Name, Level: r.cfg.LogLevel, Sink: r.cfg.LogSink})
}

func (r *Region) tracer(service string) (trace.TracerProvider, error) {
	cfg := telemetry.TracingConfigFromSpec(r.cfg.Spec.Tracing, service, r.cfg.Name)
	cfg.Exporter = r.cfg.SpanExporter
	tp, shutdown, err := telemetry.NewTracerProvider(cfg)
	if err != nil {
		return nil, fmt.Errorf("tracing for %s: %w", service, err)
	}
	r.shutdown = append(r.shutdown, shutdown)
	return tp, nil
}

func (r *Region) build() error {
	cfg, name := r.cfg, r.cfg.Name
	regIndex := slices.Index(cfg.Spec.RegionNames(), name)
	orderReg := r.Registries[Order]
	logs := map[string]*slog.Logger{}
	tps := map[string]trace.TracerProvider{}
	for _, s := range []string{Gateway, Order, Payment, Location, Pricing} {
		l, err := r.logger(s)
		if err != nil {
			return err
		}
		tp, err := r.tracer(s)
		if err != nil {
			return err
		}
		logs[s], tps[s] = l, tp
	}

	clock, err := hlc.New(hlc.Config{Region: name, Now: r.Faults.Clock, Registerer: orderReg})
	if err != nil {
		return fmt.Errorf("region %s clock: %w", name, err)
	}
	if r.Store, err = store.NewMemory(store.Config{Region: name, Clock: clock}); err != nil {
		return err
	}
	if r.hb, err = store.NewHeartbeatWriter(store.HeartbeatConfig{Store: r.Store, Region: name, Now: r.Faults.Clock, Logger: r.log}); err != nil {
		return err
	}

	node, err := ids.NodeID(regIndex, cfg.Instance)
	if err != nil {
		return err
	}
	gen, err := ids.New(ids.Config{Region: name, Node: node, Now: r.Faults.Clock}, orderReg, logs[Order])
	if err != nil {
		return err
	}

	// Pricing: a gRPC server, and the pool the order service calls it through.
	if r.pricing, err = pricing.New(pricing.Config{Region: name, Listener: cfg.Listeners[Pricing], Faults: r.Faults,
		Logger: logs[Pricing], Registerer: r.Registries[Pricing], TracerProvider: tps[Pricing]}); err != nil {
		return err
	}
	if r.pool, err = pricing.NewPool(pricing.PoolConfig{Region: name, Targets: []string{cfg.Listeners[Pricing].Addr().String()},
		Logger: logs[Order], Registerer: orderReg, TracerProvider: tps[Order]}); err != nil {
		return err
	}

	if r.Payment, err = payment.New(payment.Config{Region: name, Faults: r.Faults, Now: r.Faults.Clock, TracerProvider: tps[Payment]}, r.Registries[Payment], logs[Payment]); err != nil {
		return err
	}
	if r.Location, err = location.New(location.Config{Region: name, RedisAddr: cfg.RedisAddr, Registerer: r.Registries[Location],
		TracerProvider: tps[Location], Logger: logs[Location], Faults: r.Faults, Now: r.Faults.Clock}); err != nil {
		return err
	}

	rides := rideStore{st: r.Store}
	// With Redis, the cache's miss lock and shared tier span processes of
	// the region; without, they are in process.
	var locker ridecache.Locker
	cacheCfg := ridecache.Config{Region: name}
	if cfg.RedisAddr != "" {
		rc := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr})
		r.shutdown = append(r.shutdown, func(context.Context) error { return rc.Close() })
		locker = ridecache.NewRedisLocker(rc)
		cacheCfg.Shared = ridecache.NewRedisShared(rc, "carpool:ridecache:"+name+":")
		cacheCfg.LockPrefix = "carpool:ridelock:" + name + ":"
	}
	cache, err := ridecache.New[order.Ride](cacheCfg, func(ctx context.Context, key string) (order.Ride, error) {
		var id int64
		if _, err := fmt.Sscan(key, &id); err != nil {
			return order.Ride{}, fmt.Errorf("ride id %q: %w", key, err)
		}
		ride, ok, err := rides.GetRide(ctx, id)
		if err == nil && !ok {
			err = errNoRide
		}
		return ride, err
	}, locker, orderReg, logs[Order])
	if err != nil {
		return err
	}
	cached := cachedRides{c: cache}
	drv := drivers{ix: r.Location.Index()}
	if r.Order, err = order.New(order.Config{Region: name, Logger: logs[Order], Registerer: orderReg, TracerProvider: tps[Order], Faults: r.Faults, Now: r.Faults.Clock},
		order.Deps{IDs: gen, Quoter: quoter{r.pool}, Drivers: drv, Claims: drv, Payer: payer{r.Payment}, Store: rides, Reader: cached, Cache: cached}); err != nil {
		return err
	}

	// Replication from every peer, pulled over HTTP from its entry.
	metrics, err := replication.NewMetrics(orderReg)
	if err != nil {
		return err
	}
	for _, p := range cfg.Peers {
		src, err := replication.NewHTTPSource(replication.HTTPSourceConfig{BaseURL: p.EntryURL})
		if err != nil {
			return err
		}
		rep, err := replication.New(replication.Config{SourceRegion: p.Name, Source: src, Target: r.Store, Stall: r.Faults,
			Metrics: metrics, TracerProvider: tps[Order], Logger: logs[Order],
			OnApply: func(ctx context.Context, rec store.Record) {
				if rec.Table == RidesTable {
					cache.Invalidate(rec.Key)
					drv.releaseFinished(ctx, rec)
				}
			}})
		if err != nil {
			return fmt.Errorf("replication %s→%s: %w", p.Name, name, err)
		}
		r.repls = append(r.repls, rep)
	}
	outbox, err := replication.NewOutboxHandler(replication.HandlerConfig{Outbox: r.Store, Faults: r.Faults})
	if err != nil {
		return err
	}

	// The gateway: every region's entry, this region's first.
	ups := []gateway.Upstream{{Name: name, City: cityOf(cfg.Spec, name), BaseURL: URL(cfg.Listeners[Entry])}}
	for _, p := range cfg.Peers {
		ups = append(ups, gateway.Upstream{Name: p.Name, City: p.City, BaseURL: p.EntryURL})
	}
	if r.Gateway, err = gateway.New(gateway.Config{Region: name, Regions: ups, Probes: gateway.ProbeConfigFromSpec(cfg.Spec.Routing.Probes),
		AdminToken: cfg.AdminToken, WeightsURL: cfg.WeightsURL, Faults: r.Faults}, r.Registries[Gateway], logs[Gateway], tps[Gateway]); err != nil {
		return err
	}

	// Servers.
	metricsOf := func(s string) http.Handler {
		return promhttp.HandlerFor(r.Registries[s], promhttp.HandlerOpts{EnableOpenMetrics: true, Registry: r.Registries[s]})
	}
	withMetrics := func(s string, h http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metricsOf(s))
		mux.Handle("/", h)
		return mux
	}
	orderMux := http.NewServeMux()
	orderMux.Handle(replication.OutboxPath, outbox)
	orderMux.Handle("/", r.Order.Handler())
	r.serve(Order, withMetrics(Order, orderMux))
	r.serve(Payment, withMetrics(Payment, r.Payment.Handler()))
	r.serve(Location, withMetrics(Location, r.Location.Handler()))
	gw := http.NewServeMux()
	gw.Handle("/metrics", metricsOf(Gateway))
	gw.Handle("/admin/faults", faults.Handler(r.Faults, cfg.AdminToken))
	gw.Handle("/", r.Gateway.Handler())
	r.serve(Gateway, gw)
	// The pricing server speaks gRPC only: its metrics are served by the
	// entry, with the region's exporters (AddExporter).
	entryMetrics := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		exporters.Handler(prometheus.Gatherers{r.Registries[Entry], r.Registries[Pricing]}, r.entrySets...).ServeHTTP(w, req)
	})
	entry, err := r.entry(entryMetrics)
	if err != nil {
		return err
	}
	r.serve(Entry, entry)
	return nil
}

// entry routes the region's API by path to its servers.
func (r *Region) entry(metrics http.Handler) (http.Handler, error) {
	mux := http.NewServeMux()
	for prefix, server := range map[string]string{
		"/v1/rides":       Order,
		"/v1/replication": Order,
		"/healthz":        Order,
		"/v1/payments":    Payment,
		"/v1/drivers":     Location,
	} {
		u, err := url.Parse(URL(r.cfg.Listeners[server]))
		if err != nil {
			return nil, err
		}
		proxy := httputil.NewSingleHostReverseProxy(u)
		proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "{\"error\":%q}\n", "the "+server+" server did not answer: "+err.Error())
		}
		mux.Handle(prefix, proxy)
		mux.Handle(prefix+"/", proxy)
	}
	mux.Handle("/admin/faults", faults.Handler(r.Faults, r.cfg.AdminToken))
	mux.Handle("/metrics", metrics)
	return mux, nil
}

func (r *Region) serve(name string, h http.Handler) {
	r.servers[name] = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second}
}

func cityOf(s *spec.Spec, name string) string {
	for _, r := range s.Regions {
		if r.Name == name {
			return r.City
		}
	}
	return ""
}

// Run serves every server and runs every loop of the region until ctx ends,
// then stops them all.
func (r *Region) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for name, srv := range r.servers {
		ln := r.cfg.Listeners[name]
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("region %s %s server: %w", r.cfg.Name, name, err)
			}
			return nil
		})
	}
	g.Go(func() error { return r.pricing.Run(ctx) })
	g.Go(func() error { return r.Location.Run(ctx) })
	g.Go(func() error { return r.Order.Run(ctx) })
	g.Go(func() error { return r.Gateway.Run(ctx) })
	g.Go(func() error { return r.hb.Run(ctx) })
	for _, rep := range r.repls {
		g.Go(func() error { return rep.Run(ctx) })
	}
	g.Go(func() error {
		<-ctx.Done()
		stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.close(stop)
		return nil
	})
	r.log.Info("region running", "urls", fmt.Sprint(r.URLs()))
	return g.Wait()
}

func (r *Region) close(ctx context.Context) {
	for _, srv := range r.servers {
		_ = srv.Shutdown(ctx)
	}
	if r.pool != nil {
		_ = r.pool.Close()
	}
	for _, f := range r.shutdown {
		_ = f(ctx)
	}
}
