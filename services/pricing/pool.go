package pricing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/carpoolsla/carpoolsla/services/pricing/pricingpb"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// PoolConfig configures a Pool. A zero field takes the default given in
// its comment.
type PoolConfig struct {
	// Region is the caller's region, the region label of the pool's
	// metrics and an attribute of its logs (required).
	Region string
	// Targets are the pricing servers, host:port each, or gRPC target URIs
	// such as "dns:///pricing.eu:7000" (may be empty until
	// the first SetTargets; calls then fail UNAVAILABLE).
	Targets []string
	// Timeout bounds each call, on top of the caller's own deadline
	// (default 500ms).
	Timeout time.Duration
	// DrainTimeout is how long a connection retired by SetTargets or Close
	// waits for its calls in flight before it is closed anyway, failing
	// them (default 30s).
	DrainTimeout time.Duration
	// DialOptions are added to the pool's (plaintext transport credentials);
	// later options win.
	DialOptions []grpc.DialOption
	// Logger receives the pool's logs (nil: discarded).
	Logger *slog.Logger
	// Registerer receives the pool's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// TracerProvider makes the client spans (nil: no-op; the caller's W3C
	// trace context is still sent).
	TracerProvider trace.TracerProvider
}

func (c *PoolConfig) defaults() {
	if c.Timeout == 0 {
		c.Timeout = 500 * time.Millisecond
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
}

// Validate checks the configuration (after defaults; NewPool does both).
func (c *PoolConfig) Validate() error {
	switch {
	case c.Region == "":
		return errors.New("pricing pool: region is required")
	case c.Timeout < 0:
		return fmt.Errorf("pricing pool: timeout %v must not be negative", c.Timeout)
	case c.DrainTimeout <= 0:
		return fmt.Errorf("pricing pool: drain timeout %v must be positive", c.DrainTimeout)
	}
	_, err := normalizeTargets(c.Targets)
	return err
}

// ErrPoolClosed is the cause of calls made and target swaps tried after
// Pool.Close.
var ErrPoolClosed = errors.New("pricing pool is closed")

// Pool is the client side of the pricing service: one gRPC connection per
// target, calls spread least-loaded (fewest calls in flight, ties taken
// round-robin, connections in TRANSIENT_FAILURE avoided while others are
// not). SetTargets swaps the targets at run time without failing a call:
// new calls go to the new set at once, and a removed target's connection
// is closed only when its last call in flight has finished. It is safe for
// concurrent use.
type Pool struct {
	cfg    PoolConfig
	set    atomic.Pointer[connSet]
	rr     atomic.Uint64
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	log    *slog.Logger
	opts   []grpc.DialOption

	active, drainingGauge prometheus.Gauge

	mu       sync.Mutex // serialises SetTargets and Close; guards closed and draining
	closed   bool
	draining map[*poolConn]struct{}
}

// connSet is one immutable generation of the pool's connections.
type connSet struct {
	conns []*poolConn
}

// poolConn is one target's connection. refs is 1 while the connection is
// in the current set plus 1 per call in flight; the connection closes when
// it drops to 0, and can then no longer be acquired.
type poolConn struct {
	target    string
	cc        *grpc.ClientConn
	client    pricingpb.PricingClient
	refs      atomic.Int64
	closeOnce sync.Once
	done      chan struct{} // closed once cc is closed
	retiredAt time.Time
	force     *time.Timer          // closes a draining connection after DrainTimeout
	spanAttrs []attribute.KeyValue // client span attributes, built once
}

// quoteSpanName is the name of the client and server spans of Quote.
var quoteSpanName = strings.TrimPrefix(pricingpb.Pricing_Quote_FullMethodName, "/")

// NewPool builds a pool over cfg.Targets. Connections are made in the
// background; the first call to a target waits for its connection within
// the call's timeout.
func NewPool(cfg PoolConfig) (*Pool, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	gauges, err := register(cfg.Registerer, telemetry.NewGaugeVec(catalog.PricingPoolConnections))
	if err != nil {
		return nil, fmt.Errorf("pricing pool: %w", err)
	}
	p := &Pool{
		cfg:           cfg,
		tracer:        cfg.TracerProvider.Tracer(instrumentation),
		prop:          propagation.TraceContext{},
		log:           cfg.Logger.With("region", cfg.Region, "service", ServiceName, "component", "pool"),
		opts:          append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, cfg.DialOptions...),
		active:        gauges.WithLabelValues(cfg.Region, catalog.PoolStateActive),
		drainingGauge: gauges.WithLabelValues(cfg.Region, catalog.PoolStateDraining),
		draining:      make(map[*poolConn]struct{}),
	}
	p.set.Store(&connSet{})
	if err := p.SetTargets(cfg.Targets); err != nil {
		return nil, err
	}
	return p, nil
}

