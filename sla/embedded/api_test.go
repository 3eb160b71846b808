package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/source/sourcetest"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// runStore opens a store in a temporary folder, runs it, and stops and
// closes it when the test ends.
func runStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
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
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return within 30 s of its context ending")
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	waitFor(t, 10*time.Second, "the store to be ready", func() (bool, error) { return s.Ready(), nil })
	return s
}

// waitFor polls cond every 50 ms until it is true, failing the test after
// timeout with cond's last error.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s: last error: %v", timeout, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func loadSpec(t *testing.T) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatalf("loading the shipped spec: %v", err)
	}
	return s
}

// scenarioStore is a running store holding the Carpool scenario, served
// over HTTP, with client_golang's API client pointed at it.
func scenarioStore(t *testing.T) (*Store, sourcetest.Scenario, *httptest.Server, v1.API) {
	t.Helper()
	sp := loadSpec(t)
	st := runStore(t, Config{})
	sc := sourcetest.Carpool(sp, time.Now())
	if err := sc.Append(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st.Handler())
	t.Cleanup(srv.Close)
	client, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return st, sc, srv, v1.NewAPI(client)
}

func TestTheAPIAnswersClientGolangAsPrometheusDoes(t *testing.T) {
	t.Parallel()
	st, sc, _, promAPI := scenarioStore(t)
	ctx := context.Background()
	at := sc.End()

	t.Run("An instant query gives the scenario's values with their labels.", func(t *testing.T) {
		val, _, _, err := promAPI.Query(ctx, catalog.RegionLatencyP99.Name, at)
		if err != nil {
			t.Fatal(err)
		}
		vec, ok := val.(model.Vector)
		if !ok || len(vec) != 3 {
			t.Fatalf("got %v (%T), want a vector of 3 regions", val, val)
		}
		for _, s := range vec {
			if s.Metric[model.MetricNameLabel] != model.LabelValue(catalog.RegionLatencyP99.Name) || s.Timestamp.Time().UnixMilli() != at.UnixMilli() {
				t.Errorf("sample %v at %v", s.Metric, s.Timestamp)
			}
		}
	})
	t.Run("A scalar comes back as a scalar.", func(t *testing.T) {
		val, _, _, err := promAPI.Query(ctx, "scalar(count(carpool_sync_lag_seconds))", at)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := val.(*model.Scalar); !ok || s.Value != 6 {
			t.Errorf("got %v (%T), want the scalar 6 (3 regions × 2 sources)", val, val)
		}
	})
	t.Run("A range query gives a matrix with one point per step.", func(t *testing.T) {
		spike, _ := sc.Phase(sourcetest.PhaseSpike)
		val, _, _, err := promAPI.QueryRange(ctx, `carpool:request_duration_seconds:p99_rate1m{region="sh-a"}`,
			v1.Range{Start: spike.From.Add(-time.Minute), End: spike.To, Step: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		m, ok := val.(model.Matrix)
		if !ok || len(m) != 1 || len(m[0].Values) != 9 {
			t.Fatalf("got %v, want one series of 9 points", val)
		}
		if m[0].Values[0].Value != 0.12 || m[0].Values[2].Value != 0.45 || m[0].Values[8].Value != 0.12 {
			t.Errorf("points %v: want 0.12 before the spike, 0.45 in it, 0.12 after", m[0].Values)
		}
	})
	t.Run("Label names and values list what the scenario wrote.", func(t *testing.T) {
		names, _, _, err := promAPI.LabelNames(ctx, nil, sc.Start(), sc.End())
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []model.LabelName{"__name__", "region", "slo", "service", "target_region", "le"} {
			if !slices.Contains(names, want) {
				t.Errorf("label names %v lack %s", names, want)
			}
		}
		values, _, _, err := promAPI.LabelValues(ctx, "region", nil, sc.Start(), sc.End())
		if err != nil {
			t.Fatal(err)
		}
		if want := (model.LabelValues{"bj-a", "global", "sh-a", "sh-b"}); !slices.Equal(values, want) {
			t.Errorf("region values %v, want %v", values, want)
		}
		values, _, _, err = promAPI.LabelValues(ctx, "region", []string{catalog.StreamLagMessages.Name}, sc.Start(), sc.End())
		if err != nil {
			t.Fatal(err)
		}
		if len(values) != 3 {
			t.Errorf("region values of %s: %v, want the 3 regions", catalog.StreamLagMessages.Name, values)
		}
	})
	t.Run("Series lists the series a matcher selects, within start and end.", func(t *testing.T) {
		series, _, _, err := promAPI.Series(ctx, []string{`carpool_sync_lag_seconds{target_region="sh-a"}`}, sc.Start(), sc.End())
		if err != nil {
			t.Fatal(err)
		}
		if len(series) != 2 {
			t.Errorf("got %v, want the 2 pairs into sh-a", series)
		}
		series, _, _, err = promAPI.Series(ctx, []string{"carpool_sync_lag_seconds"}, sc.End().Add(time.Hour), sc.End().Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(series) != 0 {
			t.Errorf("an hour after the scenario: %v, want none", series)
		}
	})
	t.Run("Buildinfo says which Prometheus answers.", func(t *testing.T) {
		bi, err := promAPI.Buildinfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if bi.Version != PrometheusVersion || bi.GoVersion == "" {
			t.Errorf("buildinfo %+v", bi)
		}
	})
	t.Run("A bad query is a 400 with Prometheus' bad_data error.", func(t *testing.T) {
		_, _, _, err := promAPI.Query(ctx, "sum(rate(", at)
		var apiErr *v1.Error
		if !errors.As(err, &apiErr) || apiErr.Type != v1.ErrBadData || !strings.Contains(apiErr.Msg, "parse error") {
			t.Errorf("got %v, want a bad_data parse error", err)
		}
	})
	t.Run("The source client reads the API as the store answers directly.", func(t *testing.T) {
		q, err := source.NewHTTP(source.HTTPConfig{URL: strings.TrimSuffix(promAPIURL(t, st), "/")})
		if err != nil {
			t.Fatal(err)
		}
		for _, eq := range sourcetest.EngineQueries(loadSpec(t)) {
			seen := false
			for _, at := range sc.QueryTimes(2*time.Minute, time.Minute) {
				direct, err := st.Query(ctx, eq.Expr, at)
				if err != nil {
					t.Fatalf("%s: %v", eq.Name, err)
				}
				seen = seen || len(direct) > 0
				viaHTTP, err := q.Query(ctx, eq.Expr, at)
				if err != nil {
					t.Fatalf("%s: %v", eq.Name, err)
				}
				if d := sourcetest.Diff(direct, viaHTTP, 0); d != "" {
					t.Errorf("%s at %s: over HTTP vs direct:\n%s", eq.Name, at, d)
				}
			}
			if !seen {
				t.Errorf("%s: %s is empty all through the scenario", eq.Name, eq.Expr)
			}
		}
	})
}

// promAPIURL serves st's handler and returns its URL.
func promAPIURL(t *testing.T, st *Store) string {
	srv := httptest.NewServer(st.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestTheAPIKeepsPrometheusWireFormat(t *testing.T) {
	t.Parallel()
	_, sc, srv, _ := scenarioStore(t)
	get := func(t *testing.T, path string, params url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path + "?" + params.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: %s is not JSON: %v", path, body, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
		return resp.StatusCode, m
	}
	at := model.TimeFromUnixNano(sc.End().UnixNano()).String()
	cases := map[string]struct {
		path   string
		params url.Values
		code   int
		want   func(t *testing.T, m map[string]any)
	}{
		"A vector is {status: success, data: {resultType: vector, result: [{metric, value: [t, \"v\"]}]}}.": {
			"/api/v1/query", url.Values{"query": {`carpool_config_consistent{source="gateway"}`}, "time": {at}}, 200,
			func(t *testing.T, m map[string]any) {
				data := m["data"].(map[string]any)
				res := data["result"].([]any)
				if m["status"] != "success" || data["resultType"] != "vector" || len(res) != 1 {
					t.Fatalf("%v", m)
				}
				value := res[0].(map[string]any)["value"].([]any)
				if _, ok := value[0].(float64); !ok || value[1] != "1" {
					t.Errorf("value %v, want [unix seconds, \"1\"]", value)
				}
			}},
		"A parse error is {status: error, errorType: bad_data, error} with 400.": {
			"/api/v1/query", url.Values{"query": {"max by ("}}, 400,
			func(t *testing.T, m map[string]any) {
				if m["status"] != "error" || m["errorType"] != "bad_data" || !strings.Contains(m["error"].(string), "parse error") {
					t.Errorf("%v", m)
				}
			}},
		"A range query without a step is bad_data.": {
			"/api/v1/query_range", url.Values{"query": {"up"}, "start": {"1"}, "end": {"2"}}, 400,
			func(t *testing.T, m map[string]any) {
				if m["errorType"] != "bad_data" {
					t.Errorf("%v", m)
				}
			}},
		"Series without match[] is bad_data.": {
			"/api/v1/series", url.Values{}, 400,
			func(t *testing.T, m map[string]any) {
				if m["errorType"] != "bad_data" {
					t.Errorf("%v", m)
				}
			}},
		"Label values is a list of strings.": {
			"/api/v1/label/slo/values", url.Values{}, 200,
			func(t *testing.T, m map[string]any) {
				if got := m["data"].([]any); len(got) != 2 || got[0] != "availability" || got[1] != "latency" {
					t.Errorf("%v", m)
				}
			}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			code, m := get(t, c.path, c.params)
			if code != c.code {
				t.Errorf("status %d, want %d: %v", code, c.code, m)
			}
			c.want(t, m)
		})
	}
	t.Run("Grafana's other read-only asks answer success.", func(t *testing.T) {
		for _, p := range []string{"/api/v1/metadata", "/api/v1/rules", "/api/v1/alerts", "/api/v1/query_exemplars?query=up&start=1&end=2"} {
			resp, err := http.Get(srv.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			err = json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || m["status"] != "success" {
				t.Errorf("%s: %s %v %v", p, resp.Status, m, err)
			}
		}
	})
	t.Run("Paths outside the subset are 404.", func(t *testing.T) {
		for _, p := range []string{"/api/v1/targets", "/api/v1/admin/tsdb/delete_series", "/api/v1/write", "/graph", "/api/v1/status/config"} {
			resp, err := http.Get(srv.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %s, want 404", p, resp.Status)
			}
		}
	})
}

func TestReadyWhileRunningAndAnsweringWhileOpen(t *testing.T) {
	t.Parallel()
	st, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st.Handler())
	defer srv.Close()
	status := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/-/ready"); got != http.StatusServiceUnavailable {
		t.Errorf("before Run: /-/ready %d, want 503", got)
	}
	if got := status("/api/v1/query?query=1"); got != http.StatusOK {
		t.Errorf("before Run: a query got %d, want 200 (the TSDB is open)", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	waitFor(t, 10*time.Second, "ready", func() (bool, error) { return status("/-/ready") == http.StatusOK, nil })
	if got := status("/api/v1/query?query=1"); got != http.StatusOK {
		t.Errorf("running: a query got %d, want 200", got)
	}
	if err := st.Run(ctx); err == nil {
		t.Error("a second Run did not fail")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if got := status("/-/ready"); got != http.StatusServiceUnavailable {
		t.Errorf("after Run: /-/ready %d, want 503", got)
	}
	if got := status("/-/healthy"); got != http.StatusOK {
		t.Errorf("/-/healthy %d, want 200", got)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if got := status("/api/v1/query?query=1"); got != http.StatusServiceUnavailable {
		t.Errorf("after Close: a query got %d, want 503", got)
	}
	if err := st.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	if err := st.Run(context.Background()); err == nil {
		t.Error("Run after Close did not fail")
	}
}

func TestPrometheusVersionMatchesTheModule(t *testing.T) {
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/prometheus/prometheus v0\.(\d)(\d\d)\.(\d+)\b`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod does not require github.com/prometheus/prometheus v0.x")
	}
	// v0.316.0 is Prometheus 3.16.0.
	minor, _ := strconv.Atoi(string(m[2]))
	if want := fmt.Sprintf("%s.%d.%s", m[1], minor, m[3]); want != PrometheusVersion {
		t.Errorf("go.mod's module is Prometheus %s; PrometheusVersion says %s", want, PrometheusVersion)
	}
}
