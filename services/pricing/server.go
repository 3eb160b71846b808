package pricing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/pricing/pricingpb"
)

// ServiceName is the service label of the pricing server's metrics and the
// name its faults are set under in services/faults.
const ServiceName = "pricing"

// instrumentation is the tracer and logger scope name of this package.
const instrumentation = "github.com/carpoolsla/carpoolsla/services/pricing"

// Config configures a pricing Server. A zero field takes the default given
// in its comment.
type Config struct {
	// Region is the region this server prices for (required).
	Region string
	// Addr is the TCP address to listen on (default "127.0.0.1:0", a free
	// loopback port; Server.Addr says which).
	Addr string
	// Listener, when set, is served instead of listening on Addr (tests use
	// bufconn). The Server owns it from then on.
	Listener net.Listener

	// Currency is the ISO 4217 code of every amount (default "EUR").
	Currency string
	// BaseFareMinor is the fixed part of a fare, in minor units (default 250).
	BaseFareMinor int64
	// PerKmMinor is the price of one haversine kilometre, in minor units
	// (default 120).
	PerKmMinor int64
	// MinimumFareMinor is the least a ride costs before surge, in minor
	// units (default 500).
	MinimumFareMinor int64
	// MaxTripKm rejects longer trips with INVALID_ARGUMENT on dropoff
	// (default 300).
	MaxTripKm float64

	// CellPrecision is the geohash length of a surge cell, in
	// [MinCellPrecision, MaxCellPrecision] (default 6, ~1.2 km x 0.6 km).
	CellPrecision int
	// DemandWindow is how long a quote request counts as demand in its
	// pickup's cell (default 5m).
	DemandWindow time.Duration
	// DemandBuckets is the window's resolution: it slides by
	// DemandWindow/DemandBuckets (default 10, so 30 s).
	DemandBuckets int
	// Surge is the demand/supply curve (default DefaultSurgeCurve: no surge
	// up to one request per driver, +0.5 per extra request per driver,
	// capped at 3, in steps of 0.1).
	Surge SurgeCurve
	// QuoteTTL is how long a quote is valid (default 2m).
	QuoteTTL time.Duration

	// Supply counts the available drivers in a cell. Nil means the
	// server's own SupplyTracker (Server.Tracker), fed by RecordSupply.
	Supply Supply
	// SupplyTTL is how long a driver report counts in the built-in
	// tracker (default 30s).
	SupplyTTL time.Duration
	// SweepInterval is how often Run forgets idle cells and stale drivers
	// (default 30s).
	SweepInterval time.Duration
	// ShutdownTimeout bounds the graceful stop when Run's context ends;
	// calls still running after it are cancelled (default 10s).
	ShutdownTimeout time.Duration

	// Faults are the region's injected faults (nil: none). Every call runs
	// Faults.Apply(ctx, "pricing") first and fails UNAVAILABLE when it says so.
	Faults *faults.Injector
	// Now is the clock of quotes and the demand window (nil: Faults.Clock,
	// the real time plus any injected skew).
	Now func() time.Time
	// Logger receives the server's logs (nil: discarded); region and
	// service attributes are added.
	Logger *slog.Logger
	// Registerer receives the server's metrics (nil: not registered). It
	// may already hold carpool_request_duration_seconds from another
	// service of the region; the existing collector is then shared.
	Registerer prometheus.Registerer
	// TracerProvider makes the server spans (nil: no-op; W3C trace context
	// still flows through to the handler).
	TracerProvider trace.TracerProvider
}

