package spec

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestShippedSpecIsValid(t *testing.T) {
	s, err := Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatalf("deploy/sla.yaml: %v", err)
	}
	if len(s.Regions) != 3 || len(s.Services) != 5 {
		t.Fatalf("got %d regions and %d services, want 3 and 5", len(s.Regions), len(s.Services))
	}
	// The seed's numbers.
	if got := s.Routing.Probes; got.Interval.Seconds() != 1 || got.Timeout.Seconds() != 0.3 || got.UnhealthyAfter != 3 {
		t.Errorf("probes = %+v, want 1s / 300ms / 3", got)
	}
	if s.Breaker.Trip.LatencyP99.Seconds() != 0.3 || time.Duration(s.Breaker.Trip.For) != 2*time.Minute {
		t.Errorf("breaker trip = %+v, want P99 300ms for 2m", s.Breaker.Trip)
	}
	if s.DR.RPO.Seconds() != 5 || s.DR.RTO.Seconds() != 90 || time.Duration(s.Logs.Retention) != 180*24*time.Hour {
		t.Errorf("dr = %v/%v, retention %v; want 5s/90s and 180d", s.DR.RPO, s.DR.RTO, s.Logs.Retention)
	}
	want := map[string]float64{"sync_lag": 0.35, "api_success": 0.30, "stream_consistency": 0.25, "config_consistency": 0.10}
	for _, c := range s.Health.Components {
		if want[c.Name] != c.Weight {
			t.Errorf("health component %s weight %v, want %v", c.Name, c.Weight, want[c.Name])
		}
	}
	if rpo, _ := s.PairObjectives("sh-a", "sh-b"); rpo.Seconds() != 2 {
		t.Errorf("sh-a→sh-b RPO = %v, want the override 2s", rpo)
	}
	if rpo, rto := s.PairObjectives("sh-a", "bj-a"); rpo.Seconds() != 5 || rto.Seconds() != 90 {
		t.Errorf("sh-a→bj-a = %v/%v, want the defaults 5s/90s", rpo, rto)
	}
}

// TestBrokenSpecs checks the messages for every spec in testdata/broken
// against its .err golden file (go test -run TestBrokenSpecs -update rewrites them).
func TestBrokenSpecs(t *testing.T) {
	files, err := filepath.Glob("testdata/broken/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no broken specs found: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatalf("%s was accepted; it must fail", f)
			}
			if _, ok := err.(Problems); !ok {
				t.Fatalf("error is %T, want Problems: %v", err, err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading the golden file: %v (run go test ./sla/spec -run TestBrokenSpecs -update)", err)
			}
			if got != string(want) {
				t.Errorf("messages differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !strings.HasPrefix(line, f+":") {
					t.Errorf("message %q does not start with the file name", line)
				}
			}
		})
	}
}

