package pricing

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/pricing/pricingpb"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// startServer builds and runs a pricing server for the test; Region
// defaults to "eu" and a fresh registry is attached when none is given. It
// stops when the test ends, and the test fails if Run does not return nil.
func startServer(t *testing.T, cfg Config) (*Server, *prometheus.Registry) {
	t.Helper()
	if cfg.Region == "" {
		cfg.Region = "eu"
	}
	reg, _ := cfg.Registerer.(*prometheus.Registry)
	if cfg.Registerer == nil {
		reg = prometheus.NewRegistry()
		cfg.Registerer = reg
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return s, reg
}

// bufServer runs a server on an in-memory listener and returns a client.
func bufServer(t *testing.T, cfg Config) (*Server, *prometheus.Registry, pricingpb.PricingClient) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	cfg.Listener = lis
	s, reg := startServer(t, cfg)
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return s, reg, pricingpb.NewPricingClient(cc)
}

func ride(rider string) *pricingpb.QuoteRequest {
	return &pricingpb.QuoteRequest{
		RiderId: rider,
		Pickup:  &pricingpb.LatLng{Lat: 52.5200, Lng: 13.4050}, // Berlin Mitte
		Dropoff: &pricingpb.LatLng{Lat: 52.5070, Lng: 13.3320}, // Zoo
	}
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestQuoteOverGRPC(t *testing.T) {
	clock := newFakeClock()
	s, _, client := bufServer(t, Config{Now: clock.Now})
	s.Tracker().RecordSupply("d1", LatLng{52.5200, 13.4050}, true)

	resp, err := client.Quote(callCtx(t), ride("r1"))
	if err != nil {
		t.Fatal(err)
	}
	// 5.2 km at 1.20/km plus 2.50, no surge.
	if resp.GetDistanceM() < 5100 || resp.GetDistanceM() > 5300 {
		t.Errorf("distance %d m, want about 5.2 km", resp.GetDistanceM())
	}
	wantDistance := (120*resp.GetDistanceM() + 500) / 1000
	if resp.GetDistanceFare().GetMinorUnits() != wantDistance || resp.GetTotal().GetMinorUnits() != 250+wantDistance ||
		resp.GetTotal().GetCurrency() != "EUR" || resp.GetBaseFare().GetMinorUnits() != 250 {
		t.Errorf("money: %v", resp)
	}
	if resp.GetSurgeMilli() != 1000 || resp.GetDemand() != 1 || resp.GetSupply() != 1 || resp.GetCell() != "u33dc0" ||
		resp.GetRegion() != "eu" || resp.GetQuotedAtUnixMs() != clock.Now().UnixMilli() ||
		resp.GetExpiresAtUnixMs() != clock.Now().Add(2*time.Minute).UnixMilli() || resp.GetQuoteId() == "" {
		t.Errorf("quote: %v", resp)
	}
}

func TestQuoteRejectsBadInputNamingTheField(t *testing.T) {
	_, _, client := bufServer(t, Config{})
	tests := map[string]struct {
		req    *pricingpb.QuoteRequest
		fields []string
	}{
		"An empty request names every required field.": {&pricingpb.QuoteRequest{}, []string{"rider_id", "pickup", "dropoff"}},
		"A latitude out of range is named.": {&pricingpb.QuoteRequest{RiderId: "r",
			Pickup: &pricingpb.LatLng{Lat: 95}, Dropoff: &pricingpb.LatLng{}}, []string{"pickup.lat"}},
		"A trip across a continent is refused on the dropoff.": {&pricingpb.QuoteRequest{RiderId: "r",
			Pickup: &pricingpb.LatLng{Lat: 52.52, Lng: 13.4}, Dropoff: &pricingpb.LatLng{Lat: 38.7, Lng: -9.1}}, []string{"dropoff"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := client.Quote(callCtx(t), tc.req)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", st.Code(), err)
			}
			var got []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						got = append(got, v.GetField())
						if !strings.Contains(st.Message(), v.GetField()+": ") {
							t.Errorf("message %q does not name %s", st.Message(), v.GetField())
						}
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("violations %v, want %v", got, tc.fields)
			}
		})
	}
}