func (c *Config) defaults() {
	if c.Addr == "" && c.Listener == nil {
		c.Addr = "127.0.0.1:0"
	}
	if c.Currency == "" {
		c.Currency = "EUR"
	}
	if c.BaseFareMinor == 0 {
		c.BaseFareMinor = 250
	}
	if c.PerKmMinor == 0 {
		c.PerKmMinor = 120
	}
	if c.MinimumFareMinor == 0 {
		c.MinimumFareMinor = 500
	}
	if c.MaxTripKm == 0 {
		c.MaxTripKm = 300
	}
	if c.CellPrecision == 0 {
		c.CellPrecision = DefaultCellPrecision
	}
	if c.DemandWindow == 0 {
		c.DemandWindow = 5 * time.Minute
	}
	if c.DemandBuckets == 0 {
		c.DemandBuckets = 10
	}
	c.Surge.defaults()
	if c.QuoteTTL == 0 {
		c.QuoteTTL = 2 * time.Minute
	}
	if c.SupplyTTL == 0 {
		c.SupplyTTL = 30 * time.Second
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 30 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = c.Faults.Clock
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
}

var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

// maxMinor bounds every configured amount so that no fare overflows int64.
const maxMinor = 10_000_000

// Validate checks the configuration, fields against each other included.
// Call it after defaults are filled (New does both).
func (c *Config) Validate() error {
	switch {
	case c.Region == "":
		return errors.New("pricing: region is required")
	case !currencyRe.MatchString(c.Currency):
		return fmt.Errorf("pricing: currency %q is not an ISO 4217 code such as EUR", c.Currency)
	case c.BaseFareMinor < 0 || c.BaseFareMinor > maxMinor:
		return fmt.Errorf("pricing: base fare %d must be in [0, %d] minor units", c.BaseFareMinor, maxMinor)
	case c.PerKmMinor < 0 || c.PerKmMinor > maxMinor:
		return fmt.Errorf("pricing: per-km price %d must be in [0, %d] minor units", c.PerKmMinor, maxMinor)
	case c.MinimumFareMinor < 0 || c.MinimumFareMinor > maxMinor:
		return fmt.Errorf("pricing: minimum fare %d must be in [0, %d] minor units", c.MinimumFareMinor, maxMinor)
	case !(c.MaxTripKm > 0 && c.MaxTripKm <= 20_100):
		return fmt.Errorf("pricing: max trip %v km must be in (0, 20100]", c.MaxTripKm)
	case c.CellPrecision < MinCellPrecision || c.CellPrecision > MaxCellPrecision:
		return fmt.Errorf("pricing: cell precision %d must be in [%d, %d]", c.CellPrecision, MinCellPrecision, MaxCellPrecision)
	case c.DemandBuckets < 1 || c.DemandBuckets > 3600:
		return fmt.Errorf("pricing: demand buckets %d must be in [1, 3600]", c.DemandBuckets)
	case c.DemandWindow < time.Duration(c.DemandBuckets)*time.Millisecond:
		return fmt.Errorf("pricing: demand window %v must be at least 1ms per bucket (%d buckets)", c.DemandWindow, c.DemandBuckets)
	case c.QuoteTTL < 0 || c.SupplyTTL <= 0 || c.SweepInterval <= 0 || c.ShutdownTimeout <= 0:
		return errors.New("pricing: quote TTL must not be negative, and supply TTL, sweep interval and shutdown timeout must be positive")
	}
	if err := c.Surge.Validate(); err != nil {
		return fmt.Errorf("pricing: %w", err)
	}
	return nil
}

// Server is a region's pricing gRPC server. New binds its listener; Run
// serves until its context ends.
type Server struct {
	cfg     Config
	lis     net.Listener
	grpc    *grpc.Server
	pricer  *pricer
	tracker *SupplyTracker
	metrics *serverMetrics
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	log     *slog.Logger
	conns   atomic.Int64

	quoteSpanAttrs []attribute.KeyValue // server span attributes of Quote, built once
}

// New builds a pricing server from cfg (defaults filled in, then
// validated) and binds its listener.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newServerMetrics(cfg.Region, cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("pricing: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		metrics: m,
		tracer:  cfg.TracerProvider.Tracer(instrumentation),
		prop:    propagation.TraceContext{},
		log:     cfg.Logger.With("region", cfg.Region, "service", ServiceName),
		quoteSpanAttrs: append(rpcAttributes(pricingpb.Pricing_Quote_FullMethodName),
			attribute.String("carpool.region", cfg.Region)),
	}
	supply := cfg.Supply
	if supply == nil {
		s.tracker = NewSupplyTracker(cfg.CellPrecision, cfg.SupplyTTL, cfg.Now)
		supply = s.tracker
	}
	s.pricer = newPricer(&s.cfg, supply, cfg.Now)
	s.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(s.traceInterceptor, s.metricsInterceptor, s.faultsInterceptor),
		grpc.StatsHandler(connCounter{s}),
	)
	pricingpb.RegisterPricingServer(s.grpc, handler{s: s})
	s.lis = cfg.Listener
	if s.lis == nil {
		if s.lis, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("pricing: listening on %s: %w", cfg.Addr, err)
		}
	}
	return s, nil
}

// Addr is the address the server listens on (host:port for TCP).
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Tracker is the built-in supply tracker the server counts drivers with,
// or nil when Config.Supply was given. The location service feeds it with
// RecordSupply when it runs in the same process.
func (s *Server) Tracker() *SupplyTracker { return s.tracker }

