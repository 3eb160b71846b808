package routing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// waitFor is how long the server test waits for any one thing.
const waitFor = 8 * time.Second

// TestAlertmanagerServesTheConfig starts the real prometheus-alertmanager
// with the generated configuration, checks it loaded what was generated,
// then posts alerts and watches them arrive at local stand-ins for
// PagerDuty and the two webhooks: each tier at its receiver, the PagerDuty
// event carrying the key read from the file and the rendered details, a
// resolve with the trigger's dedup_key, and an inhibited alert suppressed.
// Only the group timings are shortened from the spec, so that notifications
// come within the test.
func TestAlertmanagerServesTheConfig(t *testing.T) {
	bin := lookTool(t, "prometheus-alertmanager")
	hooks := newRecorder(t)
	s := withKeyFile(t, loadSpec(t))
	r := &s.Alerting.Receivers
	r.PagerDuty.URL = hooks.URL + "/v2/enqueue"
	r.Chat.URL = hooks.URL + "/chat"
	r.Ticket.URL = hooks.URL + "/ticket"
	s.Alerting.Grouping.GroupWait = spec.Duration(200 * time.Millisecond)
	s.Alerting.Grouping.GroupInterval = spec.Duration(time.Second)
	data, err := Config(s)
	if err != nil {
		t.Fatal(err)
	}
	am := startAlertmanager(t, bin, writeFile(t, "alertmanager.yml", data))

	t.Run("The server reports the generated routing tree, inhibitions and receivers as loaded.", func(t *testing.T) {
		var status struct {
			Config struct {
				Original string `json:"original"`
			} `json:"config"`
			VersionInfo struct {
				Version string `json:"version"`
			} `json:"versionInfo"`
		}
		am.get(t, "/api/v2/status", &status)
		t.Logf("prometheus-alertmanager %s", status.VersionInfo.Version)
		var loaded struct {
			Route struct {
				Receiver string    `yaml:"receiver"`
				GroupBy  []string  `yaml:"group_by"`
				Routes   []amRoute `yaml:"routes"`
			} `yaml:"route"`
			InhibitRules []amInhibitRule `yaml:"inhibit_rules"`
			Receivers    []struct {
				Name      string `yaml:"name"`
				PagerDuty []struct {
					RoutingKeyFile string `yaml:"routing_key_file"`
					URL            string `yaml:"url"`
				} `yaml:"pagerduty_configs"`
			} `yaml:"receivers"`
		}
		if err := yaml.Unmarshal([]byte(status.Config.Original), &loaded); err != nil {
			t.Fatalf("reading the loaded configuration: %v\n%s", err, status.Config.Original)
		}
		want := build(s)
		if loaded.Route.Receiver != want.Route.Receiver || !slices.Equal(loaded.Route.GroupBy, want.Route.GroupBy) {
			t.Errorf("root route: receiver %q group_by %v, want %q %v", loaded.Route.Receiver, loaded.Route.GroupBy, want.Route.Receiver, want.Route.GroupBy)
		}
		if len(loaded.Route.Routes) != len(want.Route.Routes) {
			t.Fatalf("%d child routes loaded, want %d", len(loaded.Route.Routes), len(want.Route.Routes))
		}
		for i, got := range loaded.Route.Routes {
			if got.Receiver != want.Route.Routes[i].Receiver || !slices.Equal(got.Matchers, want.Route.Routes[i].Matchers) {
				t.Errorf("route %d: %v → %s, want %v → %s", i, got.Matchers, got.Receiver, want.Route.Routes[i].Matchers, want.Route.Routes[i].Receiver)
			}
		}
		for i, got := range loaded.InhibitRules {
			if i >= len(want.InhibitRules) || !slices.Equal(got.SourceMatchers, want.InhibitRules[i].SourceMatchers) ||
				!slices.Equal(got.TargetMatchers, want.InhibitRules[i].TargetMatchers) || !slices.Equal(got.Equal, want.InhibitRules[i].Equal) {
				t.Errorf("inhibit rule %d loaded as %+v", i, got)
			}
		}
		if len(loaded.InhibitRules) != len(want.InhibitRules) {
			t.Errorf("%d inhibit rules loaded, want %d", len(loaded.InhibitRules), len(want.InhibitRules))
		}
		var names []string
		for _, rc := range loaded.Receivers {
			names = append(names, rc.Name)
			if rc.Name == catalog.ReceiverPagerDuty && (len(rc.PagerDuty) != 1 || rc.PagerDuty[0].RoutingKeyFile != r.PagerDuty.RoutingKeyFile || rc.PagerDuty[0].URL != r.PagerDuty.URL) {
				t.Errorf("pagerduty loaded as %+v, want routing_key_file %s and url %s", rc.PagerDuty, r.PagerDuty.RoutingKeyFile, r.PagerDuty.URL)
			}
		}
		if want := []string{"pagerduty", "chat", "ticket"}; !slices.Equal(names, want) {
			t.Errorf("receivers %v loaded, want %v", names, want)
		}
		if strings.Contains(status.Config.Original, testRoutingKey) {
			t.Error("the server's status shows the routing key value")
		}
	})

	runbook := s.Alerting.RunbookBaseURL + "/" + catalog.AlertSyncLag.Name + ".md"
	syncLag := alertOf(s, catalog.AlertSyncLag, "sh-a", runbook)
	down := alertOf(s, catalog.AlertRegionDown, "bj-a", "")
	am.post(t, syncLag, down,
		alertOf(s, catalog.AlertErrorRate, "sh-b", ""),
		alertOf(s, catalog.AlertCompositeBreached, "sh-b", ""))

	t.Run("An alert inhibited by RegionDown in its region is suppressed by the server.", func(t *testing.T) {
		am.waitAlert(t, catalog.AlertRegionDown.Name, func(a apiAlert) bool { return a.Status.State == "active" })
		am.post(t, alertOf(s, catalog.AlertHealthLow, "bj-a", ""), alertOf(s, catalog.AlertHealthLow, "sh-b", ""))
		am.waitAlert(t, catalog.AlertHealthLow.Name, func(a apiAlert) bool {
			return a.Labels["region"] == "bj-a" && a.Status.State == "suppressed" && len(a.Status.InhibitedBy) == 1
		})
		am.waitAlert(t, catalog.AlertHealthLow.Name, func(a apiAlert) bool {
			return a.Labels["region"] == "sh-b" && a.Status.State == "active"
		})
	})

	var trigger post
	t.Run("A P0 alert reaches PagerDuty with the key from the file, severity critical and rendered details.", func(t *testing.T) {
		trigger = hooks.wait(t, "a PagerDuty trigger for SyncLagHigh", func(p post) bool {
			return p.Path == "/v2/enqueue" && p.EventAction == "trigger" && p.Payload.CustomDetails["alertname"] == catalog.AlertSyncLag.Name
		})
		if trigger.RoutingKey != testRoutingKey {
			t.Errorf("routing_key is %q, want the file's content %q", trigger.RoutingKey, testRoutingKey)
		}
		d := trigger.Payload.CustomDetails
		for k, want := range map[string]string{
			"runbook": runbook, "region": "sh-a", "service": catalog.Replication, "slo": catalog.AlertSyncLag.SLO,
			"tier": "P0", "team": s.Metadata.Team, "summary": catalog.AlertSyncLag.Summary,
		} {
			if d[k] != want {
				t.Errorf("custom_details.%s is %q, want %q", k, d[k], want)
			}
		}
		if trigger.Payload.Severity != "critical" || trigger.Payload.Component != catalog.Replication || trigger.Payload.Group != "sh-a" {
			t.Errorf("payload severity/component/group are %q/%q/%q", trigger.Payload.Severity, trigger.Payload.Component, trigger.Payload.Group)
		}
		want := "[P0] SyncLagHigh replication/sync_lag in sh-a: " + catalog.AlertSyncLag.Summary
		if trigger.Payload.Summary != want {
			t.Errorf("summary is %q, want %q", trigger.Payload.Summary, want)
		}
		hooks.wait(t, "a PagerDuty trigger for RegionDown", func(p post) bool {
			return p.Path == "/v2/enqueue" && p.EventAction == "trigger" && p.Payload.CustomDetails["alertname"] == catalog.AlertRegionDown.Name
		})
	})
	t.Run("A P1 alert reaches the chat webhook.", func(t *testing.T) {
		hooks.wait(t, "RegionErrorRateHigh at /chat", firing("/chat", catalog.AlertErrorRate.Name, "sh-b"))
	})
	t.Run("A P2 alert reaches the ticket webhook.", func(t *testing.T) {
		hooks.wait(t, "CompositeSLABreached at /ticket", firing("/ticket", catalog.AlertCompositeBreached.Name, "sh-b"))
		hooks.wait(t, "RegionHealthLow of sh-b at /ticket", firing("/ticket", catalog.AlertHealthLow.Name, "sh-b"))
	})
	t.Run("A resolved P0 alert resolves the PagerDuty incident it opened.", func(t *testing.T) {
		if trigger.DedupKey == "" {
			t.Fatal("no trigger was seen")
		}
		resolved := syncLag
		resolved.EndsAt = time.Now().UTC().Format(time.RFC3339Nano)
		am.post(t, resolved)
		hooks.wait(t, "a PagerDuty resolve with the trigger's dedup_key", func(p post) bool {
			return p.Path == "/v2/enqueue" && p.EventAction == "resolve" && p.DedupKey == trigger.DedupKey
		})
	})
	t.Run("The inhibited alert never reached any receiver.", func(t *testing.T) {
		for _, p := range hooks.all() {
			for _, a := range p.Alerts {
				if a.Labels["alertname"] == catalog.AlertHealthLow.Name && a.Labels["region"] == "bj-a" {
					t.Errorf("%s received the inhibited RegionHealthLow of bj-a", p.Path)
				}
			}
		}
	})
}

