package location

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Route is the path of the drivers' WebSocket endpoint.
const Route = "/v1/drivers/stream"

// ServiceName is the service name of the location service in logs, faults
// and metrics.
const ServiceName = "location"

// WebSocket close codes the server sends.
const (
	// CloseTooManyBadMessages (1008, policy violation): MaxConsecutiveBad
	// bad messages in a row.
	CloseTooManyBadMessages = websocket.StatusPolicyViolation
	// CloseSlowConsumer (1013, try again later): the driver did not read the
	// server's replies and ReplyBuffer filled up, or a reply could not be
	// written within WriteTimeout. When the driver's socket is full the
	// frame cannot get through and the TCP connection is dropped instead.
	CloseSlowConsumer = websocket.StatusTryAgainLater
	// CloseMessageTooBig (1009): a message above MaxMessageBytes.
	CloseMessageTooBig = websocket.StatusMessageTooBig
	// CloseShuttingDown (1001, going away): the server is stopping; clients
	// reconnect (to another instance).
	CloseShuttingDown = websocket.StatusGoingAway
	// CloseIdle (1001, going away, reason "idle timeout"): no message and
	// no ping for IdleTimeout, most likely a driver whose network vanished.
	CloseIdle = websocket.StatusGoingAway
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Region labels metrics and logs. Required.
	Region string
	// MaxMessageBytes bounds one WebSocket message; a larger one closes the
	// connection with 1009. Default 4096.
	MaxMessageBytes int64
	// MaxConsecutiveBad bad messages in a row close the connection with
	// 1008; each earlier one is answered with a JSON error. Default 5.
	MaxConsecutiveBad int
	// ReplyBuffer bounds the replies queued for one connection; when it is
	// full the driver is a slow consumer and is closed with 1013. Default 16.
	ReplyBuffer int
	// WriteTimeout bounds writing one reply; default 5 s.
	WriteTimeout time.Duration
	// CloseTimeout bounds a close handshake the server starts; past it the
	// TCP connection is dropped. Default 2 s.
	CloseTimeout time.Duration
	// IdleTimeout closes a connection that sent no message and no ping for
	// this long (a peer gone without a FIN); default 60 s.
	IdleTimeout time.Duration
	// MaxClockAhead is how far in the future a position's ts may be;
	// default 10 s.
	MaxClockAhead time.Duration
	// MaxPositionAge is how old a position may be; older ones are dropped
	// silently and counted as stale (they are not bad messages). Default
	// 30 s; a negative value accepts any age.
	MaxPositionAge time.Duration
	// PublishQueue bounds the positions waiting for the stream; default 4096.
	PublishQueue int
	// QueuePolicy says what a full publish queue drops; default DropOldest.
	QueuePolicy QueuePolicy
	// PublishWorkers publish queued positions concurrently; default 2.
	PublishWorkers int
	// PublishBatch is the most positions a worker publishes at once
	// (pipelined on Redis); default 64.
	PublishBatch int
	// PublishTimeout bounds one publish call; default 2 s.
	PublishTimeout time.Duration
	// DrainTimeout bounds publishing what is queued at shutdown; default 2 s.
	DrainTimeout time.Duration
	// OriginPatterns are the browser origins allowed besides the request's
	// own host (see websocket.AcceptOptions). Drivers' apps send no Origin.
	OriginPatterns []string

	// Now is the region's clock; default Faults.Clock (time.Now plus the
	// injected skew).
	Now func() time.Time
	// Faults is the region's fault injector; nil injects nothing.
	Faults *faults.Injector
	// Logger receives the server's logs; default slog.Default's handler
	// with region and service attributes.
	Logger *slog.Logger
	// TracerProvider makes the receive spans; default no-op.
	TracerProvider trace.TracerProvider
	// Metrics are the location metrics; default unregistered ones.
	Metrics *Metrics
}

