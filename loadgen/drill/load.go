package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/services/gateway"
)

// Attempt is one HTTP call of a ride creation, through one gateway.
type Attempt struct {
	// Gateway is the region whose gateway was called.
	Gateway string    `json:"gateway"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// Status is the HTTP status; 0 when no answer came (connection refused
	// or dropped, timeout).
	Status int `json:"status"`
	// ServedBy is the gateway's X-Carpool-Region: the region that served it.
	ServedBy string `json:"served_by,omitempty"`
	Err      string `json:"error,omitempty"`
}

func (a Attempt) ok() bool { return a.Status == http.StatusCreated || a.Status == http.StatusOK }

// err is the attempt's failure as the load generator classifies it.
func (a Attempt) err() error {
	switch {
	case a.ok():
		return nil
	case a.Status != 0:
		return loadgen.StatusError(a.Status, a.Err)
	case strings.HasPrefix(a.Err, "timeout"):
		return loadgen.Errorf(loadgen.KindTimeout, "%s", a.Err)
	case strings.Contains(a.Err, "connection refused"):
		return loadgen.Errorf(loadgen.KindConnRefused, "%s", a.Err)
	case strings.Contains(a.Err, "EOF") || strings.Contains(a.Err, "reset"):
		return loadgen.Errorf(loadgen.KindConnReset, "%s", a.Err)
	}
	return loadgen.Errorf(loadgen.KindConnError, "%s", a.Err)
}

// retryable: the rider's app tries the next gateway after no answer or a
// 5xx, never after a 4xx.
func (a Attempt) retryable() bool { return a.Status == 0 || a.Status >= 500 }

// Order is one ride creation of the drill's load: one rider, one
// Idempotency-Key, one or more attempts.
type Order struct {
	Key   string `json:"key"`
	Rider string `json:"rider"`
	// Home is the rider's home region (its unit's home): the gateway its
	// app calls first.
	Home string `json:"home"`
	// Intended is when the schedule wanted it sent; Done when it ended.
	Intended time.Time `json:"intended"`
	Done     time.Time `json:"done"`
	Attempts []Attempt `json:"attempts,omitempty"`
	// OK: a 2xx acknowledged the ride; RideID is its id, Origin the region
	// that wrote it, ServedBy the region that answered.
	OK       bool   `json:"ok"`
	RideID   int64  `json:"ride_id,omitempty"`
	Origin   string `json:"origin,omitempty"`
	ServedBy string `json:"served_by,omitempty"`
}

// Sent is when the first attempt started (the intended time if none did).
func (o Order) Sent() time.Time {
	if len(o.Attempts) == 0 {
		return o.Intended
	}
	return o.Attempts[0].Start
}

// loadConfig configures the ride load.
type loadConfig struct {
	// Gateways maps each region to its gateway URL; Regions lists them in
	// spec order (the apps' fallback order starts after the home region).
	Gateways       map[string]string
	Regions        []string
	Rate           float64
	Units          int
	RidersPerHome  int
	Fallbacks      int
	RequestTimeout time.Duration
	MaxInFlight    int
	// MaxOrders bounds the rides (0: as many as Duration holds);
	// Duration bounds the schedule (the drill stops it earlier).
	MaxOrders int
	Duration  time.Duration
	Point     LatLng
	RunID     string
	HTTP      *http.Client
	Now       func() time.Time
}

type rider struct{ id, home string }

// load creates rides at a fixed rate through the gateways, whatever the
// answers do: the project's open-model executor (loadgen) schedules them,
// each with its intended time, and a ride that finds every worker busy is
// dropped and counted rather than delayed. load is the executor's
// scenario; it keeps every ride's outcome as an Order.
type load struct {
	cfg    loadConfig
	riders map[string][]rider // by home
	homes  []string           // homes in turn
	exec   *loadgen.Executor

	wg sync.WaitGroup // iterations in Run

	mu       sync.Mutex
	done     []Order
	started  int
	finished int
}

// loadScenario is the executor scenario's name.
const loadScenario = "drill_ride"

func newLoad(cfg loadConfig) (*load, error) {
	l := &load{cfg: cfg, riders: map[string][]rider{}}
	// Riders are found by hashing candidate ids into units, as the
	// gateways do, until every region is home to RidersPerHome of them.
	need := cfg.RidersPerHome * len(cfg.Regions)
	for i, found := 0, 0; found < need; i++ {
		if i > 1000*need {
			return nil, fmt.Errorf("found only %d of %d riders homed in every region after %d candidates; are units (%d) at least the region count?", found, need, i, cfg.Units)
		}
		id := fmt.Sprintf("drill-%s-rider-%d", cfg.RunID, i)
		home := gateway.UnitOf(id, cfg.Units, cfg.Regions).Home
		if len(l.riders[home]) < cfg.RidersPerHome {
			l.riders[home] = append(l.riders[home], rider{id, home})
			found++
		}
	}
	l.homes = cfg.Regions
	d := cfg.Duration
	if cfg.MaxOrders > 0 {
		d = time.Duration(float64(cfg.MaxOrders) / cfg.Rate * float64(time.Second))
	}
	exec, err := loadgen.New(loadgen.Config{
		Schedule:   loadgen.Constant(cfg.Rate, d),
		Scenarios:  []loadgen.Weighted{{Scenario: l, Weight: 1}},
		Workers:    min(64, cfg.MaxInFlight),
		MaxWorkers: cfg.MaxInFlight,
		Timeout:    cfg.RequestTimeout,
		RunID:      "drill-" + cfg.RunID,
		Target:     "every region's gateway",
	})
	if err != nil {
		return nil, fmt.Errorf("the drill's load: %w", err)
	}
	l.exec = exec
	return l, nil
}

// run runs the schedule until ctx ends (or it is over). Rides in flight
// when ctx ends are finished, not cut: their outcome is what the drill
// counts.
func (l *load) run(ctx context.Context) {
	_ = l.exec.Run(ctx) // its only error: iterations slow to return, which wait below
	l.wg.Wait()
}

// Name implements loadgen.Scenario.
func (l *load) Name() string { return loadScenario }

// Run implements loadgen.Scenario: one ride, by the iteration's rider.
func (l *load) Run(ctx context.Context, it *loadgen.Iteration) error {
	l.wg.Add(1)
	defer l.wg.Done()
	n := int(it.N)
	home := l.homes[n%len(l.homes)]
	rs := l.riders[home]
	r := rs[(n/len(l.homes))%len(rs)]
	o := Order{Key: fmt.Sprintf("drill-%s-%d", l.cfg.RunID, n), Rider: r.id, Home: home, Intended: it.Intended}
	l.mu.Lock()
	l.started++
	l.mu.Unlock()
	err := l.create(ctx, it, &o)
	l.mu.Lock()
	l.done = append(l.done, o)
	l.finished++
	l.mu.Unlock()
	return err
}

// orders returns a copy of the orders finished so far, in finishing order.
func (l *load) orders() []Order {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Order(nil), l.done...)
}

// pending is how many orders were started and have not finished.
func (l *load) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.started - l.finished
}

// summary is the executor's summary: scheduled, dropped, achieved rate.
func (l *load) summary() *loadgen.Summary { return l.exec.Summary() }

// create tries the rider's home gateway, then up to Fallbacks others in
// spec order after it, with the same Idempotency-Key, as long as the
// answer is none or a 5xx. Each attempt is a step of the iteration.
func (l *load) create(ctx context.Context, it *loadgen.Iteration, o *Order) error {
	body, _ := json.Marshal(map[string]any{
		"rider_id": o.Rider,
		"pickup":   l.cfg.Point,
		"dropoff":  LatLng{l.cfg.Point.Lat + 0.01, l.cfg.Point.Lng + 0.01},
	})
	var err error
	for n, gw := range fallbackOrder(l.cfg.Regions, o.Home) {
		if n > l.cfg.Fallbacks {
			break
		}
		op := "create_ride"
		if n > 0 {
			op = "create_ride_fallback"
		}
		var a Attempt
		var ride createdRide
		err = it.Step(ctx, op, func(context.Context) error {
			a, ride = l.attempt(gw, o, body)
			return a.err()
		})
		o.Attempts = append(o.Attempts, a)
		if a.ok() {
			o.OK, o.RideID, o.Origin, o.ServedBy = true, ride.id, ride.region, a.ServedBy
			break
		}
		if !a.retryable() {
			break
		}
	}
	o.Done = l.cfg.Now()
	return err
}

// fallbackOrder is home first, then the regions after it in spec order,
// wrapping around.
func fallbackOrder(regions []string, home string) []string {
	out := []string{home}
	at := 0
	for i, r := range regions {
		if r == home {
			at = i
		}
	}
	for i := 1; i < len(regions); i++ {
		out = append(out, regions[(at+i)%len(regions)])
	}
	return out
}

type createdRide struct {
	id     int64
	region string
}

func (l *load) attempt(gw string, o *Order, body []byte) (Attempt, createdRide) {
	a := Attempt{Gateway: gw, Start: l.cfg.Now()}
	// Its own context: stopping the load must not cut a ride in flight,
	// whose outcome the drill counts.
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.RequestTimeout)
	defer cancel()
	var ride createdRide
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(l.cfg.Gateways[gw], "/")+"/v1/rides", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(gateway.HeaderRiderID, o.Rider)
		req.Header.Set(gateway.HeaderIdempotencyKey, o.Key)
		resp, err := l.cfg.HTTP.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		a.Status, a.ServedBy = resp.StatusCode, resp.Header.Get(gateway.HeaderRegion)
		if err != nil {
			a.Status = 0
			return fmt.Errorf("reading the answer: %w", err)
		}
		if !a.ok() {
			return fmt.Errorf("status %d: %s", resp.StatusCode, truncate(bytes.TrimSpace(b), 200))
		}
		var r struct {
			ID     string `json:"id"`
			Region string `json:"region"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("decoding the ride: %w", err)
		}
		id, err := strconv.ParseInt(r.ID, 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("the ride id %q is not a positive integer", r.ID)
		}
		ride = createdRide{id: id, region: r.Region}
		return nil
	}()
	a.End = l.cfg.Now()
	if err != nil {
		a.Err = err.Error()
		if a.ok() { // a 2xx we could not read is not an acknowledgement we can check
			a.Status = 0
		}
		if errors.Is(err, context.DeadlineExceeded) {
			a.Err = "timeout after " + l.cfg.RequestTimeout.String()
		}
	}
	return a, ride
}