// alertOf returns a postable alert labelled as the rule generator labels a.
func alertOf(s *spec.Spec, a catalog.Alert, region, runbook string) postableAlert {
	service, slo := a.Service, a.SLO
	if service == "" {
		service, slo = s.Services[0].Name, s.Services[0].SLOs[0].Name
	}
	return postableAlert{
		Labels: map[string]string{
			"alertname": a.Name, catalog.AlertLabelTier: string(a.Tier), catalog.AlertLabelSeverity: a.Tier.Severity(),
			catalog.AlertLabelTeam: s.Metadata.Team, catalog.AlertLabelRegion: region,
			catalog.AlertLabelService: service, catalog.AlertLabelSLO: slo,
		},
		Annotations: map[string]string{catalog.AnnotationSummary: a.Summary, catalog.AnnotationRunbook: runbook},
	}
}

func firing(path, alertname, region string) func(post) bool {
	return func(p post) bool {
		return p.Path == path && p.Status == "firing" && slices.ContainsFunc(p.Alerts, func(a hookAlert) bool {
			return a.Labels["alertname"] == alertname && a.Labels["region"] == region
		})
	}
}

// postableAlert is an alert in Alertmanager's API v2 POST /api/v2/alerts.
type postableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	EndsAt      string            `json:"endsAt,omitempty"`
}

