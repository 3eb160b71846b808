package routing

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testRoutingKey is a routing key value no generated file may contain.
const testRoutingKey = "R0UTING-KEY-must-never-be-printed-7f3a"

// loadSpec loads the repository's spec, named as `carpoolsla generate`
// names it when run from the repository root.
func loadSpec(t *testing.T) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatalf("loading deploy/sla.yaml: %v", err)
	}
	s.File = "deploy/sla.yaml"
	return s
}

// withKeyFile returns a copy of s whose PagerDuty routing key file is a
// temporary file holding testRoutingKey, so that tools which may read it
// find it.
func withKeyFile(t *testing.T, s *spec.Spec) *spec.Spec {
	t.Helper()
	c := *s
	c.Alerting.Receivers.PagerDuty.RoutingKeyFile = filepath.Join(t.TempDir(), "pagerduty-routing-key")
	if err := os.WriteFile(c.Alerting.Receivers.PagerDuty.RoutingKeyFile, []byte(testRoutingKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &c
}

// mustConfig generates the configuration of s and loads it with
// Alertmanager's config.Load.
func mustConfig(t *testing.T, s *spec.Spec) ([]byte, *config.Config) {
	t.Helper()
	data, err := Config(s)
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	cfg, err := config.Load(string(data))
	if err != nil {
		t.Fatalf("config.Load of the generated configuration: %v\n%s", err, data)
	}
	return data, cfg
}

func TestConfigRoutesEachTierToItsReceiver(t *testing.T) {
	s := loadSpec(t)
	_, cfg := mustConfig(t, s)
	tree := dispatch.NewRoute(cfg.Route, nil)

	alert := func(a catalog.Alert, extra ...string) map[string]string {
		l := map[string]string{"alertname": a.Name, "tier": string(a.Tier), "severity": a.Tier.Severity(), "region": "sh-a"}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	tests := map[string]struct {
		labels map[string]string
		want   []string
	}{
		"A P0 alert (sync lag) pages through PagerDuty.":          {alert(catalog.AlertSyncLag), []string{"pagerduty"}},
		"A P0 alert (fast burn) pages through PagerDuty.":         {alert(catalog.AlertBurnFast, "service", "order", "slo", "availability"), []string{"pagerduty"}},
		"A P1 alert (error rate) goes to the chat webhook.":       {alert(catalog.AlertErrorRate), []string{"chat"}},
		"A P2 alert (health below floor) goes to the ticket.":     {alert(catalog.AlertHealthLow), []string{"ticket"}},
		"A P2 alert (slow burn) goes to the ticket.":              {alert(catalog.AlertBurnSlow, "service", "order", "slo", "availability"), []string{"ticket"}},
		"An alert with no tier falls back to the ticket.":         {map[string]string{"alertname": "Watchdog"}, []string{"ticket"}},
		"An alert with an unknown tier falls back to the ticket.": {alert(catalog.AlertHealthLow, "tier", "P9"), []string{"ticket"}},
		"The tier, not the severity, picks the receiver.":         {alert(catalog.AlertSyncLag, "severity", "info"), []string{"pagerduty"}},
		"Every tier reaches exactly one receiver (no continue).":  {alert(catalog.AlertRegionDown), []string{"pagerduty"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := receivers(tree, tc.labels); !slices.Equal(got, tc.want) {
				t.Errorf("labels %v reach %v, want %v", tc.labels, got, tc.want)
			}
		})
	}

	t.Run("The root route carries the spec's grouping and timings.", func(t *testing.T) {
		r := cfg.Route
		g := s.Alerting.Grouping
		if r.Receiver != catalog.ReceiverTicket {
			t.Errorf("root receiver is %q, want %q", r.Receiver, catalog.ReceiverTicket)
		}
		if !slices.Equal(r.GroupByStr, g.By) {
			t.Errorf("group_by is %v, want %v", r.GroupByStr, g.By)
		}
		for name, pair := range map[string][2]model.Duration{
			"group_wait":      {*r.GroupWait, model.Duration(g.GroupWait)},
			"group_interval":  {*r.GroupInterval, model.Duration(g.GroupInterval)},
			"repeat_interval": {*r.RepeatInterval, model.Duration(g.RepeatInterval)},
		} {
			if pair[0] != pair[1] {
				t.Errorf("%s is %s, want %s", name, pair[0], pair[1])
			}
		}
		if got := cfg.Global.ResolveTimeout; got != model.Duration(ResolveTimeout) {
			t.Errorf("resolve_timeout is %s, want %s", got, model.Duration(ResolveTimeout))
		}
	})

	t.Run("Every case of RouteTests holds in process.", func(t *testing.T) {
		for _, c := range RouteTests(s) {
			if got := receivers(tree, c.Labels); !slices.Equal(got, c.Want) {
				t.Errorf("%s: labels %v reach %v, want %v", c.Name, c.Labels, got, c.Want)
			}
		}
	})
}

func TestConfigReceivers(t *testing.T) {
	s := loadSpec(t)
	c := *s
	c.Alerting.Receivers.PagerDuty.URL = "http://127.0.0.1:9097/v2/enqueue"
	c.Alerting.Receivers.Ticket.CredentialsFile = "/etc/alertmanager/secrets/ticket-token"
	_, cfg := mustConfig(t, &c)
	byName := map[string]config.Receiver{}
	for _, r := range cfg.Receivers {
		byName[r.Name] = r
	}

	t.Run("PagerDuty reads its routing key from the spec's file and honours the spec's URL.", func(t *testing.T) {
		pd := byName["pagerduty"].PagerdutyConfigs
		if len(pd) != 1 {
			t.Fatalf("pagerduty has %d pagerduty_configs, want 1", len(pd))
		}
		p := pd[0]
		if p.RoutingKeyFile != c.Alerting.Receivers.PagerDuty.RoutingKeyFile || p.RoutingKey != "" || p.ServiceKey != "" || p.ServiceKeyFile != "" {
			t.Errorf("keys: routing_key_file=%q routing_key=%q service_key=%q service_key_file=%q; want only routing_key_file=%q",
				p.RoutingKeyFile, p.RoutingKey, p.ServiceKey, p.ServiceKeyFile, c.Alerting.Receivers.PagerDuty.RoutingKeyFile)
		}
		if p.URL == nil || p.URL.String() != c.Alerting.Receivers.PagerDuty.URL {
			t.Errorf("url is %v, want %s", p.URL, c.Alerting.Receivers.PagerDuty.URL)
		}
		if p.Severity != "critical" || !p.SendResolved() {
			t.Errorf("severity=%q send_resolved=%v, want critical and true", p.Severity, p.SendResolved())
		}
		if got := p.Details["runbook"]; got != "{{ .CommonAnnotations.runbook_url }}" {
			t.Errorf("details.runbook is %v", got)
		}
		for _, k := range []string{"alertname", "region", "service", "slo"} {
			if _, ok := p.Details[k]; !ok {
				t.Errorf("details lack %s", k)
			}
		}
	})

	t.Run("PagerDuty without a URL in the spec uses Alertmanager's default endpoint.", func(t *testing.T) {
		_, cfg := mustConfig(t, s)
		for _, r := range cfg.Receivers {
			if r.Name == "pagerduty" && r.PagerdutyConfigs[0].URL.String() != cfg.Global.PagerdutyURL.String() {
				t.Errorf("url is %v, want the global %v", r.PagerdutyConfigs[0].URL, cfg.Global.PagerdutyURL)
			}
		}
	})

	for name, tc := range map[string]struct {
		receiver string
		w        spec.Webhook
	}{
		"The chat webhook posts to the spec's URL, without credentials when none are set.":    {"chat", c.Alerting.Receivers.Chat},
		"The ticket webhook posts to the spec's URL with the spec's bearer credentials file.": {"ticket", c.Alerting.Receivers.Ticket},
	} {
		t.Run(name, func(t *testing.T) {
			wh := byName[tc.receiver].WebhookConfigs
			if len(wh) != 1 {
				t.Fatalf("%s has %d webhook_configs, want 1", tc.receiver, len(wh))
			}
			if got := string(wh[0].URL); got != tc.w.URL {
				t.Errorf("url is %s, want %s", got, tc.w.URL)
			}
			if !wh[0].SendResolved() {
				t.Error("send_resolved is false")
			}
			var file string
			if a := wh[0].HTTPConfig.Authorization; a != nil {
				file = a.CredentialsFile
				if a.Type != "Bearer" {
					t.Errorf("authorization type is %q, want Bearer", a.Type)
				}
			}
			if file != tc.w.CredentialsFile {
				t.Errorf("credentials_file is %q, want %q", file, tc.w.CredentialsFile)
			}
		})
	}
}

func TestConfigInhibits(t *testing.T) {
	_, cfg := mustConfig(t, loadSpec(t))
	inhibits := func(source, target model.LabelSet) bool {
		for _, r := range cfg.InhibitRules {
			if !labels.Matchers(r.SourceMatchers).Matches(source) || !labels.Matchers(r.TargetMatchers).Matches(target) {
				continue
			}
			same := true
			for _, l := range r.Equal {
				same = same && source[model.LabelName(l)] == target[model.LabelName(l)]
			}
			if same {
				return true
			}
		}
		return false
	}
	alert := func(a catalog.Alert, region, service, slo string) model.LabelSet {
		return model.LabelSet{"alertname": model.LabelValue(a.Name), "tier": model.LabelValue(a.Tier),
			"region": model.LabelValue(region), "service": model.LabelValue(service), "slo": model.LabelValue(slo)}
	}
	down := alert(catalog.AlertRegionDown, "sh-a", "all", "probe")
	tests := map[string]struct {
		source, target model.LabelSet
		want           bool
	}{
		"A fast burn inhibits the slow burn of the same service, SLO and region.": {
			alert(catalog.AlertBurnFast, "sh-a", "order", "availability"), alert(catalog.AlertBurnSlow, "sh-a", "order", "availability"), true},
		"A fast burn does not inhibit the slow burn of another SLO.": {
			alert(catalog.AlertBurnFast, "sh-a", "order", "availability"), alert(catalog.AlertBurnSlow, "sh-a", "order", "latency"), false},
		"A fast burn does not inhibit the slow burn of another region.": {
			alert(catalog.AlertBurnFast, "sh-a", "order", "availability"), alert(catalog.AlertBurnSlow, "sh-b", "order", "availability"), false},
		"A slow burn does not inhibit a fast burn.": {
			alert(catalog.AlertBurnSlow, "sh-a", "order", "availability"), alert(catalog.AlertBurnFast, "sh-a", "order", "availability"), false},
		"A region down does not inhibit another region's alerts.": {
			down, alert(catalog.AlertHealthLow, "sh-b", "all", "health"), false},
		"A region down does not inhibit sync lag, which it causes elsewhere.": {
			down, alert(catalog.AlertSyncLag, "sh-a", "replication", "sync_lag"), false},
		"A region down does not inhibit itself in another region.": {
			down, alert(catalog.AlertRegionDown, "sh-b", "all", "probe"), false},
	}
	for _, name := range catalog.RegionDownInhibits {
		tests["A region down inhibits "+name+" in the same region."] = struct {
			source, target model.LabelSet
			want           bool
		}{down, model.LabelSet{"alertname": model.LabelValue(name), "region": "sh-a", "service": "order", "slo": "availability"}, true}
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := inhibits(tc.source, tc.target); got != tc.want {
				t.Errorf("%v inhibits %v: %v, want %v", tc.source, tc.target, got, tc.want)
			}
		})
	}
}

func TestConfigFailsClearly(t *testing.T) {
	s := loadSpec(t)
	good, err := Config(s)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("A routing tree that sends a tier elsewhere fails the in-process check, naming the case.", func(t *testing.T) {
		bad := bytes.Replace(good, []byte(`tier="P0"`), []byte(`tier="P9"`), 1)
		err := check(bad, RouteTests(s))
		if err == nil || !strings.Contains(err.Error(), "SyncLagHigh (P0) reaches pagerduty") {
			t.Fatalf("check of a tree without the P0 route: %v, want an error naming SyncLagHigh", err)
		}
	})
	t.Run("A wrong expectation fails the in-process check.", func(t *testing.T) {
		cases := RouteTests(s)
		cases[0].Want = []string{catalog.ReceiverChat}
		if err := check(good, cases); err == nil || !strings.Contains(err.Error(), cases[0].Name) {
			t.Fatalf("check with a wrong expectation: %v, want an error naming %q", err, cases[0].Name)
		}
	})

	for name, tc := range map[string]struct {
		edit func(*spec.Spec)
		want string
	}{
		"A spec without a chat URL fails config.Load.": {
			func(s *spec.Spec) { s.Alerting.Receivers.Chat.URL = "" }, "config.Load (v0.35) rejects the generated configuration"},
		"A spec without a routing key file fails config.Load.": {
			func(s *spec.Spec) { s.Alerting.Receivers.PagerDuty.RoutingKeyFile = "" }, "missing service or routing key"},
		"A spec grouping by a bad label name fails config.Load.": {
			func(s *spec.Spec) { s.Alerting.Grouping.By = []string{"not a label"} }, "group_by"},
	} {
		t.Run(name, func(t *testing.T) {
			c := *s
			tc.edit(&c)
			_, err := Config(&c)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "deploy/sla.yaml") {
				t.Fatalf("Config: %v, want an error naming the spec and containing %q", err, tc.want)
			}
		})
	}
	t.Run("A nil spec is an error, not a panic.", func(t *testing.T) {
		if _, err := Config(nil); err == nil {
			t.Fatal("Config(nil) succeeded")
		}
	})
}

