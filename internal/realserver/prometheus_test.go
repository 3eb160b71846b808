package realserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestStartPrometheus(t *testing.T) {
	t.Parallel()
	var p *Prometheus
	t.Run("server", func(t *testing.T) {
		p = StartPrometheus(t, PrometheusOptions{})

		WaitFor(t, 10*time.Second, "Prometheus to scrape itself", func() (bool, error) {
			up := p.Query(t, `up{job="prometheus"}`)
			return len(up) == 1 && up[0].Value == 1 && up[0].Metric["instance"] == p.Addr, nil
		})
		if got := p.Query(t, "1 + 1"); len(got) != 1 || got[0].Value != 2 {
			t.Errorf("scalar query 1 + 1 = %v", got)
		}
		msg := failure(t, func(tb testing.TB) { p.Query(tb, "rate(") })
		if !strings.HasPrefix(msg, `querying prometheus: query "rate(": 400 Bad Request: `) {
			t.Errorf("a bad query failed with %q", msg)
		}

		// A rule file added later shows after Reload; a broken config is refused.
		cfg, err := os.ReadFile(filepath.Join(p.Dir, "prometheus.yml"))
		if err != nil {
			t.Fatal(err)
		}
		write := func(name, content string) {
			t.Helper()
			if err := os.WriteFile(filepath.Join(p.Dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("rules.yml", "groups:\n  - name: g\n    rules:\n      - record: answer\n        expr: vector(42)\n")
		write("prometheus.yml", string(cfg)+"rule_files: ['"+p.Dir+"/rules.yml']\n")
		p.Reload(t)
		WaitFor(t, 10*time.Second, "the reloaded recording rule", func() (bool, error) {
			got := p.Query(t, "answer")
			return len(got) == 1 && got[0].Value == 42, nil
		})
		write("prometheus.yml", "scrape_configs: [")
		if msg := failure(t, func(tb testing.TB) { p.Reload(tb) }); !strings.HasPrefix(msg, "reloading prometheus: 500 Internal Server Error: ") {
			t.Errorf("reloading a broken config failed with %q", msg)
		}
	})
	assertStopped(t, p.proc, p.URL+"/-/ready")
}

func TestStartPrometheusSubstitutesTheConfig(t *testing.T) {
	t.Parallel()
	p := StartPrometheus(t, PrometheusOptions{
		Config: []byte("global:\n  external_labels:\n    addr: '{{ADDR}}'\nrule_files: ['{{DIR}}/rules/*.yml']\n"),
		Files: map[string][]byte{
			"rules/a.yml": []byte("groups:\n  - name: a\n    rules:\n      - record: a\n        expr: vector(1)\n"),
		},
		Args: []string{"--query.lookback-delta=1m"},
	})
	var status struct {
		Data struct {
			YAML string `json:"yaml"`
		} `json:"data"`
	}
	getJSON(t, p.URL+"/api/v1/status/config", &status)
	for _, want := range []string{"addr: " + p.Addr, "- " + p.Dir + "/rules/*.yml"} {
		if !strings.Contains(status.Data.YAML, want) {
			t.Errorf("the loaded config\n%s\nlacks %q", status.Data.YAML, want)
		}
	}
	var flags struct {
		Data map[string]string `json:"data"`
	}
	getJSON(t, p.URL+"/api/v1/status/flags", &flags)
	for flag, want := range map[string]string{
		"query.lookback-delta":     "1m",
		"rules.alert.resend-delay": "1s",
		"web.enable-lifecycle":     "true",
		"storage.tsdb.path":        filepath.Join(p.Dir, "data"),
	} {
		if got := flags.Data[flag]; got != want {
			t.Errorf("--%s=%s, want %s", flag, got, want)
		}
	}
}

// TestPrometheusAlertsReachAlertmanager runs the whole alerting path: a rule fires in Prometheus, which
// sends the alert to Alertmanager, which posts it to a webhook.
func TestPrometheusAlertsReachAlertmanager(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		posted []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Status string `json:"status"`
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			t.Errorf("decoding the webhook: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, a := range msg.Alerts {
			posted = append(posted, msg.Status+" "+a.Labels["alertname"]+" "+a.Labels["severity"])
		}
	}))
	t.Cleanup(hook.Close)

	am := StartAlertmanager(t, []byte(`
route:
  receiver: hook
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: `+hook.URL+`
`), nil)
	StartPrometheus(t, PrometheusOptions{
		Config: []byte(`
global:
  evaluation_interval: 200ms
rule_files: ['{{DIR}}/alerts.yml']
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['` + am.Addr + `']
`),
		Files: map[string][]byte{"alerts.yml": []byte(`
groups:
  - name: test
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels:
          severity: page
`)},
	})
	WaitFor(t, 10*time.Second, "the alert at the webhook", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(posted) > 0, nil
	})
	mu.Lock()
	defer mu.Unlock()
	if posted[0] != "firing AlwaysFiring page" {
		t.Errorf("the webhook got %q", posted)
	}
}

// assertStopped checks that a server's process has exited and that readyURL no longer answers.
func assertStopped(t *testing.T, p *process, readyURL string) {
	t.Helper()
	select {
	case <-p.exited:
	default:
		t.Fatalf("%s still runs after its test's cleanup", p.name)
	}
	if err := httpOK(readyURL); err == nil {
		t.Errorf("%s still answers after its test's cleanup", readyURL)
	}
	// It stopped on SIGTERM, without the SIGKILL after stopTimeout. (nats-server exits 1 after a clean
	// shutdown, so the status itself says little.)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		t.Errorf("%s ended with %v, want an exit on SIGTERM", p.name, p.cmd.ProcessState)
	}
}

// getJSON decodes the JSON that GET url answers with into v.
func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
}