func (c *ServerConfig) defaults() {
	setDefault(&c.MaxMessageBytes, 4096)
	setDefault(&c.MaxConsecutiveBad, 5)
	setDefault(&c.ReplyBuffer, 16)
	setDefault(&c.WriteTimeout, 5*time.Second)
	setDefault(&c.CloseTimeout, 2*time.Second)
	setDefault(&c.IdleTimeout, 60*time.Second)
	setDefault(&c.MaxClockAhead, 10*time.Second)
	setDefault(&c.MaxPositionAge, 30*time.Second)
	setDefault(&c.PublishQueue, 4096)
	setDefault(&c.QueuePolicy, DropOldest)
	setDefault(&c.PublishWorkers, 2)
	setDefault(&c.PublishBatch, 64)
	setDefault(&c.PublishTimeout, 2*time.Second)
	setDefault(&c.DrainTimeout, 2*time.Second)
	if c.Now == nil {
		c.Now = c.Faults.Clock
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
}

// Validate checks the configuration after defaults are applied.
func (c ServerConfig) Validate() error {
	switch {
	case c.Region == "":
		return errors.New("location server: the region is required")
	case c.MaxMessageBytes < 64:
		return fmt.Errorf("location server: max message size is %d bytes; a position needs at least 64", c.MaxMessageBytes)
	case c.MaxConsecutiveBad < 1 || c.ReplyBuffer < 1 || c.PublishQueue < 1 || c.PublishWorkers < 1 || c.PublishBatch < 1:
		return errors.New("location server: max consecutive bad messages, reply buffer, publish queue, publish workers and publish batch must be at least 1")
	case c.WriteTimeout <= 0 || c.CloseTimeout <= 0 || c.IdleTimeout <= 0 || c.PublishTimeout <= 0 || c.DrainTimeout <= 0 || c.MaxClockAhead <= 0:
		return errors.New("location server: timeouts and the clock allowance must be positive")
	case c.MaxPositionAge > 0 && c.MaxPositionAge <= c.MaxClockAhead:
		return fmt.Errorf("location server: max position age %s must exceed the clock allowance %s", c.MaxPositionAge, c.MaxClockAhead)
	}
	return c.QueuePolicy.validate()
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Server is the drivers' WebSocket endpoint (an http.Handler for Route):
// it validates each position, answers a bad one with a JSON error, and
// queues good ones for the stream without ever blocking on it. Run
// publishes the queue and closes connections at shutdown.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	tracer trace.Tracer
	prop   propagation.TraceContext
	m      *Metrics
	queue  *publishQueue

	base       context.Context // ends the connections' reads at shutdown
	cancelBase context.CancelFunc

	mu      sync.Mutex
	conns   map[*driverConn]struct{}
	closing bool
	connWG  sync.WaitGroup
}

// NewServer returns a server that publishes to pub (a Stream).
func NewServer(cfg ServerConfig, pub positionPublisher) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		m, err := NewMetrics(nil, cfg.Region, streamName(pub), "")
		if err != nil {
			return nil, err
		}
		cfg.Metrics = m
	}
	log := componentLogger(cfg.Logger, cfg.Region, "server")
	base, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:        cfg,
		log:        log,
		tracer:     cfg.TracerProvider.Tracer(tracerName),
		m:          cfg.Metrics,
		queue:      newPublishQueue(cfg.PublishQueue, cfg.QueuePolicy, pub, cfg.PublishBatch, cfg.PublishTimeout, cfg.Metrics, log),
		base:       base,
		cancelBase: cancel,
		conns:      make(map[*driverConn]struct{}),
	}, nil
}

const tracerName = "github.com/carpoolsla/carpoolsla/services/location"

func streamName(pub any) string {
	if n, ok := pub.(interface{ Name() string }); ok {
		return n.Name()
	}
	return ""
}

func componentLogger(l *slog.Logger, region, component string) *slog.Logger {
	if l == nil {
		l = slog.New(slog.Default().Handler())
	}
	return l.With("region", region, "service", ServiceName, "component", component)
}

// Run publishes queued positions until ctx ends; then it closes every
// connection with 1001, publishes what is still queued (for at most
// DrainTimeout) and returns nil. New connections are refused from then on.
func (s *Server) Run(ctx context.Context) error {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.queue.run(stop, s.cfg.PublishWorkers, s.cfg.DrainTimeout)
	}()
	<-ctx.Done()
	s.shutdown()
	close(stop)
	<-done
	return nil
}

