// Package routing generates the Alertmanager configuration of the alert
// contract in sla/catalog: a routing tree that sends each tier to its
// receiver (P0 → PagerDuty Events v2, P1 → chat webhook, P2 → ticket
// webhook, anything else → ticket), the receivers from the spec's
// alerting.receivers, and the inhibitions the contract promises. It also
// generates the `amtool config routes test` cases that prove the tree.
//
// The YAML is written from this package's own small types, in the schema
// Alertmanager 0.25 reads. It is never produced by marshalling Alertmanager's
// config structs: those print secrets as <secret> and carry fields 0.25
// rejects. Config checks its own output in process with the Alertmanager
// v0.35 config and dispatch packages before returning it.
package routing

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// ResolveTimeout is the global resolve_timeout: how long Alertmanager keeps
// an alert that arrived without an end time before it resolves it.
// Prometheus always sends end times, so this only matters for other
// senders; it is Alertmanager's own default.
const ResolveTimeout = 5 * time.Minute

// Templates the PagerDuty receiver renders per notification group. The
// labels are the contract's; with the default grouping (alertname, region,
// service, slo) they are common to the whole group.
var (
	pagerDutyDescription = fmt.Sprintf("[{{ .CommonLabels.%s }}] {{ .CommonLabels.alertname }} {{ .CommonLabels.%s }}/{{ .CommonLabels.%s }} in {{ .CommonLabels.%s }}: {{ .CommonAnnotations.%s }}",
		catalog.AlertLabelTier, catalog.AlertLabelService, catalog.AlertLabelSLO, catalog.AlertLabelRegion, catalog.AnnotationSummary)
	pagerDutyDetails = map[string]string{
		"alertname":   "{{ .CommonLabels.alertname }}",
		"region":      label(catalog.AlertLabelRegion),
		"service":     label(catalog.AlertLabelService),
		"slo":         label(catalog.AlertLabelSLO),
		"tier":        label(catalog.AlertLabelTier),
		"team":        label(catalog.AlertLabelTeam),
		"summary":     annotation(catalog.AnnotationSummary),
		"description": annotation(catalog.AnnotationDescription),
		"runbook":     annotation(catalog.AnnotationRunbook),
		"dashboard":   annotation(catalog.AnnotationDashboard),
	}
)

func label(name string) string      { return "{{ .CommonLabels." + name + " }}" }
func annotation(name string) string { return "{{ .CommonAnnotations." + name + " }}" }

// amConfig is the part of an Alertmanager 0.25 configuration file this
// package writes. Field order is output order.
type amConfig struct {
	Global       amGlobal        `yaml:"global"`
	Route        amRoute         `yaml:"route"`
	InhibitRules []amInhibitRule `yaml:"inhibit_rules"`
	Receivers    []amReceiver    `yaml:"receivers"`
}

type amGlobal struct {
	ResolveTimeout string `yaml:"resolve_timeout"`
}

type amRoute struct {
	Receiver       string    `yaml:"receiver"`
	Matchers       []string  `yaml:"matchers,omitempty"`
	GroupBy        []string  `yaml:"group_by,omitempty"`
	GroupWait      string    `yaml:"group_wait,omitempty"`
	GroupInterval  string    `yaml:"group_interval,omitempty"`
	RepeatInterval string    `yaml:"repeat_interval,omitempty"`
	Routes         []amRoute `yaml:"routes,omitempty"`
}

type amInhibitRule struct {
	SourceMatchers []string `yaml:"source_matchers"`
	TargetMatchers []string `yaml:"target_matchers"`
	Equal          []string `yaml:"equal"`
}

type amReceiver struct {
	Name             string        `yaml:"name"`
	PagerDutyConfigs []amPagerDuty `yaml:"pagerduty_configs,omitempty"`
	WebhookConfigs   []amWebhook   `yaml:"webhook_configs,omitempty"`
}

// amPagerDuty is a pagerduty_configs entry for the Events API v2: a
// routing key (read from a file by Alertmanager), never a v1 service key.
type amPagerDuty struct {
	SendResolved   bool              `yaml:"send_resolved"`
	RoutingKeyFile string            `yaml:"routing_key_file"`
	URL            string            `yaml:"url,omitempty"`
	Severity       string            `yaml:"severity"`
	Description    string            `yaml:"description"`
	Component      string            `yaml:"component"`
	Group          string            `yaml:"group"`
	Class          string            `yaml:"class"`
	Details        map[string]string `yaml:"details"`
}

type amWebhook struct {
	SendResolved bool          `yaml:"send_resolved"`
	URL          string        `yaml:"url"`
	HTTPConfig   *amHTTPConfig `yaml:"http_config,omitempty"`
}

type amHTTPConfig struct {
	Authorization amAuthorization `yaml:"authorization"`
}

type amAuthorization struct {
	Type            string `yaml:"type"`
	CredentialsFile string `yaml:"credentials_file"`
}