// Connections is the number of client connections open to the server.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// Cell is the surge cell of a position at the server's precision.
func (s *Server) Cell(p LatLng) string { return Geohash(p, s.cfg.CellPrecision) }

// Run serves gRPC until ctx ends, then stops gracefully: it refuses new
// calls, lets the running ones finish within ShutdownTimeout and cancels the
// rest. It also sweeps idle cells and stale drivers every SweepInterval.
// It returns nil after a stop caused by ctx, or the error that stopped
// serving.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("pricing server listening", "addr", s.Addr())
	served := make(chan error, 1)
	go func() { served <- s.grpc.Serve(s.lis) }()
	sweep := time.NewTicker(s.cfg.SweepInterval)
	defer sweep.Stop()
	for {
		select {
		case err := <-served:
			s.grpc.Stop()
			return fmt.Errorf("pricing: serving gRPC on %s: %w", s.Addr(), err)
		case <-sweep.C:
			cells := s.pricer.demand.sweep(s.cfg.Now())
			drivers := -1
			if s.tracker != nil {
				drivers = s.tracker.Sweep()
			}
			s.log.Debug("pricing sweep", "demand_cells", cells, "drivers", drivers)
		case <-ctx.Done():
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			t := time.NewTimer(s.cfg.ShutdownTimeout)
			defer t.Stop()
			select {
			case <-stopped:
			case <-t.C:
				s.log.Warn("pricing server: graceful stop timed out; cancelling calls in flight", "timeout", s.cfg.ShutdownTimeout)
				s.grpc.Stop()
				<-stopped
			}
			<-served
			s.log.Info("pricing server stopped")
			return nil
		}
	}
}

// handler implements pricingpb.PricingServer.
type handler struct {
	pricingpb.UnimplementedPricingServer
	s *Server
}

// Quote prices a ride; see the package doc for the formula.
func (h handler) Quote(_ context.Context, req *pricingpb.QuoteRequest) (*pricingpb.QuoteResponse, error) {
	in := quoteInput{RiderID: req.GetRiderId()}
	if p := req.GetPickup(); p != nil {
		in.Pickup = &LatLng{Lat: p.GetLat(), Lng: p.GetLng()}
	}
	if p := req.GetDropoff(); p != nil {
		in.Dropoff = &LatLng{Lat: p.GetLat(), Lng: p.GetLng()}
	}
	q, err := h.s.pricer.quote(in)
	if err != nil {
		var verr ValidationError
		if errors.As(err, &verr) {
			return nil, invalidArgument(verr)
		}
		return nil, status.Errorf(codes.Internal, "pricing a ride: %v", err)
	}
	h.s.metrics.surge.Observe(float64(q.SurgeMilli) / 1000)
	money := func(v int64) *pricingpb.Money { return &pricingpb.Money{MinorUnits: v, Currency: q.Currency} }
	return &pricingpb.QuoteResponse{
		QuoteId:         q.ID,
		Total:           money(q.TotalMinor),
		BaseFare:        money(q.BaseMinor),
		DistanceFare:    money(q.DistanceMinor),
		DistanceM:       q.DistanceM,
		SurgeMilli:      q.SurgeMilli,
		Cell:            q.Cell,
		Demand:          int32(min(q.Demand, 1<<31-1)),
		Supply:          int32(min(q.Supply, 1<<31-1)),
		Region:          h.s.cfg.Region,
		QuotedAtUnixMs:  q.QuotedAt.UnixMilli(),
		ExpiresAtUnixMs: q.ExpiresAt.UnixMilli(),
	}, nil
}

// invalidArgument is the INVALID_ARGUMENT status of a rejected request: its
// message names every field, and a google.rpc.BadRequest detail lists them
// for programs.
func invalidArgument(verr ValidationError) error {
	st := status.New(codes.InvalidArgument, verr.Error())
	br := &errdetails.BadRequest{}
	for _, f := range verr {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Reason})
	}
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// connCounter is a stats.Handler that counts the server's open connections.
type connCounter struct{ s *Server }

func (c connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c connCounter) HandleRPC(context.Context, stats.RPCStats)                         {}
func (c connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c connCounter) HandleConn(_ context.Context, st stats.ConnStats) {
	switch st.(type) {
	case *stats.ConnBegin:
		c.s.conns.Add(1)
		c.s.metrics.conns.Inc()
	case *stats.ConnEnd:
		c.s.conns.Add(-1)
		c.s.metrics.conns.Dec()
	}
}
