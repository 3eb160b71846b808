package location

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// URL is the stream endpoint, ws://host:port/v1/drivers/stream, with
	// ?driver_id=... when the connection carries one driver. Required.
	URL string
	// QueueSize bounds the positions waiting to be sent; when full, Send
	// drops the oldest. Default 1024.
	QueueSize int
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts: it doubles from MinBackoff up to MaxBackoff, the upper half
	// jittered. Defaults 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one connection attempt; default 5 s.
	DialTimeout time.Duration
	// WriteTimeout bounds sending one position or ping; default 5 s.
	WriteTimeout time.Duration
	// PingInterval is how often the client pings the server while
	// connected, which keeps the server's idle timeout from closing a
	// quiet connection and detects a dead server; default 20 s, negative
	// disables pings.
	PingInterval time.Duration
	// MaxAge drops queued positions older than this (by their ts) instead
	// of sending them after a long outage; default 30 s, negative keeps all.
	MaxAge time.Duration
	// HTTPClient dials; default http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives reconnection logs; default discards them.
	Logger *slog.Logger
	// Now is the clock MaxAge is measured on; default time.Now.
	Now func() time.Time
}

func (c *ClientConfig) defaults() {
	setDefault(&c.QueueSize, 1024)
	setDefault(&c.MinBackoff, 100*time.Millisecond)
	setDefault(&c.MaxBackoff, 5*time.Second)
	setDefault(&c.DialTimeout, 5*time.Second)
	setDefault(&c.WriteTimeout, 5*time.Second)
	setDefault(&c.PingInterval, 20*time.Second)
	setDefault(&c.MaxAge, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks the configuration after defaults are applied.
func (c ClientConfig) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("location client: the stream URL is required")
	case c.QueueSize < 1:
		return fmt.Errorf("location client: queue size is %d; it must be at least 1", c.QueueSize)
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("location client: backoff bounds %s..%s must be positive and ordered", c.MinBackoff, c.MaxBackoff)
	case c.DialTimeout <= 0 || c.WriteTimeout <= 0:
		return errors.New("location client: dial and write timeouts must be positive")
	}
	return nil
}

// ClientStats counts what a Client did.
type ClientStats struct {
	Sent       uint64 // positions written to a connection
	Dropped    uint64 // positions dropped because the queue was full
	Expired    uint64 // queued positions dropped as older than MaxAge
	Rejected   uint64 // error replies received from the server
	Connects   uint64 // successful connections, the first included
	Pings      uint64 // pings the server answered
	DialErrors uint64 // failed connection attempts
	LastError  string // the server's last error reply or the last connection error
}

// ErrClientClosed is returned by Send after Close.
var ErrClientClosed = errors.New("location client closed")

// Client streams positions to the location service over one WebSocket
// connection, reconnecting with jittered exponential backoff whenever the
// connection breaks, and resuming with what is queued: a position whose
// write failed is sent again after reconnecting, so a position can arrive
// twice (the index keeps the newest) but is lost only when the queue
// overflows or it expires. Safe for concurrent use.
type Client struct {
	cfg    ClientConfig
	queue  chan Position
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	sent, dropped, expired, rejected, connects, dialErrors, pings atomic.Uint64
	connected                                                     atomic.Bool
	mu                                                            sync.Mutex
	lastErr                                                       string
}

// DialStream connects to the stream endpoint at url with the default
// ClientConfig. The client lives until Close or until ctx ends.
func DialStream(ctx context.Context, url string) (*Client, error) {
	return DialStreamConfig(ctx, ClientConfig{URL: url})
}

// DialStreamConfig connects with cfg. The first connection must succeed
// (so that a wrong URL fails at once); later ones are retried forever.
func DialStreamConfig(ctx context.Context, cfg ClientConfig) (*Client, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &Client{cfg: cfg, queue: make(chan Position, cfg.QueueSize), ctx: cctx, cancel: cancel, done: make(chan struct{})}
	conn, err := c.dial()
	if err != nil {
		cancel()
		return nil, err
	}
	go c.run(conn)
	return c, nil
}

// Send queues p for sending and never blocks: when the queue is full the
// oldest queued position is dropped.
func (c *Client) Send(p Position) error {
	if c.ctx.Err() != nil {
		return ErrClientClosed
	}
	for range 4 {
		select {
		case c.queue <- p:
			return nil
		default:
		}
		select {
		case <-c.queue:
			c.dropped.Add(1)
		default:
		}
	}
	c.dropped.Add(1)
	return nil
}

// Close closes the connection with 1000 and stops reconnecting; queued
// positions not yet sent are dropped.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// Connected reports whether the client holds an open connection now.
func (c *Client) Connected() bool { return c.connected.Load() }