// Config returns the Alertmanager configuration (YAML, starting with a
// "# Generated by `carpoolsla generate` from <s.File>. Do not edit." header)
// for s. Before returning it, Config loads the YAML with Alertmanager's
// config.Load and checks that every case of RouteTests reaches the receivers
// it names; it fails with an error that starts with the spec's file and says
// which check failed. Callers add what they were doing ("generating the
// Alertmanager configuration: ...").
func Config(s *spec.Spec) ([]byte, error) {
	if s == nil {
		return nil, errors.New("no spec given")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by `carpoolsla generate` from %s. Do not edit.\n", specFile(s))
	fmt.Fprintf(&b, "# Routing: tier=%s → %s, tier=%s → %s, tier=%s → %s; anything else → %s.\n",
		catalog.P0, catalog.P0.Receiver(), catalog.P1, catalog.P1.Receiver(), catalog.P2, catalog.P2.Receiver(), catalog.ReceiverTicket)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(build(s)); err != nil {
		return nil, fmt.Errorf("encoding YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding YAML: %w", err)
	}
	if err := check(b.Bytes(), RouteTests(s)); err != nil {
		return nil, fmt.Errorf("%s: %w", specFile(s), err)
	}
	return b.Bytes(), nil
}

func specFile(s *spec.Spec) string {
	if s.File == "" {
		return "a spec built in Go"
	}
	return s.File
}

// build maps the spec onto the configuration file's types.
func build(s *spec.Spec) amConfig {
	g := s.Alerting.Grouping
	root := amRoute{
		Receiver:       catalog.ReceiverTicket,
		GroupBy:        slices.Clone(g.By),
		GroupWait:      g.GroupWait.String(),
		GroupInterval:  g.GroupInterval.String(),
		RepeatInterval: g.RepeatInterval.String(),
	}
	for _, t := range catalog.Tiers {
		root.Routes = append(root.Routes, amRoute{
			Receiver: t.Receiver(),
			Matchers: []string{equal(catalog.AlertLabelTier, string(t))},
		})
	}

	targets := make([]string, len(catalog.RegionDownInhibits))
	for i, n := range catalog.RegionDownInhibits {
		targets[i] = regexp.QuoteMeta(n)
	}
	inhibit := []amInhibitRule{
		{
			SourceMatchers: []string{equal(model.AlertNameLabel, catalog.AlertBurnFast.Name)},
			TargetMatchers: []string{equal(model.AlertNameLabel, catalog.AlertBurnSlow.Name)},
			Equal:          []string{catalog.AlertLabelService, catalog.AlertLabelSLO, catalog.AlertLabelRegion},
		},
		{
			SourceMatchers: []string{equal(model.AlertNameLabel, catalog.AlertRegionDown.Name)},
			TargetMatchers: []string{model.AlertNameLabel + "=~" + strconv.Quote(strings.Join(targets, "|"))},
			Equal:          []string{catalog.AlertLabelRegion},
		},
	}

	r := s.Alerting.Receivers
	pd := amReceiver{Name: catalog.ReceiverPagerDuty, PagerDutyConfigs: []amPagerDuty{{
		SendResolved:   true,
		RoutingKeyFile: r.PagerDuty.RoutingKeyFile,
		URL:            r.PagerDuty.URL,
		Severity:       catalog.P0.Severity(),
		Description:    pagerDutyDescription,
		Component:      label(catalog.AlertLabelService),
		Group:          label(catalog.AlertLabelRegion),
		Class:          label(catalog.AlertLabelSLO),
		Details:        pagerDutyDetails,
	}}}
	return amConfig{
		Global:       amGlobal{ResolveTimeout: model.Duration(ResolveTimeout).String()},
		Route:        root,
		InhibitRules: inhibit,
		Receivers: []amReceiver{
			pd,
			webhook(catalog.ReceiverChat, r.Chat),
			webhook(catalog.ReceiverTicket, r.Ticket),
		},
	}
}

// equal returns the matcher name="value" in the syntax Alertmanager 0.25
// parses (Go's quoting agrees with it for the ASCII label values used here).
func equal(name, value string) string { return name + "=" + strconv.Quote(value) }

func webhook(name string, w spec.Webhook) amReceiver {
	c := amWebhook{SendResolved: true, URL: w.URL}
	if w.CredentialsFile != "" {
		c.HTTPConfig = &amHTTPConfig{Authorization: amAuthorization{Type: "Bearer", CredentialsFile: w.CredentialsFile}}
	}
	return amReceiver{Name: name, WebhookConfigs: []amWebhook{c}}
}

// check loads data with Alertmanager's own config.Load (which reads no
// referenced file, so the routing key file need not exist here) and walks
// the routing tree with dispatch for every case.
func check(data []byte, cases []RouteTest) error {
	cfg, err := config.Load(string(data))
	if err != nil {
		return fmt.Errorf("the alertmanager module's config.Load (v0.35) rejects the generated configuration: %w; check alerting.receivers and alerting.grouping", err)
	}
	tree := dispatch.NewRoute(cfg.Route, nil)
	var bad []string
	for _, c := range cases {
		if got := receivers(tree, c.Labels); !slices.Equal(got, c.Want) {
			bad = append(bad, fmt.Sprintf("%q: labels %v reach %v, want %v", c.Name, c.Labels, got, c.Want))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the generated routing tree is wrong:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

// receivers returns, in order, the receivers an alert with labels reaches.
func receivers(tree *dispatch.Route, labels map[string]string) []string {
	ls := make(model.LabelSet, len(labels))
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	var out []string
	for _, r := range tree.Match(ls) {
		out = append(out, r.RouteOpts.Receiver)
	}
	return out
}
