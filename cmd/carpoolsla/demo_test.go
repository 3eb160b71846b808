package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// buildBinary builds carpoolsla once for the tests that run it as a user
// would.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "carpoolsla-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "carpoolsla")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type liveView struct {
	Regions []struct {
		Name    string   `json:"name"`
		Health  float64  `json:"health"`
		Breaker string   `json:"breaker"`
		Weight  float64  `json:"weight"`
		Faults  []string `json:"faults"`
	} `json:"regions"`
}

func statusOf(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestDemoRunsTheWholePlatformAndStopsOnSIGINT runs the demo binary the way
// `make run` does (with --fast windows), checks every surface it prints,
// injects a latency fault through the status page's API and watches the
// engine open that region's breaker, clears it with `carpoolsla fault`, and
// stops it with SIGINT.
func TestDemoRunsTheWholePlatformAndStopsOnSIGINT(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	port := realserver.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	data := t.TempDir()
	cmd := exec.Command(bin, "demo", "--fast", "--base-port", "0", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--data-dir", data, "--rate", "6", "--summary-every", "1s", "--spec", "../../deploy/sla.yaml")
	var out, errOut lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("demo stdout:\n%s\ndemo stderr (tail):\n%s", out.String(), tail(errOut.String(), 40))
		}
	})

	realserver.WaitFor(t, 60*time.Second, "the demo's banner", func() (bool, error) {
		select {
		case err := <-done:
			stopped = true
			return false, fmt.Errorf("the demo exited early: %v", err)
		default:
		}
		return strings.Contains(out.String(), "carpoolsla demo is up"), nil
	})
	t.Logf("the demo was up %.1fs after start (the banner's own figure: %s)", time.Since(start).Seconds(),
		regexp.MustCompile(`started in [0-9.]+s`).FindString(out.String()))

	// Every surface answers.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("<html")) {
		t.Fatalf("status page: %d %.200s", resp.StatusCode, page)
	}
	var live liveView
	realserver.WaitFor(t, 30*time.Second, "the engine's live view of 3 healthy regions", func() (bool, error) {
		if err := getJSON(base+"/api/v1/live", &live); err != nil {
			return false, err
		}
		healthy := 0
		for _, r := range live.Regions {
			if r.Health >= 90 && r.Breaker == "closed" {
				healthy++
			}
		}
		return healthy == 3, fmt.Errorf("live: %+v", live)
	})
	var q struct {
		Status string `json:"status"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	realserver.WaitFor(t, 30*time.Second, "the Prometheus API to have the services' request rate", func() (bool, error) {
		err := getJSON(base+"/api/v1/query?query=sum+by+(region)+(rate(carpool_request_duration_seconds_count[1m]))", &q)
		return err == nil && q.Status == "success" && len(q.Data.Result) == 3, fmt.Errorf("query: %v %+v", err, q)
	})
	for _, path := range []string{"/api/v1/status", "/api/v1/routing", "/api/v1/sla?scope=composite", "/api/v1/openapi.json", "/metrics"} {
		if code, err := statusOf(base + path); err != nil || code != 200 {
			t.Errorf("GET %s: %d %v", path, code, err)
		}
	}

	// A fault from the status page's API: refused without the token, then
	// taken with it, and the engine opens the slow region's breaker.
	body := `{"region":"sh-a","action":"inject","fault":{"service":"order","latency_ms":500}}`
	resp, err = http.Post(base+"/api/v1/faults", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a fault without the token got %d, want 401", resp.StatusCode)
	}
	token := readToken(filepath.Join(data, "admin-token"))
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/faults", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("injecting a fault with the token: %d", resp.StatusCode)
	}
	injected := time.Now()
	// The live view names the fault at once (the page shows it at its next
	// refresh), long before the engine's windows react.
	realserver.WaitFor(t, 5*time.Second, "the live view to list sh-a's fault", func() (bool, error) {
		if err := getJSON(base+"/api/v1/live", &live); err != nil {
			return false, err
		}
		for _, r := range live.Regions {
			if r.Name == "sh-a" {
				return slices.Equal(r.Faults, []string{"order: +500ms latency"}), fmt.Errorf("sh-a faults %q", r.Faults)
			}
		}
		return false, errors.New("no sh-a in the live view")
	})
	t.Logf("the live view listed the fault %.2fs after it was posted", time.Since(injected).Seconds())
	region := func(name string) (string, float64) {
		for _, r := range live.Regions {
			if r.Name == name {
				return r.Breaker, r.Weight
			}
		}
		return "", -1
	}
	realserver.WaitFor(t, 60*time.Second, "sh-a's breaker to open with weight 0", func() (bool, error) {
		if err := getJSON(base+"/api/v1/live", &live); err != nil {
			return false, err
		}
		b, w := region("sh-a")
		return b == "open" && w == 0, fmt.Errorf("sh-a breaker %s weight %g", b, w)
	})
	t.Logf("sh-a's breaker opened %.1fs after the fault (trip rule: 10s with --fast)", time.Since(injected).Seconds())

	// Clear it with the CLI the banner prints, and watch it come back.
	faults := regexp.MustCompile(`carpoolsla fault clear +(.*)`).FindStringSubmatch(out.String())
	if faults == nil {
		t.Fatalf("the banner prints no fault clear command:\n%s", out.String())
	}
	clear := exec.Command(bin, append([]string{"fault", "clear"}, strings.Fields(faults[1])...)...)
	clear.Dir = "../.." // where a user runs it: the repository, whose deploy/sla.yaml is the default spec
	if b, err := clear.CombinedOutput(); err != nil {
		t.Fatalf("carpoolsla fault clear: %v\n%s", err, b)
	}
	cleared := time.Now()
	realserver.WaitFor(t, 5*time.Second, "the live view to drop sh-a's fault", func() (bool, error) {
		var fresh liveView
		if err := getJSON(base+"/api/v1/live", &fresh); err != nil {
			return false, err
		}
		for _, r := range fresh.Regions {
			if r.Name == "sh-a" {
				return len(r.Faults) == 0, fmt.Errorf("sh-a faults %q", r.Faults)
			}
		}
		return false, errors.New("no sh-a in the live view")
	})
	realserver.WaitFor(t, 90*time.Second, "sh-a's breaker to leave open after the fault is cleared", func() (bool, error) {
		if err := getJSON(base+"/api/v1/live", &live); err != nil {
			return false, err
		}
		b, w := region("sh-a")
		return b != "open" && w > 0, fmt.Errorf("sh-a breaker %s weight %g", b, w)
	})
	realserver.WaitFor(t, 180*time.Second, "sh-a's breaker to ramp back to closed", func() (bool, error) {
		if err := getJSON(base+"/api/v1/live", &live); err != nil {
			return false, err
		}
		b, w := region("sh-a")
		return b == "closed", fmt.Errorf("sh-a breaker %s weight %g", b, w)
	})
	t.Logf("sh-a's breaker closed again %.1fs after the fault was cleared (hold, recover rule, 4 ramp steps)", time.Since(cleared).Seconds())

	// A region-down drill against the running demo, as a user would run it
	// with the commands the banner names: it must meet the spec's DR
	// objectives and write its report.
	var gwFlags []string
	for _, m := range regexp.MustCompile(`region (\S+) +gateway (\S+) +faults (\S+)/admin/faults`).FindAllStringSubmatch(out.String(), -1) {
		gwFlags = append(gwFlags, "--gateway", m[1]+"="+m[2], "--faults", m[1]+"="+m[3])
	}
	if len(gwFlags) != 12 {
		t.Fatalf("the banner lists %d region flags, want 3 regions:\n%s", len(gwFlags)/4, out.String())
	}
	reports := t.TempDir()
	drillCmd := exec.Command(bin, append([]string{"drill", "--scenario", "region_down", "--region", "bj-a",
		"--admin-token-file", filepath.Join(data, "admin-token"), "--engine", base + "/api/v1/status",
		"--rate", "15", "--baseline", "5s", "--duration", "10s", "--out", reports, "--report-url", base}, gwFlags...)...)
	drillCmd.Dir = "../.."
	drillOut, err := drillCmd.CombinedOutput()
	if err != nil {
		t.Fatalf("carpoolsla drill region_down against the demo: %v\n%s", err, drillOut)
	}
	var rep struct {
		Passed       bool    `json:"passed"`
		RTOSeconds   float64 `json:"rto_seconds"`
		SuccessRatio float64 `json:"success_ratio"`
	}
	files, _ := filepath.Glob(filepath.Join(reports, "*.json"))
	if len(files) != 1 {
		t.Fatalf("the drill wrote %d JSON reports, want 1", len(files))
	}
	b, _ := os.ReadFile(files[0])
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || rep.RTOSeconds <= 0 || rep.RTOSeconds > 90 || rep.SuccessRatio < 0.9999 {
		t.Errorf("drill report: %+v; want passed, RTO in (0, 90] s, order success at least 99.99 %%", rep)
	}
	t.Logf("region_down drill against the demo: RTO %.2fs, order success %.4f", rep.RTOSeconds, rep.SuccessRatio)
	// --report-url recorded it in the demo's history: the SLA report's
	// RPO/RTO compliance counts this drill with its measured RTO.
	var sla struct {
		DR struct {
			Drills           int `json:"drills"`
			WithinObjectives int `json:"within_objectives"`
			Scenarios        []struct {
				Scenario        string  `json:"scenario"`
				Drills          int     `json:"drills"`
				WorstRTOSeconds float64 `json:"worst_rto_seconds"`
			} `json:"scenarios"`
		} `json:"dr"`
	}
	if err := getJSON(base+"/api/v1/sla", &sla); err != nil {
		t.Fatal(err)
	}
	if sla.DR.Drills != 1 || sla.DR.WithinObjectives != 1 || len(sla.DR.Scenarios) != 1 || sla.DR.Scenarios[0].Scenario != "region_down" ||
		math.Abs(sla.DR.Scenarios[0].WorstRTOSeconds-rep.RTOSeconds) > 1e-6 {
		t.Errorf("the report's DR section %+v; want the one region_down drill with RTO %.3fs", sla.DR, rep.RTOSeconds)
	}

	// The posted drill is exported as carpool_drill_* and scraped into the
	// store, with the RTO the drill measured.
	realserver.WaitFor(t, 15*time.Second, "the drill's RTO in the demo's store", func() (bool, error) {
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := getJSON(base+"/api/v1/query?query="+url.QueryEscape(`carpool_drill_rto_seconds{scenario="region_down",phase="total"}`), &r); err != nil {
			return false, err
		}
		if len(r.Data.Result) != 1 {
			return false, fmt.Errorf("%d series", len(r.Data.Result))
		}
		v, _ := strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
		return math.Abs(v-rep.RTOSeconds) < 1e-6, fmt.Errorf("RTO %v, the drill's %v", v, rep.RTOSeconds)
	})
	// A Grafana pointed at the demo's Prometheus API gets every generated
	// dashboard's data.
	checkDashboards(t, base, []string{"sh-a", "sh-b", "bj-a"})

	// Ctrl-C stops it cleanly.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("after SIGINT the demo exited with %v, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the demo did not stop within 20s of SIGINT")
	}
	if !strings.Contains(out.String(), "demo stopped") {
		t.Error("the demo did not say it stopped")
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Error("the status page still answers after the demo stopped")
	}
	// The live summary line was printed while it ran.
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	lines := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), "| sh-a health") {
			lines++
		}
	}
	if lines == 0 {
		t.Error("no live summary line was printed")
	}
}

func tail(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// TestDemoSendsLogsSpansAndReportsThroughClickHouse runs the demo with
// --clickhouse against a real ClickHouse 18.16: the services' logs and spans
// land in its tables, and the report answers from it.
func TestDemoSendsLogsSpansAndReportsThroughClickHouse(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	ch := realserver.StartClickHouse(t)
	b, err := os.ReadFile("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Trace every ride, so spans show up within seconds at the demo's rate.
	specFile := filepath.Join(t.TempDir(), "sla.yaml")
	traced := strings.Replace(string(b), "sampleRatio: 0.01", "sampleRatio: 1", 1)
	if traced == string(b) {
		t.Fatal("the shipped spec has no tracing.sampleRatio: 0.01 to raise")
	}
	if err := os.WriteFile(specFile, []byte(traced), 0o644); err != nil {
		t.Fatal(err)
	}
	port := realserver.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "demo", "--spec", specFile, "--base-port", "0", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--data-dir", t.TempDir(), "--rate", "6", "--summary-every", "0", "--log-level", "info", "--clickhouse", ch.Addr)
	var out, errOut lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("demo stdout:\n%s\nstderr (tail):\n%s", out.String(), tail(errOut.String(), 30))
		}
	})
	// count reads a table's rows; 0 until the demo has migrated the schema.
	count := func(table string) int {
		resp, err := http.Post(ch.HTTPURL+"/", "text/plain", strings.NewReader("SELECT count() FROM carpoolsla."+table))
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var n int
		if resp.StatusCode == 200 {
			_, _ = fmt.Sscan(strings.TrimSpace(string(b)), &n)
		}
		return n
	}
	realserver.WaitFor(t, 60*time.Second, "service logs and spans in ClickHouse", func() (bool, error) {
		l, s := count("logs"), count("spans")
		return l > 0 && s > 0, fmt.Errorf("logs %d, spans %d", l, s)
	})
	regions := strings.TrimSpace(ch.Query(t, "SELECT arrayStringConcat(groupUniqArray(region), ',') FROM (SELECT region FROM carpoolsla.spans ORDER BY region)"))
	if strings.Count(regions, ",") < 1 {
		t.Errorf("spans came from regions %q; want several", regions)
	}
	if code, err := statusOf(base + "/api/v1/sla?scope=composite"); err != nil || code != 200 {
		t.Errorf("the report over ClickHouse: %d %v", code, err)
	}
}

// dashboardQueries lists every query of a generated dashboard: the panels'
// expressions and the query variables' label_values(metric, label).
func dashboardQueries(t *testing.T, file string) (exprs []string, labelValues [][2]string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var walk func(any)
	walk = func(o any) {
		switch v := o.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(d)
	lv := regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`)
	for _, v := range d.(map[string]any)["templating"].(map[string]any)["list"].([]any) {
		if q, ok := v.(map[string]any)["query"].(string); ok {
			if m := lv.FindStringSubmatch(q); m != nil {
				labelValues = append(labelValues, [2]string{m[1], m[2]})
			}
		}
	}
	return exprs, labelValues
}