func TestProblemsNameTheirPlace(t *testing.T) {
	cases := map[string]struct {
		from, to string
		want     string
	}{
		"A misspelt field is an error that suggests the right name.": {
			"  floor: 70", "  flor: 70", "test.yaml:82:3: health.flor: unknown field \"flor\" in health; did you mean \"floor\"?"},
		"Health weights that do not sum to 1 are an error naming the sum.": {
			"      weight: 0.35\n      measure: sync_lag_seconds", "      weight: 0.3\n      measure: sync_lag_seconds",
			"weights of health.components sum to 0.95; they must sum to 1"},
		"A latency threshold off the buckets names the nearest boundaries.": {
			"threshold: 800ms", "threshold: 700ms", "700ms is not a bucket boundary of carpool_request_duration_seconds, so the SLI would be inexact; the nearest boundaries are 500ms and 800ms"},
		"A probe timeout not below the interval is an error.": {
			"    timeout: 300ms", "    timeout: 1s", "routing.probes.timeout: is 1s, not below routing.probes.interval (1s)"},
		"A recovery bar above the trip bar is an error.": {
			"    latencyP99: 200ms", "    latencyP99: 300ms", "breaker.recover.latencyP99: is 300ms, not below the trip bar"},
		"A window not longer than the longest alert window is an error.": {
			"        objective: 99.95\n        key: true", "        objective: 99.95\n        window: 3d\n        key: true", "is 3d, not longer than the longest alert window (3d)"},
		"A duration that does not parse says how to write one.": {
			"  for: 5m", "  for: five minutes", "\"five minutes\" is not a duration"},
		"A second document in the file is refused.": {
			"  datasource: Prometheus\n", "  datasource: Prometheus\n---\nkind: x\n", "more than one YAML document"},
	}
	base, err := os.ReadFile("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := string(base)
			if !strings.Contains(in, c.from) {
				t.Fatalf("the shipped spec no longer contains %q; update the test", c.from)
			}
			_, err := Parse("test.yaml", []byte(strings.Replace(in, c.from, c.to, 1)))
			if err == nil {
				t.Fatal("the spec was accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got:\n%v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestCurveScore(t *testing.T) {
	f := func(c Curve, x, want float64) {
		t.Helper()
		if got := c.Score(x); got != want {
			t.Errorf("%+v.Score(%v) = %v, want %v", c, x, got, want)
		}
	}
	lag := Curve{Type: CurveLinear, Good: 2, Bad: 10}
	f(lag, 0, 100)
	f(lag, 2, 100)
	f(lag, 6, 50)
	f(lag, 10, 0)
	f(lag, 60, 0)
	success := Curve{Type: CurveLinear, Good: 99.95, Bad: 99}
	f(success, 100, 100)
	f(success, 99, 0)
	f(success, 98, 0)
	step := Curve{Type: CurveStep, Good: 1, Bad: 0}
	f(step, 1, 100)
	f(step, 0, 0)
	f(step, 0.5, 0)
}

func TestHealthScore(t *testing.T) {
	h := Default().Health
	total, parts := h.Score(map[string]float64{"sync_lag": 6, "api_success": 100, "stream_consistency": 100, "config_consistency": 1})
	if parts["sync_lag"] != 50 || parts["api_success"] != 100 {
		t.Errorf("parts = %v", parts)
	}
	if want := 0.35*50 + 0.30*100 + 0.25*100 + 0.10*100; total != want {
		t.Errorf("total = %v, want %v", total, want)
	}
	if total, _ := h.Score(nil); total != 0 {
		t.Errorf("no measurements scored %v, want 0", total)
	}
}

func TestValidateInGo(t *testing.T) {
	s := Default()
	s.Metadata = Metadata{Name: "x", Team: "y"}
	s.Regions = []Region{{Name: "a", City: "c"}}
	s.Services = []Service{{Name: "order", Weight: 1, Operations: []string{"create_ride"},
		SLOs: []SLO{{Name: "availability", Kind: KindAvailability, Objective: 99.9}}}}
	s.Alerting.Receivers = Receivers{PagerDuty: PagerDuty{RoutingKeyFile: "/run/secrets/pd"}, Chat: Webhook{URL: "http://127.0.0.1:1/chat"}, Ticket: Webhook{URL: "http://127.0.0.1:1/ticket"}}
	s.fillDefaults()
	if err := s.Validate(); err != nil {
		t.Fatalf("a minimal spec built in Go failed: %v", err)
	}
	s.Regions = nil
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "no regions") {
		t.Fatalf("a spec without regions gave %v", err)
	}
}

func TestCreditForAppliesTheLowestMatchingRow(t *testing.T) {
	s := Default()
	s.Credits = []Credit{{Below: 99.9, Percent: 10}, {Below: 99, Percent: 25}, {Below: 95, Percent: 100}}
	for _, c := range []struct {
		att, want float64
	}{{100, 0}, {99.9, 0}, {99.89, 10}, {99, 10}, {98.99, 25}, {95, 25}, {94, 100}} {
		if got := s.CreditFor(c.att); got != c.want {
			t.Errorf("CreditFor(%g) = %g, want %g", c.att, got, c.want)
		}
	}
	s.Credits = nil
	if got := s.CreditFor(10); got != 0 {
		t.Errorf("with no credit table CreditFor(10) = %g, want 0", got)
	}
}