// shutdown closes every connection with 1001 and waits for their handlers,
// at most a little past CloseTimeout.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.closing = true
	conns := make([]*driverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.close(CloseShuttingDown, "server shutting down", catalog.LocationCloseGoingAway) })
	}
	waitTimeout(&wg, s.cfg.CloseTimeout+time.Second)
	s.cancelBase()
	waitTimeout(&s.connWG, s.cfg.CloseTimeout+time.Second)
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// ServeHTTP implements http.Handler for Route. Before the upgrade it
// answers 405 for a method other than GET, 400 for a malformed driver_id
// query parameter, 426 for a request that is not a WebSocket upgrade and
// 503 while shutting down, each with a JSON body {"error", "field"}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "", "the driver stream is opened with GET and a WebSocket upgrade")
		return
	}
	driverID := r.URL.Query().Get("driver_id")
	if r.URL.Query().Has("driver_id") {
		if fe := validDriverID(driverID); fe != nil {
			writeError(w, http.StatusBadRequest, fe.Field, fe.Msg)
			return
		}
	}
	if field, msg := checkUpgrade(r); field != "" {
		w.Header().Set("Upgrade", "websocket")
		writeError(w, http.StatusUpgradeRequired, field, msg)
		return
	}
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.connWG.Add(1)
	}
	s.mu.Unlock()
	if closing {
		writeError(w, http.StatusServiceUnavailable, "", "the server is shutting down; reconnect to another instance")
		return
	}
	defer s.connWG.Done()

	c := &driverConn{s: s, driverID: driverID, replies: make(chan reply, s.cfg.ReplyBuffer)}
	hw := &hijackRecorder{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		OriginPatterns: s.cfg.OriginPatterns,
		OnPingReceived: func(context.Context, []byte) bool { c.touch(); return true },
	})
	if err != nil {
		s.log.Debug("websocket upgrade failed", "err", err)
		return
	}
	ws.SetReadLimit(s.cfg.MaxMessageBytes)
	c.ws, c.raw = ws, hw.conn
	c.ctx, c.cancel = context.WithCancel(s.base)
	c.idle.Store(time.AfterFunc(s.cfg.IdleTimeout, func() {
		c.close(CloseIdle, "idle timeout", catalog.LocationCloseIdle)
	}))
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.m.connsOpen.Inc()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.m.connsOpen.Dec()
	}()
	c.serve()
}

// checkUpgrade returns the header and the reason when r is not a WebSocket
// upgrade request.
func checkUpgrade(r *http.Request) (field, msg string) {
	hasToken := func(h, token string) bool {
		for _, v := range r.Header.Values(h) {
			for t := range strings.SplitSeq(v, ",") {
				if strings.EqualFold(strings.TrimSpace(t), token) {
					return true
				}
			}
		}
		return false
	}
	switch {
	case !hasToken("Connection", "upgrade"):
		return "Connection", "the driver stream is a WebSocket: send Connection: Upgrade"
	case !hasToken("Upgrade", "websocket"):
		return "Upgrade", "the driver stream is a WebSocket: send Upgrade: websocket"
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "Sec-WebSocket-Version", "only WebSocket version 13 is supported"
	case r.Header.Get("Sec-WebSocket-Key") == "":
		return "Sec-WebSocket-Key", "the WebSocket key is missing"
	}
	return "", ""
}

func writeError(w http.ResponseWriter, code int, field, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(FieldError{Field: field, Msg: msg})
}

// hijackRecorder keeps the net.Conn websocket.Accept hijacks, so that a
// close the server starts can be bounded with a deadline.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response writer cannot be hijacked")
	}
	c, rw, err := hj.Hijack()
	h.conn = c
	return c, rw, err
}

func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// driverConn is one driver's connection.
type driverConn struct {
	s        *Server
	ws       *websocket.Conn
	raw      net.Conn
	driverID string // "" until the first valid message names it
	replies  chan reply
	ctx      context.Context
	cancel   context.CancelFunc
	bad      int                        // bad messages in a row
	idle     atomic.Pointer[time.Timer] // closes the connection after IdleTimeout without traffic

	closeOnce sync.Once
	reason    string // closed metric label, set in closeOnce
}

// touch restarts the idle timer.
func (c *driverConn) touch() {
	if t := c.idle.Load(); t != nil {
		t.Reset(c.s.cfg.IdleTimeout)
	}
}

// serve reads until the connection ends, then counts why it ended.
func (c *driverConn) serve() {
	defer c.idle.Load().Stop()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	if !c.readLoop() {
		c.cancel()
	}
	<-writerDone // after a requested close, the writer sends the queued replies and then the close frame
	c.cancel()
	c.closeOnce.Do(func() { c.reason = catalog.LocationCloseError; _ = c.ws.CloseNow() })
	c.s.m.closed[c.reason].Inc()
	c.s.log.Debug("driver connection closed", "driver_id", c.driverID, "reason", c.reason)
}

// reply is a message for the driver, or (code set) the close that follows
// the replies queued before it.
type reply struct {
	data   []byte
	code   websocket.StatusCode
	reason string // close reason sent to the driver
	label  string // closed metric reason
}

