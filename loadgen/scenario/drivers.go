package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/carpoolsla/carpoolsla/loadgen"
)

// Operations of the drivers scenario.
const (
	OpWSConnect    = "ws_connect"
	OpSendPosition = "send_position"
)

// Drivers is the drivers scenario: Options.Drivers drivers, each on its own
// WebSocket to location (GET /v1/drivers/stream?driver_id=...), as the
// drivers' apps hold them. Iteration n sends one position from driver
// n mod Drivers, connecting it first when it has no connection
// (ws_connect, the upgrade's latency). send_position's latency is the
// frame's write.
//
// The server answers only bad messages, asynchronously: such an answer is
// reported as a ws_error_reply error on that driver's next send. A
// connection the server closed (1008, 1013, 1001 ...) or dropped is
// reported as ws_closed (or the network error) on that driver's next send,
// and the one after reconnects.
type Drivers struct {
	o       Options
	dial    *http.Client
	drivers []*driver
	closed  atomic.Bool
}

type driver struct {
	id string
	mu sync.Mutex // one iteration at a time per driver
	c  *websocket.Conn
	// set by the reader goroutine
	dead       atomic.Pointer[error]
	errReplies atomic.Int64
	stopRead   context.CancelFunc
	readDone   chan struct{}
}

// NewDrivers returns the drivers scenario; connections open on first use.
func NewDrivers(o Options) *Drivers {
	o.defaults()
	d := &Drivers{o: o, dial: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 1, DisableCompression: true, ForceAttemptHTTP2: false,
	}}}
	for i := range o.Drivers {
		d.drivers = append(d.drivers, &driver{id: fmt.Sprintf("lg-%s-d%d", o.RunID, i)})
	}
	return d
}

// Name is "drivers".
func (d *Drivers) Name() string { return "drivers" }

// Operations lists the drivers scenario's operations.
func (d *Drivers) Operations() []string { return []string{OpWSConnect, OpSendPosition} }

type positionMsg struct {
	DriverID string  `json:"driver_id"`
	Lat      float64 `json:"lat"`
	Lng      float64 `json:"lng"`
	TS       string  `json:"ts"`
}

// Run sends one position from the iteration's driver.
func (d *Drivers) Run(ctx context.Context, it *loadgen.Iteration) error {
	dr := d.drivers[int(it.N%int64(len(d.drivers)))]
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if d.closed.Load() {
		return errors.New("drivers scenario closed")
	}
	if dr.c != nil {
		if errp := dr.dead.Load(); errp != nil {
			dr.reset()
			return it.Step(ctx, OpSendPosition, func(context.Context) error { return *errp })
		}
	}
	if dr.c == nil {
		if err := it.Step(ctx, OpWSConnect, func(ctx context.Context) error { return d.connect(ctx, dr) }); err != nil {
			return err
		}
	}
	return it.Step(ctx, OpSendPosition, func(ctx context.Context) error {
		p := near(d.o.Center, d.o.Spread)
		b, err := json.Marshal(positionMsg{DriverID: dr.id, Lat: p.Lat, Lng: p.Lng, TS: time.Now().UTC().Format(time.RFC3339Nano)})
		if err != nil {
			return err
		}
		if err := dr.c.Write(ctx, websocket.MessageText, b); err != nil {
			if errp := dr.dead.Load(); errp != nil {
				err = *errp
			}
			dr.reset()
			return wsError(err)
		}
		if n := dr.errReplies.Load(); n > 0 {
			dr.errReplies.Add(-1)
			return loadgen.Errorf(loadgen.KindWSErrorReply, "location rejected a position of driver %s", dr.id)
		}
		return nil
	})
}

func (d *Drivers) connect(ctx context.Context, dr *driver) error {
	u, err := url.Parse(d.o.LocationURL)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("driver_id", dr.id)
	u.RawQuery = q.Encode()
	c, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: d.dial})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return loadgen.StatusError(resp.StatusCode, err.Error())
		}
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	dr.c, dr.stopRead, dr.readDone = c, cancel, make(chan struct{})
	dr.dead.Store(nil)
	dr.errReplies.Store(0)
	go dr.read(rctx, c, dr.readDone)
	return nil
}

// read consumes the server's frames: error replies are counted, and the
// end of the connection is remembered for the next send.
func (dr *driver) read(ctx context.Context, c *websocket.Conn, done chan struct{}) {
	defer close(done)
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			e := wsError(err)
			dr.dead.Store(&e)
			return
		}
		var reply struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &reply) == nil && reply.Error != "" {
			dr.errReplies.Add(1)
		}
	}
}

// reset forgets a broken connection; the next iteration reconnects.
func (dr *driver) reset() {
	if dr.c == nil {
		return
	}
	_ = dr.c.CloseNow()
	dr.stopRead()
	<-dr.readDone
	dr.c = nil
}

func wsError(err error) error {
	if code := websocket.CloseStatus(err); code != -1 {
		return loadgen.Errorf(loadgen.KindWSClosed, "location closed the connection: %v", err)
	}
	return err
}

// Close closes every driver's connection with 1000 (normal closure),
// waiting at most 3 s in all.
func (d *Drivers) Close() error {
	d.closed.Store(true)
	var wg sync.WaitGroup
	for _, dr := range d.drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dr.mu.Lock()
			defer dr.mu.Unlock()
			if dr.c == nil {
				return
			}
			_ = dr.c.Close(websocket.StatusNormalClosure, "load finished")
			dr.reset()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(3 * time.Second):
		return errors.New("drivers: closing the connections took more than 3s")
	}
}