func TestConfigHoldsNoSecret(t *testing.T) {
	s := withKeyFile(t, loadSpec(t))
	data, err := Config(s)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"The routing key value never appears; only its file does.":         testRoutingKey,
		"No <secret> placeholder of Alertmanager's own marshalling shows.": "<secret>",
		"No v1 service key is configured (it would ignore url:).":          "service_key",
	} {
		t.Run(name, func(t *testing.T) {
			if bytes.Contains(data, []byte(bad)) {
				t.Errorf("the generated configuration contains %q:\n%s", bad, data)
			}
		})
	}
	if !bytes.Contains(data, []byte("routing_key_file: "+s.Alerting.Receivers.PagerDuty.RoutingKeyFile+"\n")) {
		t.Errorf("the generated configuration does not name the routing key file:\n%s", data)
	}
}

func TestGolden(t *testing.T) {
	s := loadSpec(t)
	data, err := Config(s)
	if err != nil {
		t.Fatal(err)
	}
	for file, got := range map[string][]byte{
		"testdata/alertmanager.golden.yml": data,
		"testdata/routes-test.golden.sh":   RouteTestScript(s),
	} {
		t.Run(file, func(t *testing.T) {
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./alerts/routing/ -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is stale; review the change and run go test ./alerts/routing/ -run TestGolden -update\n--- got\n%s", file, got)
			}
		})
	}
	t.Run("The header names the generator and the spec.", func(t *testing.T) {
		want := "# Generated by `carpoolsla generate` from deploy/sla.yaml. Do not edit.\n"
		if !bytes.HasPrefix(data, []byte(want)) {
			t.Errorf("the configuration starts %q, want %q", bytes.SplitAfter(data, []byte("\n"))[0], want)
		}
	})
}
