package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/loadgen/drill"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/services/region/regiontest"
	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/report/memhistory"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func TestDrillBadInput(t *testing.T) {
	tok := drillTokenFile(t, "s3cret")
	base := []string{"drill", "--spec", "../../deploy/sla.yaml", "--admin-token-file", tok, "--base-port", "18100", "--out", ""}
	cases := map[string]struct {
		args []string
		code int
		says string
	}{
		"A scenario is required, and the scenarios are named.": {nil, 2, "--scenario is required: one of region_down, same_city_loss, replication_stall, latency_spike, clock_skew"},
		"An unknown scenario names the known ones.":            {[]string{"--scenario", "meteor", "--region", "sh-a"}, 2, `scenario "meteor": use one of region_down`},
		"An unknown region names the spec's regions.":          {[]string{"--scenario", "region_down", "--region", "mars"}, 2, `region "mars": use one of sh-a, sh-b, bj-a`},
		"An unknown city names the spec's cities.":             {[]string{"--scenario", "same_city_loss", "--city", "atlantis"}, 2, "use one of shanghai, beijing"},
		"A value only fits latency_spike and clock_skew.":      {[]string{"--scenario", "region_down", "--region", "sh-a", "--value", "2s"}, 2, "only latency_spike (a latency) and clock_skew (a skew) take a value"},
		"A bad latency value says what to write.":              {[]string{"--scenario", "latency_spike", "--region", "sh-a", "--value", "slow"}, 2, "a positive duration such as 400ms"},
		"A bad --fault-at says the format.":                    {[]string{"--scenario", "region_down", "--region", "sh-a", "--external-fault", "--fault-at", "noon"}, 2, "RFC 3339"},
		"--fault-at needs --external-fault.":                   {[]string{"--scenario", "region_down", "--region", "sh-a", "--fault-at", "2026-11-25T10:00:00Z"}, 2, "--external-fault"},
		"A negative rate is refused.":                          {[]string{"--scenario", "region_down", "--region", "sh-a", "--rate", "-1"}, 2, "give rides per second in (0, 10000]"},
		"A poll coarser than a second is refused.":             {[]string{"--scenario", "region_down", "--region", "sh-a", "--poll", "2s"}, 2, "keep it at 1s or below"},
		"A --report-url that is not a URL says the form.":      {[]string{"--scenario", "region_down", "--region", "sh-a", "--report-url", "127.0.0.1:8080"}, 2, "give the report API's base URL"},
		"A bad gateway flag says how to write it.":             {[]string{"--scenario", "region_down", "--region", "sh-a", "--gateway", "sh-a:80"}, 2, "REGION=http://HOST:PORT"},
		"latency_spike without an engine is not measurable (exit 3), and no fault is injected.": {
			[]string{"--scenario", "latency_spike", "--region", "sh-a"}, 3, "NOT MEASURABLE"},
		"Without URLs for every region the drill says which flags give them.": {
			[]string{"--scenario", "region_down", "--region", "sh-a", "--base-port", "0", "--gateway", "sh-a=http://127.0.0.1:1"}, 2, "region sh-b has no URLs"},
		"An unreachable deployment exits 4 and says what to check.": {
			[]string{"--scenario", "region_down", "--region", "sh-a", "--base-port", "1"}, 4, "the drill could not be carried out"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append(append([]string{}, base...), c.args...), &out, &errb)
			if all := out.String() + errb.String(); code != c.code || !strings.Contains(all, c.says) {
				t.Errorf("exit %d (want %d), output:\n%s\nwant it to contain %q", code, c.code, all, c.says)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run([]string{"drill", "--spec", "nope.yaml", "--scenario", "region_down"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "nope.yaml") {
		t.Errorf("a missing spec: exit %d, %s", code, errb.String())
	}
}

// TestDrillCommandOnACluster runs `carpoolsla drill --scenario region_down`
// against three in-process regions with short windows (5 s of baseline at
// 30 rides/s, so that the gateways' retry budget covers the requests they
// send the dead region before they eject it), pushes the drill
// metrics to a real VictoriaMetrics and finds them there, and reads the
// JSON report it wrote.
func TestDrillCommandOnACluster(t *testing.T) {
	vm := realserver.StartVictoriaMetrics(t)
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := regiontest.Start(t, region.ClusterConfig{Spec: s, AdminToken: "s3cret"})
	// A report API with the demo's in-process history takes the result.
	mem, err := memhistory.New(memhistory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const reportToken = "report-write-token-0123"
	rh, err := report.New(report.Config{Spec: s, History: mem, Drills: demoDrills{mem: mem}, Tokens: []string{reportToken}})
	if err != nil {
		t.Fatal(err)
	}
	rsrv := httptest.NewServer(rh)
	t.Cleanup(rsrv.Close)
	args := []string{"drill", "--spec", "../../deploy/sla.yaml", "--scenario", "region_down", "--region", "bj-a",
		"--admin-token-file", drillTokenFile(t, "s3cret"), "--rate", "30", "--baseline", "5s", "--duration", "3s", "--settle", "1s",
		"--poll", "50ms", "--recover-timeout", "20s", "--out", t.TempDir(), "--push", vm.URL + "/api/v1/import/prometheus",
		"--report-url", rsrv.URL, "--report-token-file", drillTokenFile(t, reportToken)}
	for _, n := range c.Names() {
		u := c.Regions[n].URLs()
		args = append(args, "--gateway", n+"="+u[region.Gateway], "--faults", n+"="+u[region.Entry])
	}
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "# Drill region_down of bj-a: PASSED") || !strings.Contains(out.String(), "drill metrics pushed") {
		t.Fatalf("stdout:\n%s", out.String())
	}
	var jsonPath string
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "reports: "); ok {
			jsonPath = strings.Fields(rest)[0]
		}
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("the JSON report %q: %v", jsonPath, err)
	}
	var res drill.Result
	if err := json.Unmarshal(b, &res); err != nil || !res.Passed || res.Scenario != spec.ScenarioRegionDown || res.RTOSeconds <= 0 {
		t.Fatalf("report %s: %+v %v", filepath.Base(jsonPath), res, err)
	}
	// The report API recorded it: its DR section counts the drill with the
	// RTO the drill measured.
	var sla report.SLAReport
	if err := getJSON(rsrv.URL+"/api/v1/sla?scope=region&region=bj-a", &sla); err != nil {
		t.Fatal(err)
	}
	if sla.DR.Drills != 1 || sla.DR.Passed != 1 || len(sla.DR.Scenarios) != 1 || math.Abs(sla.DR.Scenarios[0].WorstRTOSeconds-res.RTOSeconds) > 1e-6 {
		t.Errorf("report DR section %+v; want the one drill with RTO %v", sla.DR, res.RTOSeconds)
	}
	// bj-a's only pairs are the defaults: RTO 90s, RPO 5s.
	if res.Objectives.RTOSeconds != 90 || res.Objectives.RPOSeconds != 5 {
		t.Errorf("objectives %+v, want the dr defaults for bj-a", res.Objectives)
	}
	realserver.WaitFor(t, 15*time.Second, "the pushed drill metrics in VictoriaMetrics", func() (bool, error) {
		vm.Flush(t)
		got := vm.Query(t, `carpool_drill_rto_seconds{scenario="region_down",phase="total"}`)
		passed := vm.Query(t, `carpool_drill_passed{scenario="region_down"}`)
		if len(got) != 1 || len(passed) != 1 {
			return false, fmt.Errorf("%d total series, %d passed series", len(got), len(passed))
		}
		if d := got[0].Value - res.RTOSeconds; d > 1e-6 || d < -1e-6 || passed[0].Value != 1 {
			return false, fmt.Errorf("total %v (report %v), passed %v", got[0].Value, res.RTOSeconds, passed[0].Value)
		}
		return true, nil
	})
}