// close starts a close handshake with code, bounded by CloseTimeout, and
// records reason; only the first close of a connection counts.
func (c *driverConn) close(code websocket.StatusCode, msg, reason string) {
	c.closeOnce.Do(func() {
		c.reason = reason
		if c.raw != nil {
			_ = c.raw.SetDeadline(time.Now().Add(c.s.cfg.CloseTimeout))
		}
		_ = c.ws.Close(code, msg)
	})
}

// abort drops the connection without a close frame, as a dead host would.
func (c *driverConn) abort(reason string) {
	c.closeOnce.Do(func() {
		c.reason = reason
		_ = c.ws.CloseNow()
	})
}

// readLoop reads messages until the connection ends or must end. It
// returns true when it queued a close for the writer to send after the
// replies before it.
func (c *driverConn) readLoop() (closeQueued bool) {
	s := c.s
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.closeOnce.Do(func() {
				c.reason = classifyReadError(err, c.ctx)
				_ = c.ws.CloseNow()
			})
			return false
		}
		if s.cfg.Faults.Down() {
			c.abort(catalog.LocationCloseRegionDown)
			return false
		}
		c.touch()
		began := time.Now()
		s.m.received.Inc()
		var p Position
		if typ != websocket.MessageText {
			err = fieldErr("", "send text frames holding one JSON position")
		} else {
			p, err = decodePosition(data, c.driverID, decodeLimits{now: s.cfg.Now(), maxAhead: s.cfg.MaxClockAhead, maxAge: s.cfg.MaxPositionAge})
		}
		var fe *FieldError
		switch {
		case errors.Is(err, errStale):
			s.m.rejected[catalog.LocationRejectStale].Inc()
			s.m.positionBad.Observe(time.Since(began).Seconds())
			continue
		case errors.As(err, &fe):
			s.m.rejected[catalog.LocationRejectInvalid].Inc()
			s.m.positionBad.Observe(time.Since(began).Seconds())
			c.bad++
			r := reply{code: CloseTooManyBadMessages, reason: "too many bad messages in a row", label: catalog.LocationClosePolicyViolation}
			if c.bad < s.cfg.MaxConsecutiveBad {
				b, _ := json.Marshal(fe)
				r = reply{data: b}
			}
			select {
			case c.replies <- r:
			default:
				c.close(CloseSlowConsumer, "slow consumer: replies not read", catalog.LocationCloseSlowConsumer)
				return false
			}
			if r.code != 0 {
				return true
			}
			continue
		}
		c.bad = 0
		if c.driverID == "" {
			c.driverID = p.DriverID
		}
		if s.publish(p) {
			s.m.positionOK.Observe(time.Since(began).Seconds())
		} else {
			s.m.positionFull.Observe(time.Since(began).Seconds())
		}
	}
}

func classifyReadError(err error, ctx context.Context) string {
	switch {
	case ctx.Err() != nil:
		return catalog.LocationCloseGoingAway
	case errors.Is(err, websocket.ErrMessageTooBig):
		return catalog.LocationCloseMessageTooBig
	}
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		return catalog.LocationCloseNormal
	}
	return catalog.LocationCloseError
}

func (c *driverConn) writeLoop() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case r := <-c.replies:
			if r.code != 0 {
				c.close(r.code, r.reason, r.label)
				return
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.WriteTimeout)
			err := c.ws.Write(ctx, websocket.MessageText, r.data)
			timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
			cancel()
			if err != nil {
				if timedOut {
					c.abort(catalog.LocationCloseSlowConsumer)
				}
				c.cancel()
				return
			}
		}
	}
}

// publish starts the position's receive span (a child of the driver's
// traceparent), carries the span's context on in the position and queues
// it.
func (s *Server) publish(p Position) bool {
	ctx := context.Background()
	if p.TraceParent != "" {
		ctx = s.prop.Extract(ctx, propagation.MapCarrier{"traceparent": p.TraceParent})
	}
	ctx, span := s.tracer.Start(ctx, "location.receive", trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("carpool.driver_id", p.DriverID), attribute.String("carpool.region", s.cfg.Region))
	}
	if sc := span.SpanContext(); sc.IsValid() {
		carrier := propagation.MapCarrier{}
		s.prop.Inject(ctx, carrier)
		p.TraceParent = carrier["traceparent"]
	}
	ok := s.queue.offer(p)
	if !ok {
		span.SetStatus(codes.Error, "publish queue full")
	}
	span.End()
	return ok
}
