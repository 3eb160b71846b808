package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// syncBuffer is a bytes.Buffer safe for the command's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fastSpec writes deploy/sla.yaml with a 1 s engine interval and scrape
// interval, and returns its path.
func fastSpec(t *testing.T) string {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.Engine.Interval = spec.Duration(time.Second)
	s.Engine.ScrapeInterval = spec.Duration(time.Second)
	b, err := yaml.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sla.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runEngineCmd runs `carpoolsla engine args...` until ctx ends and returns
// its exit code as run() would.
func runEngineCmd(ctx context.Context, stdout, stderr io.Writer, args ...string) int {
	cmd := newEngine(stdout, stderr)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.ExecuteContext(ctx); err != nil {
		if ee, ok := err.(exitError); ok {
			return ee.code
		}
		fmt.Fprintln(stderr, "carpoolsla:", err)
		return 2
	}
	return 0
}

func TestEngineFlagErrors(t *testing.T) {
	specFile := fastSpec(t)
	token := writeFile(t, "token", "t0ken\n")
	tests := map[string]struct {
		args []string
		code int
		want string
	}{
		"A missing spec says how to pass one.": {
			[]string{"--spec", "nope.yaml"}, 1, "pass --spec"},
		"A scrape target without a job shows the form.": {
			[]string{"--spec", specFile, "--scrape", "http://127.0.0.1:1/metrics"}, 2, "write job=URL"},
		"The engine's own job name is refused.": {
			[]string{"--spec", specFile, "--scrape", "carpool-engine=http://127.0.0.1:1/metrics"}, 2, "is the engine's own"},
		"A gateway without a token file says which flag is missing.": {
			[]string{"--spec", specFile, "--gateway", "sh-a=http://127.0.0.1:1"}, 2, "--admin-token-file is required"},
		"A token file without a gateway says to name the gateways.": {
			[]string{"--spec", specFile, "--admin-token-file", token}, 2, "--admin-token-file without --gateway"},
		"A gateway of an unknown region lists the spec's regions.": {
			[]string{"--spec", specFile, "--gateway", "mars=http://127.0.0.1:1", "--admin-token-file", token}, 2, "use one of sh-a, sh-b, bj-a"},
		"A gateway URL that is not absolute shows the form.": {
			[]string{"--spec", specFile, "--gateway", "sh-a=127.0.0.1:1", "--admin-token-file", token}, 2, "not an absolute http(s) URL"},
		"Embedded-store flags with an external store are refused.": {
			[]string{"--spec", specFile, "--prometheus", "http://127.0.0.1:1", "--scrape", "a=http://127.0.0.1:1/metrics"}, 2, "--scrape configures the embedded store"},
		"An embedded-store folder with an external store is refused.": {
			[]string{"--spec", specFile, "--prometheus", "http://127.0.0.1:1", "--store-dir", "x"}, 2, "--store-dir configures the embedded store"},
		"A bad external-store flag is named.": {
			[]string{"--spec", specFile, "--prometheus", "http://127.0.0.1:1", "--prometheus-timeout", "0s"}, 2, "--prometheus-timeout"},
		"An address that cannot be listened on is named.": {
			[]string{"--spec", specFile, "--listen", "256.1.1.1:99999", "--prometheus", "http://127.0.0.1:1"}, 2, "--listen 256.1.1.1:99999"},
		"A bad log level is named.": {
			[]string{"--spec", specFile, "--log-level", "loud", "--prometheus", "http://127.0.0.1:1"}, 2, "--log-level"},
		"A latency window too short to hold two scrapes is named.": {
			[]string{"--spec", specFile, "--latency-window", "100ms"}, 2, "--latency-window 100ms is too short"},
		"A negative state age is named.": {
			[]string{"--spec", specFile, "--state-max-age", "-1h"}, 2, "--state-max-age -1h0m0s"},
		"An unknown flag fails.": {
			[]string{"--spec", specFile, "--no-such-flag"}, 2, "unknown flag"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := tc.args
			if !slices.Contains(args, "--prometheus") { // never touch the default store folder
				args = append(slices.Clone(args), "--store-dir", t.TempDir())
			}
			code := runEngineCmd(ctx, &stdout, &stderr, args...)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and a message containing %q", code, stderr.String(), tc.code, tc.want)
			}
			if strings.Contains(stdout.String(), "listening") {
				t.Errorf("the engine started despite the bad flags: %s", stdout.String())
			}
		})
	}
}

// startEngine runs the command in the background and returns its base URL
// and a stop function that cancels it and returns its exit code.
func startEngine(t *testing.T, args ...string) (base string, stderr *syncBuffer, stop func() int) {
	t.Helper()
	var stdout syncBuffer
	stderr = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- runEngineCmd(ctx, &stdout, stderr, args...) }()
	re := regexp.MustCompile(`engine listening on (http://\S+)`)
	realserver.WaitFor(t, 20*time.Second, "the engine's listening line", func() (bool, error) {
		select {
		case code := <-done:
			done <- code
			return false, fmt.Errorf("the command exited %d: %s", code, stderr.String())
		default:
		}
		m := re.FindStringSubmatch(stdout.String())
		if m == nil {
			return false, nil
		}
		base = m[1]
		return true, nil
	})
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(15 * time.Second):
				t.Error("the engine did not stop within 15s of its context ending")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return base, stderr, stop
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// gatewayRecorder is a stand-in gateway that records the tables pushed.
type gatewayRecorder struct {
	mu     sync.Mutex
	tables []engine.RouteTable
	auth   []string
}