// normalizeTargets checks that every target is host:port (or a gRPC target
// URI such as "dns:///pricing.eu:7000") and drops repeats, keeping the
// first order.
func normalizeTargets(targets []string) ([]string, error) {
	out := make([]string, 0, len(targets))
	seen := make(map[string]bool, len(targets))
	for i, t := range targets {
		t = strings.TrimSpace(t)
		if !strings.Contains(t, "://") { // a gRPC target URI ("dns:///host:port") is taken as is
			host, port, err := net.SplitHostPort(t)
			if err != nil || host == "" || port == "" {
				return nil, fmt.Errorf("pricing pool: targets[%d] %q is not host:port", i, t)
			}
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// SetTargets makes targets the pool's set. Connections to targets in both
// the old and the new set are kept; new targets get new connections; the
// connections of removed targets stop taking calls at once and close when
// their calls in flight finish (or after DrainTimeout). On error nothing
// changes.
func (p *Pool) SetTargets(targets []string) error {
	targets, err := normalizeTargets(targets)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrPoolClosed
	}
	old := p.set.Load()
	byTarget := make(map[string]*poolConn, len(old.conns))
	for _, c := range old.conns {
		byTarget[c.target] = c
	}
	next := &connSet{conns: make([]*poolConn, 0, len(targets))}
	var added []*poolConn
	for _, t := range targets {
		if c, ok := byTarget[t]; ok {
			next.conns = append(next.conns, c)
			delete(byTarget, t)
			continue
		}
		cc, err := grpc.NewClient(t, p.opts...)
		if err != nil {
			for _, c := range added {
				_ = c.cc.Close()
			}
			return fmt.Errorf("pricing pool: connecting to %s: %w", t, err)
		}
		c := &poolConn{target: t, cc: cc, client: pricingpb.NewPricingClient(cc), done: make(chan struct{}),
			spanAttrs: append(rpcAttributes(pricingpb.Pricing_Quote_FullMethodName), attribute.String("server.address", t))}
		c.refs.Store(1)
		added = append(added, c)
		next.conns = append(next.conns, c)
	}
	// Publish the new set before retiring the old connections: a caller
	// that still picks a retired one fails to acquire it only once its
	// refs reached 0, and then finds the new set.
	p.set.Store(next)
	for _, c := range added {
		c.cc.Connect()
	}
	for _, c := range byTarget {
		p.retireLocked(c)
	}
	p.active.Set(float64(len(next.conns)))
	if len(added) > 0 || len(byTarget) > 0 {
		p.log.Info("pricing pool targets changed", "targets", targets, "added", len(added), "retired", len(byTarget))
	}
	return nil
}

// retireLocked takes c out of service: it drops the set's reference and
// arms the drain timeout.
func (p *Pool) retireLocked(c *poolConn) {
	p.draining[c] = struct{}{}
	p.drainingGauge.Inc()
	c.retiredAt = time.Now()
	c.force = time.AfterFunc(p.cfg.DrainTimeout, func() {
		p.log.Warn("pricing pool: drain timed out; closing a connection with calls in flight",
			"target", c.target, "in_flight", c.refs.Load(), "timeout", p.cfg.DrainTimeout)
		p.closeConn(c)
	})
	// Drop the set's reference. With no call in flight this is the last
	// one; closeConn takes p.mu, which the caller holds, so it runs apart.
	if c.refs.Add(-1) == 0 {
		go p.closeConn(c)
	}
}

// acquire takes a reference for one call; false when c is closing.
func (c *poolConn) acquire() bool {
	for {
		r := c.refs.Load()
		if r <= 0 {
			return false
		}
		if c.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release ends one call; the last reference closes the connection.
func (p *Pool) release(c *poolConn) {
	if c.refs.Add(-1) == 0 {
		p.closeConn(c)
	}
}

// closeConn closes a retired connection once.
func (p *Pool) closeConn(c *poolConn) {
	c.closeOnce.Do(func() {
		if c.force != nil {
			c.force.Stop()
		}
		err := c.cc.Close()
		p.mu.Lock()
		if _, ok := p.draining[c]; ok {
			delete(p.draining, c)
			p.drainingGauge.Dec()
		}
		p.mu.Unlock()
		close(c.done)
		p.log.Info("pricing pool: drained connection closed", "target", c.target,
			"drain", time.Since(c.retiredAt).Round(time.Millisecond), "err", err)
	})
}

// pick chooses a connection and acquires it: fewest calls in flight among
// connections that are not in TRANSIENT_FAILURE (any, when all are),
// scanning from a round-robin start so that ties rotate.
func (p *Pool) pick() (*poolConn, error) {
	for range 8 {
		conns := p.set.Load().conns
		n := len(conns)
		if n == 0 {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return nil, status.Error(codes.Unavailable, ErrPoolClosed.Error())
			}
			return nil, status.Error(codes.Unavailable, "pricing pool has no targets")
		}
		start := int(p.rr.Add(1) % uint64(n))
		var best *poolConn
		bestLoad, bestFailing := int64(math.MaxInt64), true
		for i := range n {
			c := conns[(start+i)%n]
			load := c.refs.Load()
			failing := n > 1 && c.cc.GetState() == connectivity.TransientFailure
			if best == nil || (bestFailing && !failing) || (failing == bestFailing && load < bestLoad) {
				best, bestLoad, bestFailing = c, load, failing
			}
		}
		if best.acquire() {
			return best, nil
		}
		// best was retired and drained between loading the set and
		// acquiring it; the new set is already published.
	}
	return nil, status.Error(codes.Unavailable, "pricing pool: targets are changing too fast to pick a connection")
}

// Quote asks a pricing server for a quote, within the pool's timeout,
// carrying the caller's W3C trace context. Errors keep their gRPC status
// (status.Code works on them): INVALID_ARGUMENT for a bad request,
// UNAVAILABLE for a server that is down, faulted or missing.
func (p *Pool) Quote(ctx context.Context, req *pricingpb.QuoteRequest) (*pricingpb.QuoteResponse, error) {
	c, err := p.pick()
	if err != nil {
		return nil, err
	}
	defer p.release(c)
	if p.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.Timeout)
		defer cancel()
	}
	ctx, span := p.tracer.Start(ctx, quoteSpanName, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(c.spanAttrs...))
	defer span.End()
	resp, err := c.client.Quote(p.inject(ctx), req)
	endSpan(span, err)
	if err != nil {
		return nil, fmt.Errorf("pricing quote via %s: %w", c.target, err)
	}
	return resp, nil
}

// inject writes the context's trace context into the outgoing metadata.
func (p *Pool) inject(ctx context.Context) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	p.prop.Inject(ctx, metadataCarrier(md))
	return metadata.NewOutgoingContext(ctx, md)
}

// Targets returns the current targets, in the order they were set.
func (p *Pool) Targets() []string {
	conns := p.set.Load().conns
	out := make([]string, len(conns))
	for i, c := range conns {
		out[i] = c.target
	}
	return out
}

// Draining is the number of retired connections still waiting for their
// calls in flight.
func (p *Pool) Draining() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.draining)
}

// WaitDrained blocks until every connection retired so far is closed, or
// ctx ends.
func (p *Pool) WaitDrained(ctx context.Context) error {
	p.mu.Lock()
	waits := make([]<-chan struct{}, 0, len(p.draining))
	for c := range p.draining {
		waits = append(waits, c.done)
	}
	p.mu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("pricing pool: waiting for draining connections: %w", ctx.Err())
		}
	}
	return nil
}

// Close retires every connection (each closes when its calls in flight
// finish, or after DrainTimeout); later calls fail UNAVAILABLE with
// ErrPoolClosed. Use WaitDrained to wait for the connections to close.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	old := p.set.Swap(&connSet{})
	for _, c := range old.conns {
		p.retireLocked(c)
	}
	p.active.Set(0)
	return nil
}