// apiAlert is an alert in Alertmanager's API v2 GET /api/v2/alerts.
type apiAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

// alertmanager is a running prometheus-alertmanager.
type alertmanager struct {
	base   string
	client *http.Client
}

// startAlertmanager starts bin with cfgFile on a free local port, waits
// until it is ready and stops it with SIGTERM when the test ends.
func startAlertmanager(t *testing.T, bin, cfgFile string) *alertmanager {
	t.Helper()
	dir := t.TempDir() // before the stop cleanup, so it is removed after the process is gone
	addr := "127.0.0.1:" + freePort(t)
	logFile := filepath.Join(dir, "alertmanager.log")
	logw, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	logs := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	t.Cleanup(func() {
		defer logw.Close()
		select {
		case <-exited:
			t.Errorf("prometheus-alertmanager exited early: %v\n%s", waitErr, logs())
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("prometheus-alertmanager did not stop within 5s of SIGTERM\n%s", logs())
		}
	})

	am := &alertmanager{base: "http://" + addr, client: &http.Client{Timeout: time.Second}}
	deadline := time.Now().Add(waitFor)
	for {
		select {
		case <-exited:
			t.Fatalf("prometheus-alertmanager exited before it was ready: %v\n%s", waitErr, logs())
		default:
		}
		resp, err := am.client.Get(am.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return am
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus-alertmanager not ready at %s/-/ready within %s (last: %v)\n%s", am.base, waitFor, err, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func (am *alertmanager) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := am.client.Get(am.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: decoding: %v\n%s", path, err, body)
	}
}

func (am *alertmanager) post(t *testing.T, alerts ...postableAlert) {
	t.Helper()
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := am.client.Post(am.base+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /api/v2/alerts: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /api/v2/alerts: %s\n%s", resp.Status, b)
	}
}

// waitAlert polls the alerts named alertname until one satisfies ok.
func (am *alertmanager) waitAlert(t *testing.T, alertname string, ok func(apiAlert) bool) {
	t.Helper()
	path := "/api/v2/alerts?filter=" + url.QueryEscape(fmt.Sprintf("alertname=%q", alertname))
	var alerts []apiAlert
	for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		alerts = nil
		am.get(t, path, &alerts)
		if slices.ContainsFunc(alerts, ok) {
			return
		}
	}
	t.Fatalf("no %s alert in the expected state within %s; the server has %+v", alertname, waitFor, alerts)
}

// post is a notification received from Alertmanager: a PagerDuty Events v2
// event or a webhook message.
type post struct {
	Path string `json:"-"`

	RoutingKey  string `json:"routing_key"`
	DedupKey    string `json:"dedup_key"`
	EventAction string `json:"event_action"`
	Payload     struct {
		Summary       string            `json:"summary"`
		Severity      string            `json:"severity"`
		Component     string            `json:"component"`
		Group         string            `json:"group"`
		Class         string            `json:"class"`
		CustomDetails map[string]string `json:"custom_details"`
	} `json:"payload"`

	Status string      `json:"status"`
	Alerts []hookAlert `json:"alerts"`
}

type hookAlert struct {
	Status string            `json:"status"`
	Labels map[string]string `json:"labels"`
}

// recorder stands in for PagerDuty (/v2/enqueue) and the chat and ticket
// webhooks, recording what it receives.
type recorder struct {
	URL   string
	mu    sync.Mutex
	posts []post
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p post
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.Path = r.URL.Path
		rec.mu.Lock()
		rec.posts = append(rec.posts, p)
		rec.mu.Unlock()
		if p.Path == "/v2/enqueue" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": p.DedupKey})
		}
	}))
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

func (rec *recorder) all() []post {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.posts)
}

// wait returns the first recorded post that satisfies ok, waiting for it.
func (rec *recorder) wait(t *testing.T, what string, ok func(post) bool) post {
	t.Helper()
	for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ps := rec.all()
		if i := slices.IndexFunc(ps, ok); i >= 0 {
			return ps[i]
		}
	}
	t.Fatalf("no %s within %s; received %+v", what, waitFor, rec.all())
	return post{}
}
