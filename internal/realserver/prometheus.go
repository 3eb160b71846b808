package realserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// PrometheusOptions says what a Prometheus started by StartPrometheus runs.
type PrometheusOptions struct {
	// Config is the prometheus.yml. Before it is written, "{{DIR}}" in it becomes the server's folder
	// (where Files are) and "{{ADDR}}" Prometheus' own host:port, known only once the port is chosen.
	// Empty: scrape Prometheus itself every second.
	Config []byte
	// Files are written into the server's folder before Prometheus starts, such as rule files the
	// config lists as "{{DIR}}/rules.yml". Names are relative; sub-folders are created.
	Files map[string][]byte
	// Args are extra command-line flags.
	Args []string
}

// defaultPrometheusConfig scrapes Prometheus itself.
const defaultPrometheusConfig = `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['{{ADDR}}']
`

// Prometheus is a Prometheus server started for one test.
type Prometheus struct {
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port
	Dir  string // prometheus.yml, the Files, the TSDB (data/) and prometheus.log

	proc *process
}

// StartPrometheus starts Prometheus on a free 127.0.0.1 port with its TSDB in a t.TempDir folder,
// the lifecycle API on (for Reload) and --rules.alert.resend-delay=1s (or firing alerts reach
// Alertmanager only after a minute). It returns once /-/ready answers; the test's cleanup stops it.
//
// Prometheus 2.42 hands targets from its config to scraping and alerting ~5 s after start (its discovery
// manager passes updates on every 5 s): the first scrape, and the first alert sent to Alertmanager,
// come no sooner. Rules are evaluated from the start.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin := Binary(t, "prometheus")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	cfg := opts.Config
	if len(cfg) == 0 {
		cfg = []byte(defaultPrometheusConfig)
	}
	cfg = bytes.ReplaceAll(cfg, []byte("{{DIR}}"), []byte(dir))
	cfg = bytes.ReplaceAll(cfg, []byte("{{ADDR}}"), []byte(addr))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	if err := writeFiles(dir, opts.Files); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	args := append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--web.enable-lifecycle",
		"--rules.alert.resend-delay=1s",
	}, opts.Args...)
	p := &Prometheus{URL: "http://" + addr, Addr: addr, Dir: dir}
	p.proc = start(t, "prometheus", dir, bin, args...)
	p.proc.waitReady(t, func() error { return httpOK(p.URL + "/-/ready") })
	return p
}

// Reload makes Prometheus read its config and rule files again (POST /-/reload), failing the test
// when it rejects them.
func (p *Prometheus) Reload(t testing.TB) {
	t.Helper()
	resp, err := httpClient.Post(p.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatalf("reloading prometheus: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reloading prometheus: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
}

// Query evaluates an instant PromQL query now and returns its samples (a scalar comes back as one
// sample without labels). An error, such as a syntax error, fails the test.
func (p *Prometheus) Query(t testing.TB, promql string) []Sample {
	t.Helper()
	samples, err := query(p.URL, promql)
	if err != nil {
		t.Fatalf("querying prometheus: %v", err)
	}
	return samples
}

// Sample is one element of an instant query's result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant query against the Prometheus HTTP API at baseURL (Prometheus and
// VictoriaMetrics speak it alike).
func query(baseURL, promql string) ([]Sample, error) {
	u := baseURL + "/api/v1/query?" + url.Values{"query": {promql}}.Encode()
	resp, err := httpClient.Get(u)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", promql, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", promql, err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: %s: %w: %.200s", promql, resp.Status, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s: %s", promql, resp.Status, r.Error)
	}
	switch r.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vec); err != nil {
			return nil, fmt.Errorf("query %q: decoding the vector: %w", promql, err)
		}
		samples := make([]Sample, 0, len(vec))
		for _, s := range vec {
			v, err := sampleValue(s.Value)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", promql, err)
			}
			samples = append(samples, Sample{Metric: s.Metric, Value: v})
		}
		return samples, nil
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(r.Data.Result, &s); err != nil {
			return nil, fmt.Errorf("query %q: decoding the scalar: %w", promql, err)
		}
		v, err := sampleValue(s)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", promql, err)
		}
		return []Sample{{Metric: map[string]string{}, Value: v}}, nil
	default:
		return nil, fmt.Errorf("query %q: result type %q is neither vector nor scalar", promql, r.Data.ResultType)
	}
}

// sampleValue reads the value of a [time, "value"] pair.
func sampleValue(pair [2]any) (float64, error) {
	s, ok := pair[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", pair[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value: %w", err)
	}
	return v, nil
}
