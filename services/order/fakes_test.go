package order

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/services/order/lifecycle"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeIDs struct {
	n     atomic.Int64
	calls atomic.Int64
	err   atomic.Pointer[error]
}

func (f *fakeIDs) Next() (int64, error) {
	f.calls.Add(1)
	if p := f.err.Load(); p != nil {
		return 0, *p
	}
	return 1000 + f.n.Add(1), nil
}

type fakeQuoter struct {
	calls atomic.Int64
	// fn, when set, answers instead.
	fn func(ctx context.Context, req QuoteRequest) (Quote, error)
}

func (f *fakeQuoter) Quote(ctx context.Context, req QuoteRequest) (Quote, error) {
	f.calls.Add(1)
	if f.fn != nil {
		return f.fn(ctx, req)
	}
	return Quote{PriceMinor: 2350, Currency: "CNY", Surge: 1.2}, nil
}

// fakeDrivers answers Nearby with fn, or by default with one new driver
// per call (so every ride finds a driver of its own).
type fakeDrivers struct {
	calls atomic.Int64
	mu    sync.Mutex
	fn    func(ctx context.Context, p LatLng, n int) ([]Driver, error)
}

func (f *fakeDrivers) set(fn func(ctx context.Context, p LatLng, n int) ([]Driver, error)) {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
}

func (f *fakeDrivers) Nearby(ctx context.Context, p LatLng, n int) ([]Driver, error) {
	c := f.calls.Add(1)
	f.mu.Lock()
	fn := f.fn
	f.mu.Unlock()
	if fn != nil {
		return fn(ctx, p, n)
	}
	return []Driver{{ID: "d" + strconv.FormatInt(c, 10), Pos: p}}, nil
}

func noDrivers(context.Context, LatLng, int) ([]Driver, error) { return nil, nil }

// fakePayer records charges and refunds; chargeErr and refundErr, when
// set, decide each call's error from its 1-based number.
type fakePayer struct {
	mu         sync.Mutex
	charges    []ChargeRequest
	refunds    []RefundRequest
	chargeErr  func(n int) error
	refundErr  func(n int) error
	chargeSeen map[string]string // key → receipt (a provider dedupes by key)
}

func (f *fakePayer) Charge(_ context.Context, req ChargeRequest) (Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.charges = append(f.charges, req)
	if f.chargeErr != nil {
		if err := f.chargeErr(len(f.charges)); err != nil {
			return Receipt{}, err
		}
	}
	if f.chargeSeen == nil {
		f.chargeSeen = map[string]string{}
	}
	if r, ok := f.chargeSeen[req.IdempotencyKey]; ok {
		return Receipt{ID: r}, nil
	}
	r := "rcpt-" + strconv.FormatInt(req.RideID, 10)
	f.chargeSeen[req.IdempotencyKey] = r
	return Receipt{ID: r}, nil
}

func (f *fakePayer) Refund(_ context.Context, req RefundRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refunds = append(f.refunds, req)
	if f.refundErr != nil {
		return f.refundErr(len(f.refunds))
	}
	return nil
}

func (f *fakePayer) snapshot() ([]ChargeRequest, []RefundRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ChargeRequest(nil), f.charges...), append([]RefundRequest(nil), f.refunds...)
}

// countingCache counts invalidations per ride.
type countingCache struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingCache) Invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[id]++
}

func (c *countingCache) count(id int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[strconv.FormatInt(id, 10)]
}

// flakyStore is a MemStore whose writes fail while failPut holds a state
// (or "*" for any).
type flakyStore struct {
	*MemStore
	failPut atomic.Pointer[string]
}

func (f *flakyStore) PutRide(ctx context.Context, r Ride) error {
	if p := f.failPut.Load(); p != nil && (*p == "*" || *p == string(r.State)) {
		return errors.New("store unavailable (test)")
	}
	return f.MemStore.PutRide(ctx, r)
}

// env is a service under test with its fakes.
type env struct {
	svc     *Service
	clock   *fakeClock
	reg     *prometheus.Registry
	ids     *fakeIDs
	quoter  *fakeQuoter
	drivers *fakeDrivers
	payer   *fakePayer
	store   *flakyStore
	cache   *countingCache
	claims  *MemClaims
	h       http.Handler
}

type envOpt struct {
	noRun bool        // do not start Run (dispatch then only runs by hand)
	store *flakyStore // share a store (a restart)
	cfg   func(*Config)
}

func newEnv(t *testing.T, o envOpt) *env {
	t.Helper()
	e := &env{
		clock: newFakeClock(), reg: prometheus.NewRegistry(), ids: &fakeIDs{}, quoter: &fakeQuoter{},
		drivers: &fakeDrivers{}, payer: &fakePayer{}, store: &flakyStore{MemStore: NewMemStore()},
		cache: &countingCache{}, claims: &MemClaims{},
	}
	cfg := Config{
		Region: "sh-a", Registerer: e.reg, Now: e.clock.Now,
		Dispatch: DispatchConfig{MatchWait: 5 * time.Second, Tick: 5 * time.Millisecond},
		Payment:  PaymentConfig{Backoff: -1},
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	if o.store != nil {
		e.store = o.store
	}
	svc, err := New(cfg, Deps{IDs: e.ids, Quoter: e.quoter, Drivers: e.drivers, Payer: e.payer, Store: e.store, Cache: e.cache, Claims: e.claims})
	if err != nil {
		t.Fatal(err)
	}
	e.svc, e.h = svc, svc.Handler()
	if !o.noRun {
		e.run(t)
	}
	return e
}

// run starts Run and stops it when the test ends.
func (e *env) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !e.svc.running.Load() {
		if time.Now().After(deadline) {
			t.Fatal("Run did not start within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not stop within 5s of cancel")
		}
	})
}

// do sends a request to the handler and returns the recorded answer.
func (e *env) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

const rideBody = `{"rider_id":"r1","pickup":{"lat":31.23,"lng":121.47},"dropoff":{"lat":31.20,"lng":121.44}}`

// createRide creates a ride over HTTP and returns it.
func (e *env) createRide(t testing.TB, hdr ...string) Ride {
	t.Helper()
	w := e.do("POST", "/v1/rides", rideBody, hdr...)
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	return decodeRide(t, w)
}

func decodeRide(t testing.TB, w *httptest.ResponseRecorder) Ride {
	t.Helper()
	var r Ride
	if err := jsonUnmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatalf("decoding ride %q: %v", w.Body, err)
	}
	return r
}

// transitions reads carpool_order_transitions_total{from,to}.
func (e *env) transitions(from, to lifecycle.State) float64 {
	return toFloat64(e.svc.tel.transitionsVC.WithLabelValues("sh-a", string(from), string(to)))
}

// waitFor polls cond every millisecond until it holds or 5 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5s waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// drain runs every queued dispatch job on the calling goroutine (for tests
// that do not start Run).
func (e *env) drain() int {
	n := 0
	for {
		select {
		case j := <-e.svc.disp.jobs:
			<-e.svc.disp.slots
			e.svc.tel.add(e.svc.tel.queued, -1)
			e.svc.disp.attempt(context.Background(), j)
			n++
		default:
			return n
		}
	}
}