func (g *gatewayRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var t engine.RouteTable
	_ = json.NewDecoder(r.Body).Decode(&t)
	g.mu.Lock()
	g.tables = append(g.tables, t)
	g.auth = append(g.auth, r.Header.Get("Authorization"))
	g.mu.Unlock()
	fmt.Fprintf(w, `{"applied":true,"version":%d}`, t.Version)
}

func (g *gatewayRecorder) last() (engine.RouteTable, string, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.tables) == 0 {
		return engine.RouteTable{}, "", 0
	}
	return g.tables[len(g.tables)-1], g.auth[len(g.auth)-1], len(g.tables)
}

func TestEngineEmbeddedServesStatusStoreAndMetricsAndPushes(t *testing.T) {
	gw := &gatewayRecorder{}
	gsrv := httptest.NewServer(gw)
	t.Cleanup(gsrv.Close)
	token := writeFile(t, "token", "t0ken\n")
	dataDir := t.TempDir()
	base, stderr, stop := startEngine(t, "--spec", fastSpec(t), "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--gateway", "sh-a="+gsrv.URL, "--admin-token-file", token)

	var st engine.Status
	realserver.WaitFor(t, 15*time.Second, "a status after the first ticks", func() (bool, error) {
		if err := getJSON(base+"/api/v1/status", &st); err != nil {
			return false, err
		}
		return st.Ticks >= 2 && len(st.Regions) == 3, nil
	})
	for _, r := range st.Regions {
		if r.Breaker != engine.Closed {
			t.Errorf("region %s is %s without any signal; absent data must not trip a breaker", r.Region, r.Breaker)
		}
	}
	var rt engine.RouteTable
	if err := getJSON(base+"/api/v1/routing", &rt); err != nil || len(rt.Regions) != 3 {
		t.Errorf("routing table %+v, %v", rt, err)
	}
	realserver.WaitFor(t, 10*time.Second, "a push to the gateway", func() (bool, error) {
		got, auth, _ := gw.last()
		return got.Version >= 1 && len(got.Regions) == 3 && auth == "Bearer t0ken", fmt.Errorf("last push %+v auth %q", got, auth)
	})

	// The engine's own metrics are scraped back into the embedded store,
	// which answers on the same listener.
	realserver.WaitFor(t, 15*time.Second, "the engine's breaker states in the embedded store", func() (bool, error) {
		var resp struct {
			Status string `json:"status"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := getJSON(base+"/api/v1/query?query=carpool_breaker_state%7Bjob%3D%22carpool-engine%22%7D", &resp); err != nil {
			return false, err
		}
		return resp.Status == "success" && len(resp.Data.Result) == 3, fmt.Errorf("%d series", len(resp.Data.Result))
	})
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"carpool_breaker_state", "carpool_engine_query_errors_total", "carpool_engine_push_last_success_timestamp_seconds", "prometheus_tsdb_head_series"} {
		if !strings.Contains(string(b), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if code := stop(); code != 0 {
		t.Errorf("exit %d after cancel; stderr:\n%s", code, stderr.String())
	}
	if _, err := http.Get(base + "/api/v1/status"); err == nil {
		t.Error("the API still answers after the engine stopped")
	}
	// The breakers are kept in the data folder for the next start.
	var state engine.State
	if b, err := os.ReadFile(filepath.Join(dataDir, "engine-state.json")); err != nil || json.Unmarshal(b, &state) != nil ||
		state.Format != engine.StateFormat || len(state.Regions) != 3 {
		t.Errorf("engine-state.json in --data-dir: %+v, %v", state, err)
	}
}

func TestEngineReadsAnExternalStore(t *testing.T) {
	var queries atomic.Int64
	var sawAttainment atomic.Bool
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if strings.HasSuffix(r.URL.Path, "/api/v1/query") {
			queries.Add(1)
			if r.Form.Get("query") == "carpool:slo_attainment:ratio" {
				sawAttainment.Store(true)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
	}))
	t.Cleanup(prom.Close)
	base, stderr, stop := startEngine(t, "--spec", fastSpec(t), "--listen", "127.0.0.1:0", "--prometheus", prom.URL, "--dry-run")
	var st engine.Status
	realserver.WaitFor(t, 15*time.Second, "two ticks read from the external store", func() (bool, error) {
		if err := getJSON(base+"/api/v1/status", &st); err != nil {
			return false, err
		}
		return st.Ticks >= 2 && sawAttainment.Load(), fmt.Errorf("ticks %d, %d queries", st.Ticks, queries.Load())
	})
	if !st.DryRun {
		t.Error("--dry-run did not reach the engine")
	}
	// No embedded store: its query API is not served.
	if resp, err := http.Get(base + "/api/v1/query?query=up"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("an external-store engine serves a query API")
		}
	}
	if code := stop(); code != 0 {
		t.Errorf("exit %d after cancel; stderr:\n%s", code, stderr.String())
	}
}
