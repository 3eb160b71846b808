package payment

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

// fakeClock moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeProvider is a Sim without latency whose failures are switched on and
// off by the test, and whose charges can be held at a gate.
type fakeProvider struct {
	*Sim
	fail    atomic.Bool
	calls   atomic.Int64
	gate    chan struct{} // nil: no gate; else Charge waits for it to close
	entered chan struct{} // receives once per Charge call that reached the gate
}

func newFakeProvider(name string, fail bool) *fakeProvider {
	p := &fakeProvider{Sim: NewSim(ProviderConfig{Name: name}, func() float64 { return 0.5 })}
	p.fail.Store(fail)
	return p
}

func (p *fakeProvider) Charge(ctx context.Context, c ProviderCharge) (string, error) {
	p.calls.Add(1)
	if p.gate != nil {
		p.entered <- struct{}{}
		select {
		case <-p.gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if p.fail.Load() {
		return "", fmt.Errorf("%s: %w", p.Name(), ErrProviderUnavailable)
	}
	return p.Sim.Charge(ctx, c)
}

func (p *fakeProvider) Refund(ctx context.Context, ref string) error {
	if p.fail.Load() {
		return fmt.Errorf("%s: %w", p.Name(), ErrProviderUnavailable)
	}
	return p.Sim.Refund(ctx, ref)
}

// gated holds p's charges until the returned release is called.
func (p *fakeProvider) gated() (release func()) {
	p.gate = make(chan struct{})
	p.entered = make(chan struct{}, 1000)
	var once sync.Once
	return func() { once.Do(func() { close(p.gate) }) }
}

type fixture struct {
	svc   *Service
	clock *fakeClock
	reg   *prometheus.Registry
	ps    []*fakeProvider
	in    *faults.Injector
}

// newFixture builds a service over fake providers named a, b, ...; fails
// says which fail from the start.
func newFixture(t *testing.T, fails ...bool) *fixture {
	t.Helper()
	f := &fixture{clock: &fakeClock{t: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}, reg: prometheus.NewRegistry(), in: &faults.Injector{}}
	var ps []Provider
	var cfgs []ProviderConfig
	for i, fail := range fails {
		p := newFakeProvider(string(rune('a'+i)), fail)
		f.ps = append(f.ps, p)
		ps = append(ps, p)
		cfgs = append(cfgs, ProviderConfig{Name: p.Name()})
	}
	cfg := Config{Region: "sh-a", Providers: cfgs, CircuitFailures: 3, CircuitCooldown: 30 * time.Second, Now: f.clock.Now, Faults: f.in}
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	svc, err := newService(cfg, ps, f.reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func req(ride, key string) ChargeRequest {
	return ChargeRequest{RideID: ride, RiderID: "rider-1", Amount: 2350, Currency: "CNY", IdempotencyKey: key}
}

// metric returns the value of the counter or gauge name with labels.
func (f *fixture) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return float64(m.GetHistogram().GetSampleCount())
}

func (f *fixture) ledger(i int) (charges int, refunds int) {
	c, _, r := f.ps[i].Ledger()
	return c, r
}

func TestFailoverWhenTheFirstProviderFails(t *testing.T) {
	f := newFixture(t, true, false)
	r, err := f.svc.Charge(context.Background(), req("1", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Provider != "b" || r.Attempts != 2 || r.Status != StatusCharged || r.ID == "" || r.ProviderRef == "" {
		t.Fatalf("receipt %+v, want a charge on b after 2 attempts", r)
	}
	if c, _ := f.ledger(0); c != 0 {
		t.Fatalf("a charged %d times", c)
	}
	if c, _ := f.ledger(1); c != 1 {
		t.Fatalf("b charged %d times", c)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"carpool_payment_failovers_total", map[string]string{"region": "sh-a"}, 1},
		{"carpool_payment_attempts_total", map[string]string{"provider": "a", "outcome": "error"}, 1},
		{"carpool_payment_attempts_total", map[string]string{"provider": "b", "outcome": "ok"}, 1},
		{"carpool_payment_charges_total", map[string]string{"outcome": "charged"}, 1},
		{"carpool_request_duration_seconds", map[string]string{"service": "payment", "operation": "charge", "code": "201", "outcome": "ok"}, 1},
	} {
		if got := f.metric(t, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestCircuitSkipsAFailingProviderUntilItsCooldownEnds(t *testing.T) {
	f := newFixture(t, true, false)
	ctx := context.Background()
	for i := range 3 {
		if _, err := f.svc.Charge(ctx, req("r", fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.metric(t, "carpool_payment_provider_circuit_open", map[string]string{"provider": "a"}); got != 1 {
		t.Fatalf("circuit gauge of a = %v after 3 failures, want 1", got)
	}
	calls := f.ps[0].calls.Load()
	r, err := f.svc.Charge(ctx, req("r", "k3"))
	if err != nil || r.Attempts != 1 || r.Provider != "b" {
		t.Fatalf("%+v %v: want b at the first attempt, a skipped", r, err)
	}
	if f.ps[0].calls.Load() != calls {
		t.Fatal("an open circuit still called its provider")
	}
	if got := f.metric(t, "carpool_payment_attempts_total", map[string]string{"provider": "a", "outcome": "circuit_open"}); got != 1 {
		t.Fatalf("circuit_open attempts = %v", got)
	}
	// After the cooldown one trial goes to a; it is healthy again.
	f.clock.Add(31 * time.Second)
	f.ps[0].fail.Store(false)
	r, err = f.svc.Charge(ctx, req("r", "k4"))
	if err != nil || r.Provider != "a" {
		t.Fatalf("%+v %v: want the trial on a to succeed", r, err)
	}
	if got := f.metric(t, "carpool_payment_provider_circuit_open", map[string]string{"provider": "a"}); got != 0 {
		t.Fatalf("circuit gauge of a = %v after a good trial, want 0", got)
	}
}

func TestEveryProviderFailing(t *testing.T) {
	f := newFixture(t, true, true)
	ctx := context.Background()
	_, err := f.svc.Charge(ctx, req("1", "k"))
	if !errors.Is(err, ErrPaymentFailed) || !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("got %v, want ErrPaymentFailed wrapping the providers' errors", err)
	}
	if statusOf(err, 201) != 502 {
		t.Fatalf("status %d", statusOf(err, 201))
	}
	// Nothing was charged, so a retry with the same key tries again.
	f.ps[1].fail.Store(false)
	r, err := f.svc.Charge(ctx, req("1", "k"))
	if err != nil || r.Provider != "b" {
		t.Fatalf("retry: %+v %v", r, err)
	}
	if f.metric(t, "carpool_payment_charges_total", map[string]string{"outcome": "failed"}) != 1 {
		t.Fatal("the failed charge was not counted")
	}
}

func TestIdempotencyUnderConcurrency(t *testing.T) {
	f := newFixture(t, false)
	release := f.ps[0].gated()
	const n = 50
	receipts := make([]Receipt, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { receipts[i], errs[i] = f.svc.Charge(context.Background(), req("7", "same-key")) })
	}
	<-f.ps[0].entered // the one charge reached the provider
	release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil || receipts[i].ID != receipts[0].ID || receipts[i].ID == "" {
			t.Fatalf("caller %d: %+v %v; want the one receipt %s", i, receipts[i], errs[i], receipts[0].ID)
		}
	}
	if c := f.ps[0].calls.Load(); c != 1 {
		t.Fatalf("the provider was called %d times for one key", c)
	}
	if c, _ := f.ledger(0); c != 1 {
		t.Fatalf("charged %d times", c)
	}
	if got := f.metric(t, "carpool_payment_charges_total", map[string]string{"outcome": "replayed"}); got != n-1 {
		t.Fatalf("replayed = %v, want %d", got, n-1)
	}
	// A later retry replays too.
	r, err := f.svc.Charge(context.Background(), req("7", "same-key"))
	if err != nil || r.ID != receipts[0].ID || f.ps[0].calls.Load() != 1 {
		t.Fatalf("later retry: %+v %v", r, err)
	}
}

func TestAKeyReusedForAnotherChargeIsRefused(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	if _, err := f.svc.Charge(ctx, req("1", "k")); err != nil {
		t.Fatal(err)
	}
	other := req("1", "k")
	other.Amount++
	if _, err := f.svc.Charge(ctx, other); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("got %v", err)
	}
	if c, _ := f.ledger(0); c != 1 {
		t.Fatalf("charged %d times", c)
	}
}

func TestAChargeOutlivesItsCaller(t *testing.T) {
	f := newFixture(t, false)
	release := f.ps[0].gated()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := f.svc.Charge(ctx, req("1", "k"))
		done <- err
	}()
	<-f.ps[0].entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	release()
	r, err := f.svc.Charge(context.Background(), req("1", "k"))
	if err != nil || r.Status != StatusCharged {
		t.Fatalf("retry: %+v %v", r, err)
	}
	if c, _ := f.ledger(0); c != 1 || f.ps[0].calls.Load() != 1 {
		t.Fatalf("charged %d times in %d calls", c, f.ps[0].calls.Load())
	}
}

func TestRefundIsIdempotent(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	r, err := f.svc.Charge(ctx, req("1", "k"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	out := make([]Receipt, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i], errs[i] = f.svc.Refund(ctx, RefundRequest{PaymentID: r.ID, Reason: "ride cancelled"}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || out[i].Status != StatusRefunded || out[i].ID != r.ID || out[i].RefundedAt == nil {
			t.Fatalf("refund %d: %+v %v", i, out[i], errs[i])
		}
	}
	if _, refunds := f.ledger(0); refunds != 1 {
		t.Fatalf("refunded %d times", refunds)
	}
	if f.metric(t, "carpool_payment_refunds_total", map[string]string{"outcome": "refunded"}) != 1 ||
		f.metric(t, "carpool_payment_refunds_total", map[string]string{"outcome": "replayed"}) != n-1 {
		t.Fatal("refund outcomes miscounted")
	}
	// The charge's key now replays the refunded receipt, and charges nothing.
	again, err := f.svc.Charge(ctx, req("1", "k"))
	if err != nil || again.Status != StatusRefunded {
		t.Fatalf("charge after refund: %+v %v", again, err)
	}
	if c, _ := f.ledger(0); c != 1 {
		t.Fatalf("charged %d times", c)
	}
	if _, err := f.svc.Refund(ctx, RefundRequest{PaymentID: "pay_nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown payment: %v", err)
	}
	if _, err := f.svc.Refund(ctx, RefundRequest{}); err == nil {
		t.Fatal("a refund naming nothing was accepted")
	}
}

func TestRefundByKey(t *testing.T) {
	tests := map[string]struct {
		charge     bool // charge before the refund
		inFlight   bool // the charge is still at the provider when the refund comes
		wantStatus Status
		wantCharge int
	}{
		"A refund by key of a finished charge refunds it.":               {true, false, StatusRefunded, 1},
		"A refund by key waits for a charge in flight, then refunds it.": {true, true, StatusRefunded, 1},
		"A refund by key before any charge voids the key.":               {false, false, StatusVoided, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, false)
			ctx := context.Background()
			charged := make(chan error, 1)
			if tc.charge {
				var release func()
				if tc.inFlight {
					release = f.ps[0].gated()
				}
				go func() { _, err := f.svc.Charge(ctx, req("1", "k")); charged <- err }()
				if tc.inFlight {
					<-f.ps[0].entered
					// A refund that must stop waiting reports that, rather
					// than voiding a key whose charge may still succeed.
					cancelled, cancel := context.WithCancel(ctx)
					cancel()
					if _, err := f.svc.Refund(cancelled, RefundRequest{ChargeKey: "k"}); !errors.Is(err, context.Canceled) {
						t.Fatalf("a refund of a charge in flight, given up: %v", err)
					}
					go release()
				} else if err := <-charged; err != nil {
					t.Fatal(err)
				}
			}
			r, err := f.svc.Refund(ctx, RefundRequest{ChargeKey: "k", Reason: "payment timed out"})
			if err != nil || r.Status != tc.wantStatus {
				t.Fatalf("refund: %+v %v, want %s", r, err, tc.wantStatus)
			}
			if c, refunds := f.ledger(0); c != tc.wantCharge || refunds != tc.wantCharge {
				t.Fatalf("ledger: %d charges, %d refunds", c, refunds)
			}
			// Whatever happened, a late retry of the charge takes no money.
			_, err = f.svc.Charge(ctx, req("1", "k"))
			if tc.wantStatus == StatusVoided && !errors.Is(err, ErrKeyVoided) {
				t.Fatalf("late charge on a voided key: %v", err)
			}
			if c, _ := f.ledger(0); c != tc.wantCharge {
				t.Fatalf("a late retry charged: %d charges", c)
			}
		})
	}
}

func TestCompensateRide(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	for _, k := range []string{"k1", "k2"} {
		if _, err := f.svc.Charge(ctx, req("ride-9", k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Charge(ctx, req("ride-10", "other")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		rs, err := f.svc.CompensateRide(ctx, "ride-9", "ride failed")
		if err != nil || len(rs) != 2 || rs[0].Status != StatusRefunded || rs[1].Status != StatusRefunded {
			t.Fatalf("compensation: %+v %v", rs, err)
		}
	}
	if c, refunds := f.ledger(0); c != 3 || refunds != 2 {
		t.Fatalf("ledger: %d charges, %d refunds; want 3 and 2", c, refunds)
	}
	if _, err := f.svc.Charge(ctx, req("ride-9", "k3")); !errors.Is(err, ErrRideCompensated) {
		t.Fatalf("a new charge for a compensated ride: %v", err)
	}
	if rs, err := f.svc.CompensateRide(ctx, "never-charged", "cancelled"); err != nil || len(rs) != 0 {
		t.Fatalf("compensating a ride without charges: %v %v", rs, err)
	}
	if _, err := f.svc.Charge(ctx, req("never-charged", "k4")); !errors.Is(err, ErrRideCompensated) {
		t.Fatalf("a charge after the ride's compensation: %v", err)
	}
}

func TestFaultInjection(t *testing.T) {
	tests := map[string]struct {
		state faults.State
		want  error
	}{
		"An injected error rate of 1 fails every charge.":     {faults.State{Services: map[string]faults.ServiceFaults{"payment": {ErrorRate: 1}}}, faults.ErrInjected},
		"The wildcard service's faults apply to payment too.": {faults.State{Services: map[string]faults.ServiceFaults{"*": {ErrorRate: 1}}}, faults.ErrInjected},
		"A down region refuses charges.":                      {faults.State{Down: true}, faults.ErrRegionDown},
		"Another service's faults leave payment alone.":       {faults.State{Services: map[string]faults.ServiceFaults{"order": {ErrorRate: 1}}}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, false)
			if err := f.in.Set(tc.state); err != nil {
				t.Fatal(err)
			}
			_, err := f.svc.Charge(context.Background(), req("1", "k"))
			if !errors.Is(err, tc.want) && (tc.want != nil || err != nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			wantCharges := 0
			if tc.want == nil {
				wantCharges = 1
			}
			if c, _ := f.ledger(0); c != wantCharges {
				t.Fatalf("charged %d times", c)
			}
			if tc.want != nil {
				if got := f.metric(t, "carpool_request_duration_seconds", map[string]string{"code": "503", "outcome": "error"}); got != 1 {
					t.Fatalf("the injected failure was observed %v times as a 503", got)
				}
				f.in.Clear()
				if _, err := f.svc.Charge(context.Background(), req("1", "k")); err != nil {
					t.Fatalf("after clearing: %v", err)
				}
			}
		})
	}
}

func TestRetentionForgetsOldPayments(t *testing.T) {
	f := newFixture(t, false)
	f.svc.cfg.Retention = time.Hour
	f.svc.cfg.MaxPayments = 2
	ctx := context.Background()
	first, err := f.svc.Charge(ctx, req("1", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CompensateRide(ctx, "gone", "x"); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(2 * time.Hour)
	second, err := f.svc.Charge(ctx, req("2", "k2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Get(first.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a payment past retention: %v", err)
	}
	if _, err := f.svc.Charge(ctx, req("gone", "k9")); err != nil {
		t.Fatalf("the compensation mark outlived retention: %v", err)
	}
	// k9 and k3 push k2 beyond MaxPayments.
	if _, err := f.svc.Charge(ctx, req("3", "k3")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Charge(ctx, req("4", "k4")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Get(second.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a payment beyond MaxPayments: %v", err)
	}
	f.svc.mu.Lock()
	defer f.svc.mu.Unlock()
	if len(f.svc.byKey) > 3 || len(f.svc.order) > 3 || len(f.svc.byRide) > 3 {
		t.Fatalf("indexes grew: %d keys, %d in order, %d rides", len(f.svc.byKey), len(f.svc.order), len(f.svc.byRide))
	}
}

func TestChargeRequestValidation(t *testing.T) {
	long := string(make([]byte, 256))
	tests := map[string]struct {
		mut   func(*ChargeRequest)
		field string
	}{
		"A charge without a ride id names ride_id.":     {func(r *ChargeRequest) { r.RideID = "" }, "ride_id"},
		"A charge without a rider names rider_id.":      {func(r *ChargeRequest) { r.RiderID = "" }, "rider_id"},
		"A charge without a key names idempotency_key.": {func(r *ChargeRequest) { r.IdempotencyKey = "" }, "idempotency_key"},
		"A key with a space names idempotency_key.":     {func(r *ChargeRequest) { r.IdempotencyKey = "a b" }, "idempotency_key"},
		"An overlong ride id names ride_id.":            {func(r *ChargeRequest) { r.RideID = long }, "ride_id"},
		"A zero amount names amount.":                   {func(r *ChargeRequest) { r.Amount = 0 }, "amount"},
		"A negative amount names amount.":               {func(r *ChargeRequest) { r.Amount = -5 }, "amount"},
		"An amount over the maximum names amount.":      {func(r *ChargeRequest) { r.Amount = MaxAmount + 1 }, "amount"},
		"A lower-case currency names currency.":         {func(r *ChargeRequest) { r.Currency = "cny" }, "currency"},
		"A currency of four letters names currency.":    {func(r *ChargeRequest) { r.Currency = "CNYY" }, "currency"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, false)
			r := req("1", "k")
			tc.mut(&r)
			_, err := f.svc.Charge(context.Background(), r)
			var verr *ValidationError
			if !errors.As(err, &verr) || verr.Field != tc.field {
				t.Fatalf("got %v, want a validation error on %s", err, tc.field)
			}
			if f.ps[0].calls.Load() != 0 {
				t.Fatal("a bad request reached the provider")
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	tests := map[string]Config{
		"An empty provider list is refused.":                     {Providers: []ProviderConfig{}},
		"A provider without a name is refused.":                  {Providers: []ProviderConfig{{}}},
		"A provider listed twice is refused.":                    {Providers: []ProviderConfig{{Name: "x"}, {Name: "x"}}},
		"A failure rate above 1 is refused.":                     {Providers: []ProviderConfig{{Name: "x", FailureRate: 1.5}}},
		"A negative latency is refused.":                         {Providers: []ProviderConfig{{Name: "x", Latency: -1}}},
		"A provider slower than the attempt timeout is refused.": {Providers: []ProviderConfig{{Name: "x", Latency: time.Second}}, AttemptTimeout: time.Second},
		"A circuit that opens after no failure is refused.":      {CircuitFailures: -1},
		"Refunds need at least one attempt.":                     {RefundAttempts: -1},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg, nil, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	s, err := New(Config{Region: "sh-a"}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.providers) != 2 || s.providers[0].Name() != "alipay-sim" || s.providers[1].Name() != "card-sim" {
		t.Fatalf("default providers: %v", s.providers)
	}
}

func TestTwoServicesShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := New(Config{Region: "sh-a"}, reg, nil); err != nil {
			t.Fatal(err)
		}
	}
}
