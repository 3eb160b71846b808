package drill

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func shippedSpec(t testing.TB) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unreachable is a target whose URLs are well-formed and answer nothing.
func unreachable() Target {
	tg := Target{Token: "t", Regions: map[string]RegionTarget{}}
	for i, n := range []string{"sh-a", "sh-b", "bj-a"} {
		tg.Regions[n] = RegionTarget{Gateway: "http://127.0.0.1:1", API: "http://127.0.0.1:" + string(rune('2'+i))}
	}
	return tg
}

func TestConfigValidate(t *testing.T) {
	s := shippedSpec(t)
	cases := map[string]struct {
		edit func(*Config)
		err  string
	}{
		"A complete config is valid.":                        {func(*Config) {}, ""},
		"An unknown scenario names the scenarios.":           {func(c *Config) { c.Scenario = "flood" }, "use one of region_down, same_city_loss"},
		"An unknown region names the regions.":               {func(c *Config) { c.Region = "mars" }, `region "mars": use one of sh-a, sh-b, bj-a`},
		"A region without URLs says which flags give them.":  {func(c *Config) { delete(c.Target.Regions, "sh-b") }, "region sh-b has no URLs"},
		"A relative gateway URL is refused.":                 {func(c *Config) { c.Target.Regions["sh-a"] = RegionTarget{Gateway: "gw:80", API: "http://h"} }, "gateway URL"},
		"A target region outside the spec is refused.":       {func(c *Config) { c.Target.Regions["mars"] = RegionTarget{} }, `"mars" is not in the spec`},
		"No token says which flag gives it.":                 {func(c *Config) { c.Target.Token = "" }, "--admin-token-file"},
		"A value for a scenario without one is refused.":     {func(c *Config) { c.Value = "1s" }, "only latency_spike"},
		"A coarse poll is refused.":                          {func(c *Config) { c.Poll = 2 * time.Second }, "keep it at 1s or below"},
		"A baseline longer than its timeout is refused.":     {func(c *Config) { c.Baseline, c.BaselineTimeout = time.Minute, time.Second }, "could never be reached"},
		"fault-at outside external mode is refused.":         {func(c *Config) { c.FaultAt = time.Now() }, "External"},
		"A city for same_city_loss must hold a region.":      {func(c *Config) { c.Scenario, c.City = spec.ScenarioSameCityLoss, "paris" }, "use one of shanghai, beijing"},
		"A city for same_city_loss replaces the region.":     {func(c *Config) { c.Scenario, c.City, c.Region = spec.ScenarioSameCityLoss, "beijing", "" }, ""},
		"A negative rate is refused with its range.":         {func(c *Config) { c.Rate = -3 }, "(0, 10000]"},
		"An engine URL must be absolute.":                    {func(c *Config) { c.Target.Engine = "engine:8080" }, "engine URL"},
		"Units below the region count are refused.":          {func(c *Config) { c.Units = 2 }, "units 2"},
		"A negative max wait is refused, naming its default": {func(c *Config) { c.MaxWait = -time.Second }, "RTO objective + 10s"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Spec: s, Target: unreachable(), Scenario: spec.ScenarioRegionDown, Region: "sh-a"}
			c.edit(&cfg)
			_, err := New(cfg)
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("got %v, want an error containing %q", err, c.err)
			}
		})
	}
}

func TestDefaultsFillEveryRegionsURLs(t *testing.T) {
	cfg := Config{Spec: shippedSpec(t), Target: Target{Token: "t", Regions: map[string]RegionTarget{
		"sh-a": {Gateway: "http://g", API: "http://a/"},
		"sh-b": {Gateway: "http://g", Faults: "http://f"},
		"bj-a": {Gateway: "http://g", API: "http://a", Faults: "http://f", Metrics: "http://m/metrics"},
	}}, Scenario: spec.ScenarioRegionDown, Region: "sh-a"}
	given := cfg.Target.Regions["sh-a"]
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := r.cfg.Target.Regions
	want := map[string]RegionTarget{
		"sh-a": {Gateway: "http://g", API: "http://a/", Faults: "http://a/", Metrics: "http://a/metrics"},
		"sh-b": {Gateway: "http://g", API: "http://f", Faults: "http://f", Metrics: "http://f/metrics"},
		"bj-a": {Gateway: "http://g", API: "http://a", Faults: "http://f", Metrics: "http://m/metrics"},
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %+v, want %+v", n, got[n], w)
		}
	}
	if cfg.Target.Regions["sh-a"] != given {
		t.Error("New changed the caller's target map")
	}
	if r.cfg.Fallbacks != 2 || r.cfg.MaxWait != 70*time.Second {
		t.Errorf("fallbacks %d (want every other region: 2), max wait %s (want the RTO 60s + 10s)", r.cfg.Fallbacks, r.cfg.MaxWait)
	}
}