// Queued returns how many positions wait to be sent.
func (c *Client) Queued() int { return len(c.queue) }

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	c.mu.Lock()
	last := c.lastErr
	c.mu.Unlock()
	return ClientStats{
		Sent: c.sent.Load(), Dropped: c.dropped.Load(), Expired: c.expired.Load(), Rejected: c.rejected.Load(),
		Connects: c.connects.Load(), Pings: c.pings.Load(), DialErrors: c.dialErrors.Load(), LastError: last,
	}
}

func (c *Client) setLastErr(s string) {
	c.mu.Lock()
	c.lastErr = s
	c.mu.Unlock()
}

func (c *Client) dial() (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, c.cfg.URL, &websocket.DialOptions{HTTPClient: c.cfg.HTTPClient})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		c.dialErrors.Add(1)
		c.setLastErr(err.Error())
		return nil, fmt.Errorf("connecting to the location stream %s: %w", c.cfg.URL, err)
	}
	c.connects.Add(1)
	return conn, nil
}

// run pumps the queue into the connection, reconnecting until the client
// is closed.
func (c *Client) run(conn *websocket.Conn) {
	defer close(c.done)
	var pending *Position // a position whose write failed, sent first after reconnecting
	for {
		pending = c.pump(conn, pending)
		if c.ctx.Err() != nil {
			return
		}
		conn = nil
		for attempt := 0; conn == nil; attempt++ {
			if !sleep(c.ctx, backoff(attempt, c.cfg.MinBackoff, c.cfg.MaxBackoff)) {
				return
			}
			var err error
			if conn, err = c.dial(); err != nil {
				c.cfg.Logger.Debug("reconnecting to the location stream failed", "attempt", attempt+1, "err", err)
			}
		}
	}
}

// pump sends queued positions on conn until it breaks (returning the
// position whose write failed, if any) or the client closes.
func (c *Client) pump(conn *websocket.Conn, pending *Position) *Position {
	c.connected.Store(true)
	defer c.connected.Store(false)
	broken := make(chan struct{})
	readDone := make(chan struct{})
	// The reader outlives a Close of the client so that it can take part in
	// the close handshake; it ends when the connection does.
	readCtx, cancelRead := context.WithCancel(context.WithoutCancel(c.ctx))
	go func() { // read replies: errors are counted, and reading handles pings and the server's close
		defer close(readDone)
		defer close(broken)
		for {
			_, data, err := conn.Read(readCtx)
			if err != nil {
				if c.ctx.Err() == nil {
					c.setLastErr(err.Error())
				}
				return
			}
			c.rejected.Add(1)
			var fe FieldError
			if json.Unmarshal(data, &fe) == nil {
				c.setLastErr(fe.Error())
			}
		}
	}()
	if c.cfg.PingInterval > 0 {
		go c.ping(conn, readDone)
	}
	defer func() {
		if c.ctx.Err() != nil {
			// Close with a bounded handshake; the reader sees the reply.
			done := make(chan struct{})
			go func() { _ = conn.Close(websocket.StatusNormalClosure, "client closed"); close(done) }()
			select {
			case <-done:
			case <-time.After(c.cfg.WriteTimeout):
				_ = conn.CloseNow()
			}
		} else {
			_ = conn.CloseNow()
		}
		cancelRead()
		<-readDone
	}()
	for {
		if pending == nil {
			select {
			case <-c.ctx.Done():
				return nil
			case <-broken:
				return nil
			case p := <-c.queue:
				pending = &p
			}
		}
		if c.cfg.MaxAge > 0 && c.cfg.Now().Sub(pending.TS) > c.cfg.MaxAge {
			c.expired.Add(1)
			pending = nil
			continue
		}
		b, err := json.Marshal(pending)
		if err != nil { // a Position always marshals; drop it if not
			pending = nil
			continue
		}
		wctx, cancel := context.WithTimeout(c.ctx, c.cfg.WriteTimeout)
		err = conn.Write(wctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return nil
			}
			c.setLastErr(err.Error())
			return pending
		}
		c.sent.Add(1)
		pending = nil
	}
}

// ping pings the server every PingInterval until the connection's reader
// ends; an unanswered ping drops the connection so that the client
// reconnects.
func (c *Client) ping(conn *websocket.Conn, readDone <-chan struct{}) {
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-readDone:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.WriteTimeout)
			err := conn.Ping(ctx)
			cancel()
			if err != nil {
				if c.ctx.Err() == nil {
					c.setLastErr("ping: " + err.Error())
					_ = conn.CloseNow()
				}
				return
			}
			c.pings.Add(1)
		}
	}
}
