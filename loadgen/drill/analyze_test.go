package drill

import (
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/gateway"
	"github.com/carpoolsla/carpoolsla/services/ids"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func planFor(t *testing.T, scenario, region string) plan {
	t.Helper()
	r, err := New(Config{Spec: shippedSpec(t), Target: unreachable(), Scenario: scenario, Region: region})
	if err != nil {
		t.Fatal(err)
	}
	return r.plan
}

var healthy = gateway.RegionStatus{Weight: 1, Breaker: gateway.BreakerClosed, ProbeHealthy: true}

// view is one gateway's status with some regions changed from healthy.
func view(changes map[string]gateway.RegionStatus) gateway.Status {
	st := gateway.Status{Regions: map[string]gateway.RegionStatus{"sh-a": healthy, "sh-b": healthy, "bj-a": healthy}}
	for r, rs := range changes {
		st.Regions[r] = rs
	}
	return st
}

func sample(at time.Time, gws map[string]gateway.Status, engine map[string]EngineRegion) controlSample {
	return controlSample{At: at, Gateways: gws, Engine: engine}
}

var all = []string{"sh-a", "sh-b", "bj-a"}

// TestRegionDownPhases feeds the analysis the gateways' statuses of a
// region going down and coming back, with no engine.
func TestRegionDownPhases(t *testing.T) {
	p := planFor(t, spec.ScenarioRegionDown, "sh-a")
	ejected := healthy
	ejected.Ejected = true
	failing := healthy
	failing.ProbeHealthy = false
	ok := view(nil)
	control := []controlSample{
		sample(ms(-100), map[string]gateway.Status{"sh-a": ok, "sh-b": ok, "bj-a": ok}, nil),
		// sh-a's own gateway is down with it: what it says does not count.
		sample(ms(100), map[string]gateway.Status{"sh-a": view(map[string]gateway.RegionStatus{"sh-a": failing}), "sh-b": ok, "bj-a": ok}, nil),
		sample(ms(300), map[string]gateway.Status{"sh-b": view(map[string]gateway.RegionStatus{"sh-a": ejected}), "bj-a": ok}, nil),
		sample(ms(400), map[string]gateway.Status{"sh-b": view(map[string]gateway.RegionStatus{"sh-a": ejected})}, nil), // bj-a unread
		sample(ms(500), map[string]gateway.Status{"sh-b": view(map[string]gateway.RegionStatus{"sh-a": ejected}), "bj-a": view(map[string]gateway.RegionStatus{"sh-a": failing})}, nil),
		sample(ms(2100), map[string]gateway.Status{"sh-a": ok, "sh-b": ok, "bj-a": view(map[string]gateway.RegionStatus{"sh-a": failing})}, nil),
		sample(ms(2200), map[string]gateway.Status{"sh-b": ok, "bj-a": ok}, nil), // sh-a's gateway unread
		sample(ms(2300), map[string]gateway.Status{"sh-a": ok, "sh-b": ok, "bj-a": ok}, nil),
	}
	det := detectMark(p, control, nil, t0)
	if !det.at.Equal(ms(300)) || det.by != "gateway sh-b: sh-a ejected" {
		t.Errorf("detect %v by %q", det.at.Sub(t0), det.by)
	}
	dec := decideMark(p, control, t0)
	if !dec.at.Equal(ms(300)) || !strings.Contains(dec.by, "gateway sh-b took sh-a out") {
		t.Errorf("decide %v by %q", dec.at.Sub(t0), dec.by)
	}
	if sh := shiftMark(p, control, t0, all); !sh.at.Equal(ms(500)) {
		t.Errorf("shift %v, want 500ms (the first sample with every surviving gateway read and routing around sh-a)", sh.at.Sub(t0))
	}
	if b := breakerMark(p, control, t0); b.set {
		t.Error("a breaker opened without an engine")
	}
	if rec := recoveredMark(p, control, ms(2000), all); !rec.at.Equal(ms(2300)) {
		t.Errorf("recovered %v, want 2.3s (every gateway, sh-a's own included, read and healthy)", rec.at.Sub(t0))
	}
	if s, why := steady(control[0], all); !s {
		t.Errorf("the baseline sample is not steady: %s", why)
	}
	if s, why := steady(control[3], all); s || why != "gateway sh-a did not answer" {
		t.Errorf("steady %v: %s", s, why)
	}
}

// TestLatencySpikePhases: the engine decides, and every gateway, the slow
// region's own included, must route around it.
func TestLatencySpikePhases(t *testing.T) {
	p := planFor(t, spec.ScenarioLatencySpike, "sh-b")
	open := healthy
	open.Breaker, open.Weight = gateway.BreakerOpen, 0
	ok := view(nil)
	withOpen := view(map[string]gateway.RegionStatus{"sh-b": open})
	eng := func(b string) map[string]EngineRegion {
		return map[string]EngineRegion{"sh-a": {Breaker: "closed"}, "sh-b": {Breaker: b}, "bj-a": {Breaker: "closed"}}
	}
	slow := eng("closed")
	p99 := 0.52
	slow["sh-b"] = EngineRegion{Breaker: "closed", LatencyP99: &p99}
	control := []controlSample{
		sample(ms(1000), map[string]gateway.Status{"sh-a": ok, "sh-b": ok, "bj-a": ok}, eng("closed")),
		sample(ms(1500), map[string]gateway.Status{"sh-a": ok, "sh-b": ok, "bj-a": ok}, slow),
		sample(ms(2000), map[string]gateway.Status{"sh-a": ok, "sh-b": ok, "bj-a": ok}, eng("open")),
		sample(ms(2200), map[string]gateway.Status{"sh-a": withOpen, "sh-b": ok, "bj-a": withOpen}, eng("open")),
		sample(ms(2400), map[string]gateway.Status{"sh-a": withOpen, "sh-b": withOpen, "bj-a": withOpen}, eng("open")),
		sample(ms(9000), map[string]gateway.Status{"sh-a": ok, "sh-b": ok, "bj-a": ok}, eng("open")),
		sample(ms(9500), map[string]gateway.Status{"sh-a": ok, "sh-b": ok, "bj-a": ok}, eng("recovering")),
	}
	if det := detectMark(p, control, nil, t0); !det.at.Equal(ms(1500)) || det.by != "engine: sh-b P99 0.520s above the trip bar 0.3s" {
		t.Errorf("detect %v by %q", det.at.Sub(t0), det.by)
	}
	if dec := decideMark(p, control, t0); !dec.at.Equal(ms(2000)) || dec.by != "engine opened sh-b's breaker" {
		t.Errorf("decide %v by %q", dec.at.Sub(t0), dec.by)
	}
	if b := breakerMark(p, control, t0); !b.at.Equal(ms(2000)) {
		t.Errorf("breaker open at %v", b.at.Sub(t0))
	}
	if sh := shiftMark(p, control, t0, all); !sh.at.Equal(ms(2400)) {
		t.Errorf("shift %v, want 2.4s (sh-b's own gateway too)", sh.at.Sub(t0))
	}
	if rec := recoveredMark(p, control, ms(8000), all); !rec.at.Equal(ms(9500)) {
		t.Errorf("recovered %v, want 9.5s (the engine's breaker left open)", rec.at.Sub(t0))
	}
}

func TestOutOfRotation(t *testing.T) {
	zero := healthy
	zero.Weight = 0
	cases := map[string]struct {
		st   gateway.Status
		want bool
	}{
		"A healthy region with weight is in rotation.":                   {view(nil), false},
		"Weight 0 while another serving region has weight is out.":       {view(map[string]gateway.RegionStatus{"sh-a": zero}), true},
		"Weight 0 everywhere shares traffic equally: still in rotation.": {view(map[string]gateway.RegionStatus{"sh-a": zero, "sh-b": zero, "bj-a": zero}), false},
		"A recovering breaker takes traffic by weight.":                  {view(map[string]gateway.RegionStatus{"sh-a": {Weight: 1, Breaker: gateway.BreakerRecovering, ProbeHealthy: true}}), false},
		"An open breaker is out whatever the weight.":                    {view(map[string]gateway.RegionStatus{"sh-a": {Weight: 5, Breaker: gateway.BreakerOpen, ProbeHealthy: true}}), true},
		"A region the gateway does not know is not counted as out.":      {gateway.Status{Regions: map[string]gateway.RegionStatus{}}, false},
	}
	for name, c := range cases {
		if got := outOfRotation(c.st, "sh-a"); got != c.want {
			t.Errorf("%s got %v", name, got)
		}
	}
}

// TestStallIsDetectedByLag: only pairs into or out of the stalled region
// count, each against its own RPO.
func TestStallIsDetectedByLag(t *testing.T) {
	p := planFor(t, spec.ScenarioReplicationStall, "sh-b")
	lag := func(at time.Time, v map[pairKey]float64) lagSample {
		return lagSample{At: at, SyncLag: v, Exposure: map[pairKey]float64{}}
	}
	lags := []lagSample{
		lag(ms(-500), map[pairKey]float64{{"sh-a", "sh-b"}: 0.1}),
		lag(ms(1000), map[pairKey]float64{{"sh-a", "sh-b"}: 1.5, {"bj-a", "sh-b"}: 4, {"sh-a", "bj-a"}: 30}),
		lag(ms(2000), map[pairKey]float64{{"sh-a", "sh-b"}: 2.5, {"bj-a", "sh-b"}: 4.9}),
		lag(ms(5000), map[pairKey]float64{{"sh-a", "sh-b"}: 5.5, {"bj-a", "sh-b"}: 5.5}),
		lag(ms(6000), map[pairKey]float64{{"sh-a", "sh-b"}: 1.9, {"bj-a", "sh-b"}: 6}),
		lag(ms(7000), map[pairKey]float64{{"sh-a", "sh-b"}: 0.4, {"bj-a", "sh-b"}: 0.5}),
	}
	det := detectMark(p, nil, lags, t0)
	if !det.at.Equal(ms(2000)) || det.by != "sync lag sh-a→sh-b 2.50s above its RPO 2s" {
		t.Errorf("detect %v by %q", det.at.Sub(t0), det.by)
	}
	if c := caughtUpMark(p, lags, ms(5500)); !c.at.Equal(ms(7000)) {
		t.Errorf("caught up %v, want 7s (bj-a→sh-b was still above its 5s RPO at 6s)", c.at.Sub(t0))
	}
	if v, pair := maxLag(p, lags, t0, ms(5500)); v != 5.5 || pair == "" {
		t.Errorf("max lag %v on %q", v, pair)
	}
	if got := lagAt(p, lags[1]); len(got) != 2 || *got["bj-a→sh-b"].SyncLagSeconds != 4 || got["bj-a→sh-b"].RPOObjectiveSeconds != 5 {
		t.Errorf("lag at fault %+v", got)
	}
}

func order(key, home string, sent, done time.Time, ok bool, served string, id int64) Order {
	status := 201
	if !ok {
		status = 0
	}
	return Order{Key: key, Rider: "r-" + key, Home: home, Intended: sent, Done: done, OK: ok, ServedBy: served, RideID: id,
		Attempts: []Attempt{{Gateway: home, Start: sent, End: done, Status: status, ServedBy: served}}}
}

func TestFirstServedElsewhere(t *testing.T) {
	p := planFor(t, spec.ScenarioRegionDown, "sh-a")
	orders := []Order{
		order("before", "sh-a", ms(-50), ms(-40), true, "sh-b", 1),
		order("own", "sh-a", ms(10), ms(20), true, "sh-a", 2),
		order("other-home", "sh-b", ms(10), ms(15), true, "bj-a", 3),
		order("failed", "sh-a", ms(10), ms(12), false, "", 0),
		order("late", "sh-a", ms(100), ms(300), true, "sh-b", 4),
		order("early", "sh-a", ms(150), ms(200), true, "bj-a", 5),
	}
	m := firstServedElsewhere(p, orders, t0)
	if !m.at.Equal(ms(200)) || !strings.Contains(m.by, "served by bj-a") {
		t.Fatalf("first served elsewhere %v by %q", m.at.Sub(t0), m.by)
	}
}

func TestLoadStats(t *testing.T) {
	fallback := order("fb", "sh-a", ms(-100), ms(-60), true, "sh-b", 9)
	fallback.Attempts = append([]Attempt{{Gateway: "sh-a", Start: ms(-100), End: ms(-90), Err: "EOF"}}, fallback.Attempts...)
	orders := []Order{
		order("a", "sh-a", ms(-1000), ms(-990), true, "sh-a", 1),
		fallback,
		order("b", "sh-b", ms(0), ms(40), false, "", 0),
		order("c", "bj-a", ms(1000), ms(1001), true, "bj-a", 2),
	}
	st := loadStats(orders, t0, true)
	if st.Scheduled != 4 || st.Sent != 4 || st.Acked != 3 || st.Failed != 1 ||
		st.SentAfterFault != 2 || st.FailedAfterFault != 1 || st.Fallbacks != 1 || st.FirstAttemptFailed != 2 {
		t.Fatalf("stats %+v", st)
	}
	if st.SuccessRatio != 3.0/4 || st.FirstAttemptSuccessRatio != 2.0/4 {
		t.Errorf("success %v first-attempt %v", st.SuccessRatio, st.FirstAttemptSuccessRatio)
	}
	if st.AchievedRate != 1.5 { // 4 sent, the first and the last scheduled 2 s apart
		t.Errorf("achieved rate %v", st.AchievedRate)
	}
	if st.LatencyMaxSeconds != 0.04 || st.LatencyP50Seconds != 0.01 {
		t.Errorf("latencies %+v (from the intended start)", st)
	}
	if len(st.FailureExamples) != 1 || !strings.Contains(st.FailureExamples[0], "b at") {
		t.Errorf("examples %v", st.FailureExamples)
	}
}

func TestCheckIDs(t *testing.T) {
	id := func(msec, node, seq int) int64 {
		v, err := ids.Make(t0.Add(time.Duration(msec)*time.Millisecond), node, seq)
		if err != nil {
			t.Fatal(err)
		}
		return int64(v)
	}
	cases := map[string]struct {
		orders     []Order
		dups, viol int
	}{
		"Ids increasing on each node pass.": {[]Order{
			order("1", "sh-a", ms(0), ms(10), true, "sh-a", id(5, 1, 0)),
			order("2", "sh-a", ms(20), ms(30), true, "sh-a", id(25, 1, 0)),
			order("3", "sh-a", ms(20), ms(30), true, "sh-b", id(1, 9, 0)), // another node: its own order
		}, 0, 0},
		"Overlapping creations may get their ids in either order.": {[]Order{
			order("1", "sh-a", ms(0), ms(50), true, "sh-a", id(30, 1, 0)),
			order("2", "sh-a", ms(10), ms(60), true, "sh-a", id(20, 1, 0)),
		}, 0, 0},
		"A smaller id issued after a larger one on the same node is flagged.": {[]Order{
			order("1", "sh-a", ms(0), ms(10), true, "sh-a", id(5, 2, 3)),
			order("2", "sh-a", ms(20), ms(30), true, "sh-a", id(5, 2, 1)),
		}, 0, 1},
		"One id acknowledged for two rides is a duplicate.": {[]Order{
			order("1", "sh-a", ms(0), ms(10), true, "sh-a", id(5, 2, 3)),
			order("2", "sh-b", ms(0), ms(10), true, "sh-b", id(5, 2, 3)),
		}, 1, 0},
		"Failed rides are not checked.": {[]Order{
			order("1", "sh-a", ms(0), ms(10), false, "", 0),
			order("2", "sh-b", ms(20), ms(30), false, "", 0),
		}, 0, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := checkIDs(c.orders)
			if r.Duplicates != c.dups || r.OrderViolations != c.viol {
				t.Fatalf("report %+v", r)
			}
			if (c.dups+c.viol > 0) != (len(r.Examples) > 0) {
				t.Fatalf("examples %v", r.Examples)
			}
		})
	}
}
