package alerts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/carpoolsla/carpoolsla/alerts"
	"github.com/carpoolsla/carpoolsla/alerts/routing"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// recorder is a receiver on 127.0.0.1 that keeps every JSON body it gets.
type recorder struct {
	mu     sync.Mutex
	bodies []map[string]any
	srv    *httptest.Server
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, m)
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"success","message":"Event processed"}`))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) all() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.bodies...)
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

// TestEndToEndPagesAndResolves runs the generated rules in a real Prometheus
// 2.42 that scrapes a target breaking an SLO and pushing sync lag past 5 s,
// and the generated routing in a real Alertmanager 0.25. PagerDuty (Events
// v2) and the chat webhook are receivers on 127.0.0.1 run by the test.
func TestEndToEndPagesAndResolves(t *testing.T) {
	s, err := spec.Load("../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Seconds instead of hours, so the test runs in under a minute; the
	// rules' shape is the shipped one.
	sec := func(n int) spec.Duration { return spec.Duration(time.Duration(n) * time.Second) }
	s.Alerting.BurnRates = spec.BurnRates{
		Page:   []spec.BurnWindow{{Factor: 14.4, Long: sec(20), Short: sec(10)}},
		Ticket: []spec.BurnWindow{{Factor: 1, Long: sec(40), Short: sec(20)}},
	}
	s.Alerting.SyncLag.For = sec(1)
	s.Alerting.ErrorRate.For = sec(2)
	s.Alerting.Grouping.GroupWait = sec(1)
	s.Alerting.Grouping.GroupInterval = sec(2)
	pd, chat, ticket := newRecorder(t), newRecorder(t), newRecorder(t)
	keyDir := t.TempDir()
	const routingKey = "e2e-routing-key-0123456789abcdef"
	if err := os.WriteFile(keyDir+"/pd-key", []byte(routingKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Alerting.Receivers.PagerDuty = spec.PagerDuty{RoutingKeyFile: keyDir + "/pd-key", URL: pd.srv.URL + "/v2/enqueue"}
	s.Alerting.Receivers.Chat.URL = chat.srv.URL + "/chat"
	s.Alerting.Receivers.Ticket.URL = ticket.srv.URL + "/ticket"
	if err := s.Validate(); err != nil {
		t.Fatalf("the test spec is invalid: %v", err)
	}
	set, err := alerts.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := set.RulesYAML(s)
	if err != nil {
		t.Fatal(err)
	}
	amConfig, err := routing.Config(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(amConfig), routingKey) {
		t.Fatal("the routing key leaked into the generated Alertmanager config")
	}

	// The target: one region failing half its ride requests, and sync lag
	// sh-a→sh-b at 12 s; recover() heals both.
	reg := prometheus.NewRegistry()
	reqs := telemetry.NewHistogramVec(catalog.RequestDuration)
	lag := telemetry.NewGaugeVec(catalog.SyncLag)
	reg.MustRegister(reqs, lag)
	var healthy atomic.Bool
	lag.WithLabelValues("sh-a", "sh-b").Set(12)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() { // bounded by ctx
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			code, outcome := "200", catalog.OutcomeOK
			if !healthy.Load() && i%2 == 0 {
				code, outcome = "500", catalog.OutcomeError
			}
			reqs.WithLabelValues("sh-a", "order", "create_ride", code, outcome).Observe(0.05)
		}
	}()
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()

	am := realserver.StartAlertmanager(t, amConfig, nil)
	prom := realserver.StartPrometheus(t, realserver.PrometheusOptions{
		Config: fmt.Appendf(nil, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ['{{DIR}}/rules.yml']
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['%s']
scrape_configs:
  - job_name: carpool-e2e
    static_configs:
      - targets: ['%s']
`, am.Addr, strings.TrimPrefix(target.URL, "http://")),
		Files: map[string][]byte{"rules.yml": rules},
	})
	_ = prom

	isSyncLag := func(b map[string]any) bool {
		return str(b, "payload", "custom_details", "alertname") == catalog.AlertSyncLag.Name
	}
	var trigger map[string]any
	realserver.WaitFor(t, 60*time.Second, "a PagerDuty trigger for SyncLagHigh", func() (bool, error) {
		for _, b := range pd.all() {
			if isSyncLag(b) && str(b, "event_action") == "trigger" {
				trigger = b
				return true, nil
			}
		}
		return false, fmt.Errorf("PagerDuty got %d events", len(pd.all()))
	})
	if got := str(trigger, "routing_key"); got != routingKey {
		t.Errorf("routing_key = %q, want the key from the file", got)
	}
	if got := str(trigger, "payload", "severity"); got != "critical" {
		t.Errorf("severity = %q, want critical", got)
	}
	dedup := str(trigger, "dedup_key")
	if dedup == "" {
		t.Fatal("the trigger has no dedup_key")
	}
	realserver.WaitFor(t, 30*time.Second, "the P1 RegionErrorRateHigh on the chat webhook", func() (bool, error) {
		for _, b := range chat.all() {
			if str(b, "commonLabels", "alertname") == catalog.AlertErrorRate.Name {
				return true, nil
			}
		}
		return false, nil
	})

	// Recover: lag back under a second, no more errors.
	lag.WithLabelValues("sh-a", "sh-b").Set(0.4)
	healthy.Store(true)
	realserver.WaitFor(t, 60*time.Second, "a PagerDuty resolve with the trigger's dedup_key", func() (bool, error) {
		for _, b := range pd.all() {
			if isSyncLag(b) && str(b, "event_action") == "resolve" {
				if got := str(b, "dedup_key"); got != dedup {
					return false, fmt.Errorf("resolve dedup_key %q, trigger's %q", got, dedup)
				}
				return true, nil
			}
		}
		return false, nil
	})
	for _, b := range chat.all() {
		if str(b, "commonLabels", "tier") != string(catalog.P1) || str(b, "commonLabels", "alertname") != catalog.AlertErrorRate.Name {
			t.Errorf("the chat webhook got something other than the P1 alert: %v", b["commonLabels"])
		}
	}
	for _, b := range pd.all() {
		if tier := str(b, "payload", "custom_details", "tier"); tier != string(catalog.P0) {
			t.Errorf("PagerDuty got a %s alert: %v", tier, b["payload"])
		}
	}
}