func TestFaultsAnswerUnavailable(t *testing.T) {
	var in faults.Injector
	_, reg, client := bufServer(t, Config{Faults: &in})
	tests := map[string]struct {
		state   faults.State
		timeout time.Duration
		want    codes.Code
	}{
		"Without faults the quote succeeds.":                      {faults.State{}, 5 * time.Second, codes.OK},
		"An injected error rate of 1 fails every call.":           {faults.State{Services: map[string]faults.ServiceFaults{"pricing": {ErrorRate: 1}}}, 5 * time.Second, codes.Unavailable},
		"Faults for every service apply to pricing.":              {faults.State{Services: map[string]faults.ServiceFaults{"*": {ErrorRate: 1}}}, 5 * time.Second, codes.Unavailable},
		"Faults of another service do not apply.":                 {faults.State{Services: map[string]faults.ServiceFaults{"payment": {ErrorRate: 1}}}, 5 * time.Second, codes.OK},
		"A region that is down answers unavailable.":              {faults.State{Down: true}, 5 * time.Second, codes.Unavailable},
		"Injected latency beyond the deadline times the call out": {faults.State{Services: map[string]faults.ServiceFaults{"pricing": {Latency: faults.Latency{Fixed: faults.Duration(10 * time.Second)}}}}, 50 * time.Millisecond, codes.DeadlineExceeded},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := in.Set(tc.state); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			_, err := client.Quote(ctx, ride("r1"))
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code %v (%v), want %v", got, err, tc.want)
			}
		})
	}
	in.Clear()
	if n := requestCount(t, reg, "Unavailable", catalog.OutcomeError); n != 3 {
		t.Errorf("Unavailable calls recorded: %d, want 3", n)
	}
}

// requestCount returns the sample count of the pricing quote series of
// carpool_request_duration_seconds with the given code and outcome.
func requestCount(t *testing.T, reg *prometheus.Registry, code, outcome string) uint64 {
	t.Helper()
	want := map[string]string{catalog.LabelRegion: "eu", catalog.LabelService: "pricing", catalog.LabelOperation: "quote",
		catalog.LabelCode: code, catalog.LabelOutcome: outcome}
	for _, m := range findFamily(t, reg, catalog.RequestDuration.Name).GetMetric() {
		if labelsEqual(m, want) {
			return m.GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func findFamily(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("no metric family %s", name)
	return nil
}

func labelsEqual(m *dto.Metric, want map[string]string) bool {
	if len(m.GetLabel()) != len(want) {
		return false
	}
	for _, l := range m.GetLabel() {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}

func TestMetricsInterceptor(t *testing.T) {
	var in faults.Injector
	_, reg, client := bufServer(t, Config{Faults: &in})
	ctx := callCtx(t)
	for range 3 {
		if _, err := client.Quote(ctx, ride("r1")); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = client.Quote(ctx, &pricingpb.QuoteRequest{})
	_ = in.Set(faults.State{Services: map[string]faults.ServiceFaults{"pricing": {ErrorRate: 1}}})
	_, _ = client.Quote(ctx, ride("r1"))
	_, _ = client.Quote(ctx, ride("r1"))

	tests := map[string]struct {
		code, outcome string
		want          uint64
	}{
		"Successful quotes are ok.":                  {"OK", catalog.OutcomeOK, 3},
		"A client's bad request is ok, not an error": {"InvalidArgument", catalog.OutcomeOK, 1},
		"Injected faults are server-side errors.":    {"Unavailable", catalog.OutcomeError, 2},
		"No bad request is counted as an error.":     {"InvalidArgument", catalog.OutcomeError, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := requestCount(t, reg, tc.code, tc.outcome); got != tc.want {
				t.Errorf("count %d, want %d", got, tc.want)
			}
		})
	}
	surge := findFamily(t, reg, catalog.PricingSurge.Name).GetMetric()
	if len(surge) != 1 || surge[0].GetHistogram().GetSampleCount() != 3 {
		t.Errorf("surge histogram: %v", surge)
	}
	conns := findFamily(t, reg, catalog.PricingServerConnections.Name).GetMetric()
	if len(conns) != 1 || conns[0].GetGauge().GetValue() != 1 {
		t.Errorf("server connections: %v", conns)
	}
}

func TestOutcome(t *testing.T) {
	errs := map[codes.Code]bool{codes.Unavailable: true, codes.Internal: true, codes.DeadlineExceeded: true, codes.Unknown: true,
		codes.ResourceExhausted: true, codes.Unimplemented: true, codes.DataLoss: true}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		want := catalog.OutcomeOK
		if errs[c] {
			want = catalog.OutcomeError
		}
		if got := Outcome(c); got != want {
			t.Errorf("Outcome(%v) = %s, want %s", c, got, want)
		}
	}
}

func TestServersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, region := range []string{"eu", "us"} {
		s, err := New(Config{Region: region, Registerer: reg})
		if err != nil {
			t.Fatalf("second server on one registry: %v", err)
		}
		_ = s.lis.Close()
	}
}

func TestNewRejectsABadConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "region") {
		t.Fatalf("got %v", err)
	}
	if _, err := New(Config{Region: "eu", Addr: "127.0.0.1:notaport"}); err == nil {
		t.Fatal("listened on a bad address")
	}
}

func TestRunReturnsAfterCancel(t *testing.T) {
	s, err := New(Config{Region: "eu"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Error("still accepting connections after Run returned")
	}
}
