package alerts

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// tierPhase is a stretch of the synthetic history: per scrape and region,
// ok and failed requests, and the share of each under the latency bar.
type tierPhase struct {
	until      time.Duration
	ok, failed float64
	fast       float64
}

// TestLongWindowsFromTheTierMatchTheRawCounters runs the shipped spec's long
// recording group through Prometheus' own rule evaluation, once a minute
// over 8 hours of raw request counters scraped every 15 s (a steady start,
// a 2-hour incident, then double traffic with a counter reset in one
// region), and compares what it records for the windows longer than an hour
// (the 30-day attainment, the 6-hour and 3-day burn-rate ratios), which sum
// the recorded 5-minute rates, with the same windows computed from the raw
// counters by increase() and rate(), as the rules did before the tier.
func TestLongWindowsFromTheTierMatchTheRawCounters(t *testing.T) {
	s := shippedSpec(t)
	s.Services = s.Services[:1] // order: an availability and a latency SLO
	svc := s.Services[0]
	set, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	var long []rules.Rule
	for _, g := range set.Groups {
		if g.Name != GroupRecordingLong {
			continue
		}
		for _, r := range g.Rules {
			expr, err := promqlParser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			long = append(long, rules.NewRecordingRule(r.Record, expr, labels.FromMap(r.Labels)))
		}
	}
	if len(long) == 0 {
		t.Fatal("no long recording group")
	}

	const scrape = 15 * time.Second
	phases := []tierPhase{
		{until: 3 * time.Hour, ok: 100, failed: 1, fast: 0.995},
		{until: 5 * time.Hour, ok: 100, failed: 40, fast: 0.6},
		{until: 8 * time.Hour, ok: 200, failed: 0, fast: 0.999},
	}
	end := phases[len(phases)-1].until
	reset := 4 * time.Hour // bj-a's process restarts: its counters start again from 0
	regionFailures := map[string]float64{"sh-a": 1, "bj-a": 2.5}
	st := teststorage.New(t)
	ctx := context.Background()
	app := st.Appender(ctx)
	type key struct{ region, outcome, le string }
	counts := map[key]float64{}
	for ts := time.Duration(0); ts <= end; ts += scrape {
		p := phases[0]
		for _, ph := range phases {
			if ts < ph.until {
				p = ph
				break
			}
		}
		for _, region := range []string{"sh-a", "bj-a"} {
			if region == "bj-a" && ts == reset {
				clear(counts)
			}
			for _, oc := range []struct {
				outcome string
				n       float64
			}{{catalog.OutcomeOK, p.ok}, {catalog.OutcomeError, p.failed * regionFailures[region]}} {
				base := map[string]string{"service": svc.Name, "operation": "create_ride", "region": region, "outcome": oc.outcome}
				for _, b := range []struct {
					name, le string
					n        float64
				}{{reqCount, "", oc.n}, {reqBucket, "0.3", oc.n * p.fast}, {reqBucket, "+Inf", oc.n}} {
					k := key{region, oc.outcome, b.name + b.le}
					counts[k] += b.n
					l := labels.NewBuilder(labels.FromMap(base)).Set(labels.MetricName, b.name)
					if b.le != "" {
						l.Set(catalog.LabelLe, b.le)
					}
					if _, err := app.Append(0, l.Labels(), ts.Milliseconds(), counts[k]); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}

	engine := promqltest.NewTestEngine(t, false, 0, 10_000_000)
	opts := &rules.ManagerOptions{AppendableV2: st, Queryable: st, QueryFunc: rules.EngineQueryFunc(engine, st), Context: ctx}
	rules.NewManager(opts) // fills in the defaults the group needs
	g := rules.NewGroup(rules.GroupOptions{Name: GroupRecordingLong, Interval: LongInterval, Rules: long, Opts: opts})

	query := func(expr string, at time.Duration) map[string]float64 {
		t.Helper()
		q, err := engine.NewInstantQuery(ctx, st, nil, expr, time.UnixMilli(at.Milliseconds()))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		defer q.Close()
		res := q.Exec(ctx)
		vec, err := res.Vector()
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		out := map[string]float64{}
		for _, smp := range vec {
			out[smp.Metric.Get(catalog.LabelRegion)] = smp.F
		}
		return out
	}
	checks := []time.Duration{2 * time.Hour, 4*time.Hour + 30*time.Minute, 6 * time.Hour, end}
	next := 0
	compared := 0
	worst := 0.0
	for ts := time.Duration(0); ts <= end && next < len(checks); ts += LongInterval {
		g.Eval(ctx, time.UnixMilli(ts.Milliseconds()))
		if ts != checks[next] {
			continue
		}
		next++
		for _, slo := range svc.SLOs {
			for _, c := range []struct {
				name, recorded, raw string
			}{
				{"attainment over " + string(win(time.Duration(slo.Window))),
					fmt.Sprintf("%s{service=%q,slo=%q}", catalog.SLOAttainment.Name, svc.Name, slo.Name),
					"1 - (" + badRatio(svc, slo, "increase", win(time.Duration(slo.Window)), byRegion) + ")"},
				{"error ratio over 6h",
					fmt.Sprintf("%s{service=%q,slo=%q}", catalog.SLIErrorRatioName("6h"), svc.Name, slo.Name),
					badRatio(svc, slo, "rate", "6h", byRegion)},
				{"error ratio over 3d",
					fmt.Sprintf("%s{service=%q,slo=%q}", catalog.SLIErrorRatioName("3d"), svc.Name, slo.Name),
					badRatio(svc, slo, "rate", "3d", byRegion)},
			} {
				got, want := query(c.recorded, ts), query(c.raw, ts)
				want["global"] = rawGlobal(t, query, svc, slo, c.name, ts)
				for region, w := range want {
					gv, ok := got[region]
					if !ok {
						t.Errorf("at %v: %s/%s %s: nothing recorded for %s", ts, svc.Name, slo.Name, c.name, region)
						continue
					}
					compared++
					// The tier starts a window up to its 5 minutes early and
					// does not extrapolate to the window's edges as
					// increase() does; both move a ratio by a few thousandths.
					d := math.Abs(gv - w)
					worst = max(worst, d)
					if d > 0.002+0.02*math.Min(w, 1-w) {
						t.Errorf("at %v: %s/%s %s in %s: tier %.6f, raw counters %.6f (off by %.6f)", ts, svc.Name, slo.Name, c.name, region, gv, w, d)
					}
				}
			}
		}
	}
	t.Logf("%d values compared; the largest difference from the raw counters is %.6f", compared, worst)
	if compared < len(checks)*len(svc.SLOs)*3*3 {
		t.Errorf("compared %d values, want %d", compared, len(checks)*len(svc.SLOs)*3*3)
	}
}

// rawGlobal is the raw counters' value of a check for all regions together.
func rawGlobal(t *testing.T, query func(string, time.Duration) map[string]float64, svc spec.Service, slo spec.SLO, check string, at time.Duration) float64 {
	t.Helper()
	var expr string
	switch check {
	case "error ratio over 6h":
		expr = badRatio(svc, slo, "rate", "6h", "")
	case "error ratio over 3d":
		expr = badRatio(svc, slo, "rate", "3d", "")
	default:
		expr = "1 - (" + badRatio(svc, slo, "increase", win(time.Duration(slo.Window)), "") + ")"
	}
	v := query(expr, at)
	if len(v) != 1 {
		t.Fatalf("%s: %d series, want 1", expr, len(v))
	}
	for _, f := range v {
		return f
	}
	return math.NaN()
}