// noDataInTheDemo are the dashboard series the demo cannot have, and why.
var noDataInTheDemo = map[string]string{
	"carpool_verify_rows_mismatched_total": "the data verifier compares real databases; the demo's regions keep theirs in process",
}

// checkDashboards runs every query of the generated dashboards against the
// demo's Prometheus-compatible API as Grafana would (query_range with the
// variables at "All", label values for the variables): each must succeed
// and return data, except those of series in noDataInTheDemo (the drill
// panels have data once a drill was posted to the demo).
func checkDashboards(t *testing.T, base string, regions []string) {
	t.Helper()
	files, _ := filepath.Glob("../../deploy/generated/grafana/dashboards/*.json")
	if len(files) == 0 {
		t.Fatal("no generated dashboards")
	}
	vars := strings.NewReplacer("$region", strings.Join(regions, "|"), "$service", ".+", "$operation", ".+", "$__rate_interval", "1m", "$__interval", "15s")
	end := time.Now()
	total, withData := 0, 0
	for _, f := range files {
		exprs, labelValues := dashboardQueries(t, f)
		for _, lv := range labelValues {
			var r struct {
				Status string   `json:"status"`
				Data   []string `json:"data"`
			}
			u := base + "/api/v1/label/" + lv[1] + "/values?" + url.Values{"match[]": {vars.Replace(lv[0])}}.Encode()
			if err := getJSON(u, &r); err != nil || r.Status != "success" || len(r.Data) == 0 {
				t.Errorf("%s: the variable's label_values(%s, %s): %v %+v", filepath.Base(f), lv[0], lv[1], err, r)
			}
		}
		var empty []string
		for _, e := range exprs {
			var r struct {
				Status string `json:"status"`
				Error  string `json:"error"`
				Data   struct {
					Result []json.RawMessage `json:"result"`
				} `json:"data"`
			}
			// Grafana sends times to the millisecond; whole seconds would cut
			// off the last second's samples.
			q := url.Values{"query": {vars.Replace(e)}, "start": {end.Add(-3 * time.Minute).Format(time.RFC3339Nano)},
				"end": {end.Format(time.RFC3339Nano)}, "step": {"15"}}
			total++
			if err := getJSON(base+"/api/v1/query_range?"+q.Encode(), &r); err != nil || r.Status != "success" {
				t.Errorf("%s: %s: %v %s", filepath.Base(f), e, err, r.Error)
				continue
			}
			if len(r.Data.Result) == 0 {
				excused := false
				for series, why := range noDataInTheDemo {
					if strings.Contains(e, series) {
						t.Logf("%s: no data for %s, as expected: %s", filepath.Base(f), series, why)
						excused = true
					}
				}
				if !excused {
					empty = append(empty, e)
				}
				continue
			}
			withData++
		}
		if len(empty) > 0 {
			t.Errorf("%s: %d of %d queries return no data from the demo:\n%s", filepath.Base(f), len(empty), len(exprs), strings.Join(empty, "\n"))
		}
	}
	t.Logf("the generated dashboards' %d queries all ran on the demo's Prometheus API; %d returned data", total, withData)
}
