package signals

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// queryFunc is a source.Querier made of a function.
type queryFunc func(ctx context.Context, expr string, at time.Time) (source.Vector, error)

func (f queryFunc) Query(ctx context.Context, expr string, at time.Time) (source.Vector, error) {
	return f(ctx, expr, at)
}

// byExpr answers each expression from a table; an expression not in it
// returns an empty vector (every series absent).
func byExpr(m map[string]source.Vector) source.Querier {
	return queryFunc(func(_ context.Context, expr string, _ time.Time) (source.Vector, error) {
		return m[expr], nil
	})
}

func loadSpec(t *testing.T) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sample(v float64, t time.Time, kv ...string) source.Sample {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return source.Sample{Labels: l, Value: v, T: t}
}

func family(t *testing.T, r *Reader, name string) Query {
	t.Helper()
	for _, q := range r.Queries() {
		if q.Family == name {
			return q
		}
	}
	t.Fatalf("no query family %s", name)
	return Query{}
}

func newReader(t *testing.T, cfg Config) *Reader {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEveryFamilyIsMappedOntoItsRegionAndSLO(t *testing.T) {
	s := loadSpec(t)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ts := at.Add(-3 * time.Second)
	probe := newReader(t, Config{Spec: s, Querier: byExpr(nil)})
	expr := func(f string) string { return family(t, probe, f).Expr }
	burn5m, burn1h := FamilyBurnRatePrefix+"5m", FamilyBurnRatePrefix+"1h"
	data := map[string]source.Vector{
		expr(FamilyLatencyP99): {sample(0.42, ts, "region", "sh-b"), sample(0.05, ts, "region", "sh-a")},
		expr(FamilyLatencyP95): {sample(0.031, ts, "region", "sh-a")},
		expr(FamilyTraffic):    {sample(20, ts, "region", "sh-a"), sample(5, ts, "region", "bj-a")},
		expr(FamilyAttainment): {
			sample(0.9995, ts, "__name__", catalog.SLOAttainment.Name, "service", "order", "slo", "availability", "region", "sh-a"),
			sample(0.97, ts, "service", "payment", "slo", "availability", "region", "bj-a"),
		},
		expr(FamilyBudget): {sample(-0.5, ts, "service", "order", "slo", "latency", "region", "sh-b")},
		expr(burn5m):       {sample(0.0144, ts, "service", "order", "slo", "availability", "region", "sh-a")},
		expr(burn1h):       {sample(0.005, ts, "service", "location", "slo", "availability", "region", "sh-b")},
		expr(FamilyHealthPrefix + spec.MeasureSyncLag): {
			sample(1.5, ts, "target_region", "sh-a"), sample(7, ts, "target_region", "bj-a"),
		},
		expr(FamilyHealthPrefix + spec.MeasureAPISuccess):        {sample(99.5, ts, "region", "sh-b")},
		expr(FamilyHealthPrefix + spec.MeasureStreamLag):         {sample(250, ts, "region", "sh-a")},
		expr(FamilyHealthPrefix + spec.MeasureConfigConsistency): {sample(0, ts)},
	}
	got, err := newReader(t, Config{Spec: s, Querier: byExpr(data)}).Read(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	if !got.At.Equal(at) || len(got.Regions) != len(s.Regions) {
		t.Fatalf("signals at %v with %d regions, want %v and %d", got.At, len(got.Regions), at, len(s.Regions))
	}
	for i, reg := range s.Regions {
		if got.Regions[i].Region != reg.Name {
			t.Fatalf("region %d is %s, want %s (spec order)", i, got.Regions[i].Region, reg.Name)
		}
	}
	reg := func(name string) engine.RegionSignals {
		for _, r := range got.Regions {
			if r.Region == name {
				return r
			}
		}
		t.Fatalf("no region %s", name)
		return engine.RegionSignals{}
	}
	slo := func(region, service, name string) engine.SLOSignal {
		for _, x := range reg(region).SLOs {
			if x.Service == service && x.SLO == name {
				return x
			}
		}
		t.Fatalf("no SLO %s/%s in %s", service, name, region)
		return engine.SLOSignal{}
	}
	objective := func(service, name string) float64 {
		for _, svc := range s.Services {
			for _, x := range svc.SLOs {
				if svc.Name == service && x.Name == name {
					return x.Objective
				}
			}
		}
		t.Fatalf("no SLO %s/%s in the spec", service, name)
		return 0
	}
	want := func(what string, m engine.Measured, v float64) {
		t.Helper()
		if !m.OK || math.Abs(m.Value-v) > 1e-9 || !m.At.Equal(ts) {
			t.Errorf("%s = %+v, want %v at the sample's time %v", what, m, v, ts)
		}
	}
	absent := func(what string, m engine.Measured) {
		t.Helper()
		if m.OK || m.Value != 0 {
			t.Errorf("%s = %+v, want absent", what, m)
		}
	}
	want("sh-b P99", reg("sh-b").LatencyP99, 0.42)
	want("sh-a P99", reg("sh-a").LatencyP99, 0.05)
	absent("bj-a P99", reg("bj-a").LatencyP99)
	want("sh-a P95", reg("sh-a").LatencyP95, 0.031)
	absent("sh-b P95", reg("sh-b").LatencyP95)
	want("sh-a traffic", reg("sh-a").Traffic, 20)
	want("bj-a traffic", reg("bj-a").Traffic, 5)
	absent("sh-b traffic", reg("sh-b").Traffic)
	want("sh-a order availability attainment", slo("sh-a", "order", "availability").Attainment, 0.9995)
	want("bj-a payment availability attainment", slo("bj-a", "payment", "availability").Attainment, 0.97)
	absent("sh-b order availability attainment", slo("sh-b", "order", "availability").Attainment)
	want("sh-b order latency budget", slo("sh-b", "order", "latency").BudgetRemaining, -0.5)
	want("sh-a order availability 5m burn", slo("sh-a", "order", "availability").BurnRates["5m"], 0.0144/((100-objective("order", "availability"))/100))
	want("sh-b location availability 1h burn", slo("sh-b", "location", "availability").BurnRates["1h"], 0.005/((100-objective("location", "availability"))/100))
	absent("sh-a order availability 1h burn", slo("sh-a", "order", "availability").BurnRates["1h"])
	for _, w := range s.AlertWindows() {
		if _, ok := slo("bj-a", "dispatch", "latency").BurnRates[spec.Duration(w).String()]; !ok {
			t.Errorf("burn-rate window %s is not in BurnRates", spec.Duration(w))
		}
	}
	want("sh-a sync lag", reg("sh-a").Components[spec.MeasureSyncLag], 1.5)
	want("bj-a sync lag", reg("bj-a").Components[spec.MeasureSyncLag], 7)
	absent("sh-b sync lag", reg("sh-b").Components[spec.MeasureSyncLag])
	want("sh-b API success", reg("sh-b").Components[spec.MeasureAPISuccess], 99.5)
	want("sh-a stream lag", reg("sh-a").Components[spec.MeasureStreamLag], 250)
	for _, r := range s.Regions {
		want(r.Name+" config consistency (one global value)", reg(r.Name).Components[spec.MeasureConfigConsistency], 0)
		var order []string
		for _, svc := range s.Services {
			for _, x := range svc.SLOs {
				order = append(order, svc.Name+"/"+x.Name)
			}
		}
		var gotOrder []string
		for _, x := range reg(r.Name).SLOs {
			gotOrder = append(gotOrder, x.Service+"/"+x.SLO)
		}
		if strings.Join(gotOrder, " ") != strings.Join(order, " ") {
			t.Errorf("%s has SLO signals %v, want the spec's in spec order %v", r.Name, gotOrder, order)
		}
	}
}

func TestAbsentAndNaNSamplesAreNotZero(t *testing.T) {
	s := loadSpec(t)
	at := time.Unix(1_800_000_000, 0)
	probe := newReader(t, Config{Spec: s, Querier: byExpr(nil)})
	data := map[string]source.Vector{
		// histogram_quantile of a region without requests is NaN; a ratio of no events too.
		family(t, probe, FamilyLatencyP99).Expr: {sample(math.NaN(), at, "region", "sh-a"), sample(math.Inf(1), at, "region", "sh-b")},
		family(t, probe, FamilyAttainment).Expr: {sample(math.NaN(), at, "service", "order", "slo", "availability", "region", "sh-a")},
	}
	got, err := newReader(t, Config{Spec: s, Querier: byExpr(data)}).Read(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got.Regions {
		if r.LatencyP99.OK || r.LatencyP95.OK || r.Traffic.OK {
			t.Errorf("%s: NaN, +Inf or absent latency read as present: %+v %+v %+v", r.Region, r.LatencyP99, r.LatencyP95, r.Traffic)
		}
		for m, v := range r.Components {
			if v.OK {
				t.Errorf("%s: absent %s read as %+v", r.Region, m, v)
			}
		}
		for _, x := range r.SLOs {
			if x.Attainment.OK || x.BudgetRemaining.OK {
				t.Errorf("%s %s/%s: absent attainment read as present", r.Region, x.Service, x.SLO)
			}
			for w, b := range x.BurnRates {
				if b.OK {
					t.Errorf("%s %s/%s: absent %s burn rate read as present", r.Region, x.Service, x.SLO, w)
				}
			}
		}
	}
}

func TestSamplesOfUnknownRegionsAndTheGlobalRegionAreIgnored(t *testing.T) {
	s := loadSpec(t)
	at := time.Unix(1_800_000_000, 0)
	probe := newReader(t, Config{Spec: s, Querier: byExpr(nil)})
	data := map[string]source.Vector{
		family(t, probe, FamilyLatencyP99).Expr: {sample(9, at, "region", "mars-a"), sample(9, at)},
		family(t, probe, FamilyAttainment).Expr: {
			sample(0.5, at, "service", "order", "slo", "availability", "region", catalog.GlobalRegion),
			sample(0.5, at, "service", "order", "slo", "nope", "region", "sh-a"),
			sample(0.5, at, "service", "nope", "slo", "availability", "region", "sh-a"),
		},
	}
	got, err := newReader(t, Config{Spec: s, Querier: byExpr(data)}).Read(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got.Regions {
		if r.LatencyP99.OK {
			t.Errorf("%s got another region's P99 %+v", r.Region, r.LatencyP99)
		}
		for _, x := range r.SLOs {
			if x.Attainment.OK {
				t.Errorf("%s %s/%s got an attainment of an unknown SLO or of the global region", r.Region, x.Service, x.SLO)
			}
		}
	}
}

func TestQueryErrors(t *testing.T) {
	s := loadSpec(t)
	at := time.Unix(1_800_000_000, 0)
	probe := newReader(t, Config{Spec: s, Querier: byExpr(nil)})
	p99 := family(t, probe, FamilyLatencyP99).Expr
	traffic := family(t, probe, FamilyTraffic).Expr
	boom := errors.New("connection refused")

	tests := map[string]struct {
		fail       func(expr string) bool
		wantErr    bool
		wantCount  map[string]float64
		wantP99OK  bool
		wantLoadOK bool
	}{
		"A failed family is absent and counted while the others are read.": {
			fail:      func(e string) bool { return e == traffic },
			wantCount: map[string]float64{FamilyTraffic: 1, FamilyLatencyP99: 0},
			wantP99OK: true,
		},
		"Every query failing fails the read, and every family is counted.": {
			fail:      func(string) bool { return true },
			wantErr:   true,
			wantCount: map[string]float64{FamilyTraffic: 1, FamilyLatencyP99: 1, FamilyAttainment: 1},
		},
		"No failure counts nothing.": {
			fail:       func(string) bool { return false },
			wantCount:  map[string]float64{FamilyTraffic: 0, FamilyLatencyP99: 0},
			wantP99OK:  true,
			wantLoadOK: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			q := queryFunc(func(_ context.Context, expr string, _ time.Time) (source.Vector, error) {
				if tc.fail(expr) {
					return nil, boom
				}
				switch expr {
				case p99, traffic:
					return source.Vector{sample(1, at, "region", "sh-a")}, nil
				}
				return nil, nil
			})
			r := newReader(t, Config{Spec: s, Querier: q, Registerer: reg})
			got, err := r.Read(context.Background(), at)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, boom) {
				t.Errorf("the read's error %v does not wrap the query's", err)
			}
			for fam, n := range tc.wantCount {
				c, err := r.errors.GetMetricWithLabelValues(fam)
				if err != nil {
					t.Fatal(err)
				}
				if v := testutil.ToFloat64(c); v != n {
					t.Errorf("%s{family=%q} = %v, want %v", catalog.EngineQueryErrors.Name, fam, v, n)
				}
			}
			if tc.wantErr {
				return
			}
			if got.Regions[0].LatencyP99.OK != tc.wantP99OK || got.Regions[0].Traffic.OK != tc.wantLoadOK {
				t.Errorf("sh-a P99 %+v traffic %+v; want P99 present %v, traffic present %v", got.Regions[0].LatencyP99, got.Regions[0].Traffic, tc.wantP99OK, tc.wantLoadOK)
			}
			if n, err := testutil.GatherAndCount(reg, catalog.EngineQueryErrors.Name, catalog.EngineReadDuration.Name); err != nil || n != len(r.Queries())+1 {
				t.Errorf("registry holds %d series of the reader's metrics (%v), want one per family plus the read duration (%d)", n, err, len(r.Queries())+1)
			}
		})
	}
}

func TestAQueryThatOutlivesItsTimeoutFailsAlone(t *testing.T) {
	s := loadSpec(t)
	probe := newReader(t, Config{Spec: s, Querier: byExpr(nil)})
	slow := family(t, probe, FamilyAttainment).Expr
	q := queryFunc(func(ctx context.Context, expr string, at time.Time) (source.Vector, error) {
		if expr != slow {
			return source.Vector{sample(0.1, at, "region", "sh-a")}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return nil, errors.New("the query's context had no deadline")
		}
	})
	r := newReader(t, Config{Spec: s, Querier: q, QueryTimeout: 20 * time.Millisecond})
	start := time.Now()
	got, err := r.Read(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the read took %s; the slow query was not cut at its timeout", d)
	}
	if !got.Regions[0].LatencyP99.OK {
		t.Error("the fast families were lost with the slow one")
	}
	c, _ := r.errors.GetMetricWithLabelValues(FamilyAttainment)
	if testutil.ToFloat64(c) != 1 {
		t.Error("the timed-out family was not counted")
	}
}

func TestQueriesRunConcurrentlyUpToTheBound(t *testing.T) {
	s := loadSpec(t)
	const limit = 3
	var inFlight, peak atomic.Int32
	all := make(chan struct{})
	var once sync.Once
	q := queryFunc(func(ctx context.Context, _ string, _ time.Time) (source.Vector, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == limit {
			once.Do(func() { close(all) })
		}
		select {
		case <-all: // the bound was reached once: let everything run
		case <-ctx.Done():
		}
		return nil, nil
	})
	r := newReader(t, Config{Spec: s, Querier: q, Concurrency: limit, QueryTimeout: 5 * time.Second})
	if len(r.Queries()) <= limit {
		t.Fatalf("only %d queries; the test needs more than %d", len(r.Queries()), limit)
	}
	if _, err := r.Read(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	default:
		t.Fatalf("never %d queries in flight at once (peak %d)", limit, peak.Load())
	}
	if p := peak.Load(); p > limit {
		t.Errorf("%d queries in flight, above the bound %d", p, limit)
	}
}

func TestEveryQueryIsValidPromQLAndNamesComeFromTheCatalog(t *testing.T) {
	s := loadSpec(t)
	s.Health.Components = append(s.Health.Components, spec.HealthComponent{Name: "probes", Weight: 0, Measure: spec.MeasureProbeHealthy,
		Curve: spec.Curve{Type: spec.CurveLinear, Good: 1, Bad: 0}})
	qs := Queries(s, 0)
	p := parser.NewParser(parser.Options{})
	families := map[string]bool{}
	for _, q := range qs {
		if families[q.Family] {
			t.Errorf("family %s twice", q.Family)
		}
		families[q.Family] = true
		if _, err := p.ParseExpr(q.Expr); err != nil {
			t.Errorf("%s: %q does not parse: %v", q.Family, q.Expr, err)
		}
	}
	for _, w := range s.AlertWindows() {
		if !families[FamilyBurnRatePrefix+spec.Duration(w).String()] {
			t.Errorf("no burn-rate family for window %s", spec.Duration(w))
		}
	}
	for _, m := range spec.Measures {
		if !families[FamilyHealthPrefix+m] {
			t.Errorf("no family for health measure %s", m)
		}
	}
	names := []string{catalog.SLOAttainment.Name, catalog.SLOErrorBudgetRemaining.Name,
		catalog.SyncLag.Name, catalog.RegionErrorRatio.Name, catalog.StreamLagMessages.Name, catalog.ConfigConsistent.Name,
		catalog.ProbeHealthy.Name, catalog.RequestDuration.Name + "_bucket", catalog.RequestDuration.Name + "_count"}
	var all strings.Builder
	for _, q := range qs {
		all.WriteString(q.Expr + "\n")
	}
	for _, n := range names {
		if !strings.Contains(all.String(), n) {
			t.Errorf("no query reads %s", n)
		}
	}
	for _, q := range Queries(s, 10*time.Second) {
		switch q.Family {
		case FamilyLatencyP99, FamilyLatencyP95:
			if !strings.Contains(q.Expr, `service!="gateway"`) || !strings.Contains(q.Expr, "[10s]") {
				t.Errorf("%s = %s; want the gateways left out and the 10s window", q.Family, q.Expr)
			}
		case FamilyTraffic:
			if !strings.Contains(q.Expr, `service!="gateway"`) || !strings.Contains(q.Expr, "[10s]") {
				t.Errorf("%s = %s; want the gateways left out and the 10s window", q.Family, q.Expr)
			}
		}
	}
}

func TestConfigValidation(t *testing.T) {
	s := loadSpec(t)
	q := byExpr(nil)
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"A reader without a spec says to load one.":        {Config{Querier: q}, "Spec is nil"},
		"A reader without a querier says what to pass.":    {Config{Spec: s}, "Querier is nil"},
		"A negative concurrency names the field.":          {Config{Spec: s, Querier: q, Concurrency: -1}, "Concurrency is -1"},
		"A negative timeout names the field.":              {Config{Spec: s, Querier: q, QueryTimeout: -time.Second}, "QueryTimeout is -1s"},
		"A latency window below a second names the field.": {Config{Spec: s, Querier: q, LatencyWindow: time.Millisecond}, "LatencyWindow is 1ms"},
		"A spec without regions has nothing to read from.": {Config{Spec: &spec.Spec{}, Querier: q}, "no regions"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	r := newReader(t, Config{Spec: s, Querier: q})
	if r.cfg.Concurrency != DefaultConcurrency || r.cfg.QueryTimeout != spec.D(s.Engine.Interval) || r.cfg.LatencyWindow != DefaultLatencyWindow {
		t.Errorf("defaults: concurrency %d timeout %s, want %d and the engine interval %s", r.cfg.Concurrency, r.cfg.QueryTimeout, DefaultConcurrency, s.Engine.Interval)
	}
}
