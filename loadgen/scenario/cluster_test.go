package scenario_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/loadgen/scenario"
	"github.com/carpoolsla/carpoolsla/services/location"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/services/region/regiontest"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func startCluster(t *testing.T) *region.Cluster {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return regiontest.Start(t, region.ClusterConfig{Spec: s, AdminToken: "t"})
}

func run(t *testing.T, mix string, sched loadgen.Schedule, o scenario.Options) *loadgen.Summary {
	t.Helper()
	m, err := loadgen.ParseMix(mix)
	if err != nil {
		t.Fatal(err)
	}
	ws, closeFn, err := scenario.Build(m, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := closeFn(); err != nil {
			t.Error(err)
		}
	}()
	ex, err := loadgen.New(loadgen.Config{Schedule: sched, Scenarios: ws, Workers: 20, MaxWorkers: 200, Timeout: 5 * time.Second, RunID: o.RunID})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ex.Summary()
}

func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestScenariosAgainstThreeRegions runs every carpool scenario against
// three real regions in one process (services/region): drivers stream their
// positions over WebSocket into each region's location service until every
// dispatch index holds them; rides then go through sh-a's gateway, are
// matched, started, completed and paid; quotes come from each region's
// pricing over gRPC. The counts the services report agree with the load
// generator's.
func TestScenariosAgainstThreeRegions(t *testing.T) {
	c := startCluster(t)
	center := scenario.LatLng{Lat: 31.2304, Lng: 121.4737}
	// Enough drivers that the claims a ride leaves behind do not run a region
	// out: a ride matched in one region and completed (through the gateway)
	// in another releases its driver in the completing region's index only.
	const drivers = 40
	for _, name := range c.Names() {
		ws := "ws" + strings.TrimPrefix(c.Regions[name].URLs()[region.Entry], "http") + location.Route
		s := run(t, "drivers", loadgen.Constant(160, 500*time.Millisecond), scenario.Options{LocationURL: ws, Drivers: drivers,
			Center: center, Spread: 0.002, RunID: "drv-" + name})
		if s.Errors != 0 || s.Iterations != 80 {
			t.Fatalf("drivers into %s: %d iterations, errors %v", name, s.Iterations, s.ErrorsByKind)
		}
		ops := s.Scenarios["drivers"].Operations
		if ops[scenario.OpWSConnect].Requests != drivers || ops[scenario.OpSendPosition].Requests != 80 {
			t.Errorf("drivers into %s: %d connects, %d positions; want %d and 80", name, ops[scenario.OpWSConnect].Requests,
				ops[scenario.OpSendPosition].Requests, drivers)
		}
		idx := c.Regions[name].Location.Index()
		realserver.WaitFor(t, 10*time.Second, "drivers in "+name+"'s index", func() (bool, error) {
			return idx.Len() >= drivers, fmt.Errorf("%d drivers", idx.Len())
		})
	}

	created := 0.0
	for _, name := range c.Names() {
		created += counterSum(t, c.Regions[name].Registries[region.Order], catalog.OrdersCreated.Name)
	}
	gw := c.Regions["sh-a"].URLs()[region.Gateway]
	s := run(t, "ride", loadgen.Constant(10, 2*time.Second), scenario.Options{Target: gw, Center: center, Spread: 0.002, RunID: "ride"})
	ride := s.Scenarios["ride"]
	t.Logf("ride: %d iterations, events %v, errors %v, p99 %.1fms", ride.Iterations, ride.Events, ride.ErrorsByKind, ride.LatencyMS.P99)
	for op, o := range ride.Operations {
		if o.Errors > 0 {
			t.Logf("%s: %d errors %v", op, o.Errors, o.ErrorsByKind)
		}
	}
	if s.Iterations != 20 || s.Dropped != 0 || s.Errors != 0 {
		t.Fatalf("ride: %d iterations, %d dropped, errors %v; want 20, 0, none", s.Iterations, s.Dropped, s.ErrorsByKind)
	}
	ev := ride.Events
	if paid := ev[scenario.EventRidePaid]; paid < 16 || paid+ev[scenario.EventRidePaymentFailed]+ev[scenario.EventRideUnmatched]+ev[scenario.EventRideOtherState] != 20 {
		t.Errorf("%d of 20 rides were paid (events %v); want at least 16, and every ride accounted for", paid, ev)
	}
	if got := ride.Operations[scenario.OpCreateRide].Requests; got != 20 {
		t.Errorf("%d create_ride requests, want 20", got)
	}
	completed := ride.Operations[scenario.OpCompleteRide].Requests
	if completed != ride.Events[scenario.EventRidePaid]+ride.Events[scenario.EventRidePaymentFailed] {
		t.Errorf("%d completions but events %v", completed, ride.Events)
	}
	after := 0.0
	for _, name := range c.Names() {
		after += counterSum(t, c.Regions[name].Registries[region.Order], catalog.OrdersCreated.Name)
	}
	if after-created != 20 {
		t.Errorf("the order services created %v rides; the load generator created 20", after-created)
	}

	var addrs []string
	for _, name := range c.Names() {
		addrs = append(addrs, c.Regions[name].URLs()[region.Pricing])
	}
	q := run(t, "quote", loadgen.Constant(60, 500*time.Millisecond), scenario.Options{PricingAddrs: addrs, Center: center, RunID: "quote"})
	if q.Iterations != 30 || q.Errors != 0 || q.Requests != 30 {
		t.Errorf("quote: %d iterations, %d requests, errors %v", q.Iterations, q.Requests, q.ErrorsByKind)
	}
}