func TestPlans(t *testing.T) {
	s := shippedSpec(t)
	cases := map[string]struct {
		scenario, region, city string
		faulted, survivors     string
		down, failover, engine bool
		rpo, rto               float64
		from                   string
	}{
		"A same-city region down is held to the tighter same-city pair objectives.": {
			spec.ScenarioRegionDown, "sh-a", "", "sh-a", "sh-b,bj-a", true, true, false, 2, 60, "dr.pairs[sh-a→sh-b]"},
		"The remote region down has only the drill's (default) objectives.": {
			spec.ScenarioRegionDown, "bj-a", "", "bj-a", "sh-a,sh-b", true, true, false, 5, 90, "dr.drills[region_down]"},
		"Losing Shanghai loses both its regions; the survivor's pairs are the defaults.": {
			spec.ScenarioSameCityLoss, "sh-b", "", "sh-a,sh-b", "bj-a", true, true, false, 5, 90, "dr.drills[same_city_loss]"},
		"A city can be named instead of a region.": {
			spec.ScenarioSameCityLoss, "", "beijing", "bj-a", "sh-a,sh-b", true, true, false, 5, 90, "dr.drills[same_city_loss]"},
		"A latency spike fails over and needs the engine.": {
			spec.ScenarioLatencySpike, "sh-b", "", "sh-b", "sh-a,bj-a", false, true, true, 2, 60, "dr.pairs[sh-b→sh-a]"},
		"A stall does not fail over; pairs in both directions count.": {
			spec.ScenarioReplicationStall, "bj-a", "", "bj-a", "sh-a,sh-b", false, false, false, 5, 90, "dr.drills[replication_stall]"},
		"A clock skew does not fail over.": {
			spec.ScenarioClockSkew, "sh-a", "", "sh-a", "sh-b,bj-a", false, false, false, 2, 60, "dr.pairs[sh-a→sh-b]"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := New(Config{Spec: s, Target: unreachable(), Scenario: c.scenario, Region: c.region, City: c.city})
			if err != nil {
				t.Fatal(err)
			}
			p := r.plan
			if strings.Join(p.faulted, ",") != c.faulted || strings.Join(p.survivors, ",") != c.survivors ||
				p.down != c.down || p.failover != c.failover || p.needsEngine != c.engine {
				t.Fatalf("plan %+v", p)
			}
			o := p.objectives
			if o.RPOSeconds != c.rpo || o.RTOSeconds != c.rto || o.RTOFrom != c.from || o.Success != 0.9999 {
				t.Fatalf("objectives %+v", o)
			}
		})
	}
	// Every region of the spec in one city leaves nothing to fail over to.
	one := *s
	one.Regions = []spec.Region{{Name: "sh-a", City: "x"}, {Name: "sh-b", City: "x"}}
	one.DR.Pairs = nil
	tg := unreachable()
	delete(tg.Regions, "bj-a")
	if _, err := New(Config{Spec: &one, Target: tg, Scenario: spec.ScenarioSameCityLoss, Region: "sh-a"}); err == nil || !strings.Contains(err.Error(), "nothing is left to fail over to") {
		t.Fatalf("got %v", err)
	}
}

// TestLatencySpikeWithoutEngineIsNotMeasurable: the runner refuses to
// measure a breaker it cannot see, before touching the deployment.
func TestLatencySpikeWithoutEngineIsNotMeasurable(t *testing.T) {
	rec := &captureRecorder{}
	r, err := New(Config{Spec: shippedSpec(t), Target: unreachable(), Scenario: spec.ScenarioLatencySpike, Region: "sh-a", Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Measurable || res.Passed || !strings.Contains(res.Reason, "--engine") || res.RTOSeconds != NotMeasured {
		t.Fatalf("result %+v", res)
	}
	if len(rec.got) != 1 || !strings.Contains(res.Markdown(), "NOT MEASURABLE") {
		t.Fatalf("recorded %d, markdown:\n%s", len(rec.got), res.Markdown())
	}
}

type captureRecorder struct{ got []Result }

func (c *captureRecorder) RecordDrill(_ context.Context, r Result) error {
	c.got = append(c.got, r)
	return nil
}
