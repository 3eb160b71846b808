package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"gopkg.in/yaml.v3"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Defaults of Config.
const (
	DefaultRetention            = 15 * 24 * time.Hour
	DefaultScrapeInterval       = 5 * time.Second
	DefaultLookbackDelta        = 5 * time.Minute
	DefaultQueryTimeout         = 2 * time.Minute
	DefaultMaxSamples           = 50_000_000
	DefaultResendDelay          = time.Minute
	DefaultTargetReloadInterval = time.Second
	DefaultAlertmanagerTimeout  = 10 * time.Second
)

// Target is one scrape job: its name (the job label), the URLs of its
// targets (scheme, host, path and query of each are kept; the path
// defaults to /metrics) and labels put on every series it yields.
type Target struct {
	Job    string
	URLs   []string
	Labels map[string]string
}

// Config configures a Store.
type Config struct {
	// Dir is the TSDB's folder (created when missing). Required.
	Dir string
	// Retention is how long samples are kept (default 15d; the spec's
	// engine.retention).
	Retention time.Duration
	// ScrapeInterval is the scrape interval of every target (default 5s; the
	// spec's engine.scrapeInterval). ScrapeTimeout bounds one scrape
	// (default: the interval, at most 10s).
	ScrapeInterval time.Duration
	ScrapeTimeout  time.Duration
	// EvaluationInterval is the rule-evaluation interval (default: the
	// scrape interval).
	EvaluationInterval time.Duration
	// Targets are the scrape jobs; ApplyTargets replaces them at run time.
	Targets []Target
	// RuleFiles are rule files or globs, such as
	// deploy/generated/prometheus/rules.yml. A pattern that matches no file
	// is an error.
	RuleFiles []string
	// Alertmanagers are the base URLs of the Alertmanagers that firing
	// alerts are sent to (POST <url>/api/v2/alerts). None: alerts are
	// evaluated and kept, but not sent.
	Alertmanagers []string
	// AlertmanagerTimeout bounds one send (default 10s).
	AlertmanagerTimeout time.Duration
	// ResendDelay is how long a firing alert waits before it is sent again
	// (default 1m, as Prometheus; tests use 1s).
	ResendDelay time.Duration
	// ExternalURL is where this store is reached, used in the generator URL
	// of alerts. ExternalLabels are added to alerts sent.
	ExternalURL    string
	ExternalLabels map[string]string
	// LookbackDelta is how far back an instant selector looks for a sample
	// (default 5m). QueryTimeout bounds one query (default 2m); MaxSamples
	// bounds the samples one query may load (default 50M).
	LookbackDelta time.Duration
	QueryTimeout  time.Duration
	MaxSamples    int
	// TargetReloadInterval is how soon new targets are scraped after Run
	// starts or ApplyTargets (default 1s).
	TargetReloadInterval time.Duration
	// ExtraScrapeMetrics adds scrape_timeout_seconds, scrape_sample_limit
	// and scrape_body_size_bytes per target, and the
	// prometheus_target_scrape_duration_seconds histogram of whole scrapes
	// (fetch, parse, append and commit) to the store's own metrics.
	ExtraScrapeMetrics bool
	// Logger receives the store's logs (default: discarded).
	Logger *slog.Logger
	// Registerer receives the store's own metrics (prometheus_tsdb_*,
	// prometheus_engine_*, scrape, rule and notifier metrics). Default: a
	// registry of the store's own, see Store.Gatherer. A registry can hold
	// one store for the life of the process: Prometheus' packages register
	// fixed names and the TSDB does not unregister them on Close.
	Registerer prometheus.Registerer
}

// ConfigFromSpec returns a Config with the spec's engine settings (scrape
// and evaluation interval, retention) and dir.
func ConfigFromSpec(s *spec.Spec, dir string) Config {
	return Config{
		Dir:                dir,
		Retention:          spec.D(s.Engine.Retention),
		ScrapeInterval:     spec.D(s.Engine.ScrapeInterval),
		EvaluationInterval: spec.D(s.Engine.ScrapeInterval),
	}
}

// withDefaults returns c with its zero fields filled in.
func (c Config) withDefaults() Config {
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = DefaultScrapeInterval
	}
	if c.ScrapeTimeout == 0 {
		c.ScrapeTimeout = min(c.ScrapeInterval, 10*time.Second)
	}
	if c.EvaluationInterval == 0 {
		c.EvaluationInterval = c.ScrapeInterval
	}
	if c.AlertmanagerTimeout == 0 {
		c.AlertmanagerTimeout = DefaultAlertmanagerTimeout
	}
	if c.ResendDelay == 0 {
		c.ResendDelay = DefaultResendDelay
	}
	if c.LookbackDelta == 0 {
		c.LookbackDelta = DefaultLookbackDelta
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.MaxSamples == 0 {
		c.MaxSamples = DefaultMaxSamples
	}
	if c.TargetReloadInterval == 0 {
		c.TargetReloadInterval = DefaultTargetReloadInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks the fields against each other; its errors name the field
// and say what to do.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("embedded: Dir is empty: give the folder the store keeps its samples in")
	}
	for name, d := range map[string]time.Duration{
		"Retention": c.Retention, "ScrapeInterval": c.ScrapeInterval, "ScrapeTimeout": c.ScrapeTimeout,
		"EvaluationInterval": c.EvaluationInterval, "AlertmanagerTimeout": c.AlertmanagerTimeout,
		"ResendDelay": c.ResendDelay, "LookbackDelta": c.LookbackDelta, "QueryTimeout": c.QueryTimeout,
		"TargetReloadInterval": c.TargetReloadInterval,
	} {
		if d < 0 {
			return fmt.Errorf("embedded: %s %v is negative: give a positive duration or 0 for the default", name, d)
		}
	}
	if c.MaxSamples < 0 {
		return fmt.Errorf("embedded: MaxSamples %d is negative: give a positive number or 0 for the default", c.MaxSamples)
	}
	d := c.withDefaults()
	if d.ScrapeTimeout > d.ScrapeInterval {
		return fmt.Errorf("embedded: ScrapeTimeout %v is longer than ScrapeInterval %v: a scrape must end before the next one starts", d.ScrapeTimeout, d.ScrapeInterval)
	}
	if d.Retention < d.ScrapeInterval {
		return fmt.Errorf("embedded: Retention %v is shorter than ScrapeInterval %v: keep samples longer (the spec's engine.retention)", d.Retention, d.ScrapeInterval)
	}
	if err := validateTargets(c.Targets); err != nil {
		return err
	}
	for _, am := range c.Alertmanagers {
		if _, err := parseHTTPURL(am); err != nil {
			return fmt.Errorf("embedded: Alertmanagers: %w", err)
		}
	}
	if c.ExternalURL != "" {
		if _, err := parseHTTPURL(c.ExternalURL); err != nil {
			return fmt.Errorf("embedded: ExternalURL: %w", err)
		}
	}
	if _, err := expandRuleFiles(c.RuleFiles); err != nil {
		return err
	}
	return nil
}

func validateTargets(targets []Target) error {
	seen := map[string]bool{}
	for i, t := range targets {
		if t.Job == "" {
			return fmt.Errorf("embedded: Targets[%d] has no Job: name the job (it becomes the job label)", i)
		}
		if seen[t.Job] {
			return fmt.Errorf("embedded: Targets: job %q appears twice: merge its URLs into one Target", t.Job)
		}
		seen[t.Job] = true
		for _, u := range t.URLs {
			if _, err := parseHTTPURL(u); err != nil {
				return fmt.Errorf("embedded: Targets[%d] (job %s): %w", i, t.Job, err)
			}
		}
		for name := range t.Labels {
			if !model.LegacyValidation.IsValidLabelName(name) || strings.HasPrefix(name, "__") {
				return fmt.Errorf("embedded: Targets[%d] (job %s): label name %q is not a plain Prometheus label name", i, t.Job, name)
			}
		}
	}
	return nil
}

func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("URL %q does not parse: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("URL %q must be http(s)://host:port[/path]", s)
	}
	return u, nil
}

// expandRuleFiles expands globs; a pattern without a match is an error.
func expandRuleFiles(patterns []string) ([]string, error) {
	var files []string
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("embedded: RuleFiles: pattern %q: %w", p, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("embedded: RuleFiles: %q matches no file: generate the rules (make generate) or fix the path", p)
		}
		for _, m := range matches {
			if !slices.Contains(files, m) {
				files = append(files, m)
			}
		}
	}
	return files, nil
}

// The Prometheus configuration the store runs, written as YAML and read by
// Prometheus' own config.Load so that every default and check applies.
type (
	promYAML struct {
		Global        globalYAML    `yaml:"global"`
		Alerting      *alertingYAML `yaml:"alerting,omitempty"`
		ScrapeConfigs []scrapeYAML  `yaml:"scrape_configs"`
	}
	globalYAML struct {
		ScrapeInterval     string            `yaml:"scrape_interval"`
		ScrapeTimeout      string            `yaml:"scrape_timeout"`
		EvaluationInterval string            `yaml:"evaluation_interval"`
		ExternalLabels     map[string]string `yaml:"external_labels,omitempty"`
		ExtraScrapeMetrics bool              `yaml:"extra_scrape_metrics,omitempty"`
	}
	alertingYAML struct {
		Alertmanagers []alertmanagerYAML `yaml:"alertmanagers"`
	}
	alertmanagerYAML struct {
		Scheme        string       `yaml:"scheme"`
		PathPrefix    string       `yaml:"path_prefix,omitempty"`
		Timeout       string       `yaml:"timeout"`
		APIVersion    string       `yaml:"api_version"`
		StaticConfigs []staticYAML `yaml:"static_configs"`
	}
	scrapeYAML struct {
		JobName       string       `yaml:"job_name"`
		StaticConfigs []staticYAML `yaml:"static_configs"`
	}
	staticYAML struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels,omitempty"`
	}
)

func promDuration(d time.Duration) string { return model.Duration(d).String() }

// promConfig builds and loads the Prometheus configuration of c (defaults
// filled in) with targets.
func promConfig(c Config, targets []Target) (*promconfig.Config, error) {
	y := promYAML{
		Global: globalYAML{
			ScrapeInterval:     promDuration(c.ScrapeInterval),
			ScrapeTimeout:      promDuration(c.ScrapeTimeout),
			EvaluationInterval: promDuration(c.EvaluationInterval),
			ExternalLabels:     c.ExternalLabels,
			ExtraScrapeMetrics: c.ExtraScrapeMetrics,
		},
		ScrapeConfigs: []scrapeYAML{},
	}
	for _, am := range c.Alertmanagers {
		u, err := parseHTTPURL(am)
		if err != nil {
			return nil, fmt.Errorf("embedded: Alertmanagers: %w", err)
		}
		if y.Alerting == nil {
			y.Alerting = &alertingYAML{}
		}
		y.Alerting.Alertmanagers = append(y.Alerting.Alertmanagers, alertmanagerYAML{
			Scheme: u.Scheme, PathPrefix: strings.TrimSuffix(u.Path, "/"), Timeout: promDuration(c.AlertmanagerTimeout),
			APIVersion: "v2", StaticConfigs: []staticYAML{{Targets: []string{u.Host}}},
		})
	}
	for _, t := range targets {
		sc := scrapeYAML{JobName: t.Job, StaticConfigs: []staticYAML{}}
		for _, raw := range t.URLs {
			u, err := parseHTTPURL(raw)
			if err != nil {
				return nil, fmt.Errorf("embedded: Targets (job %s): %w", t.Job, err)
			}
			ls := map[string]string{model.SchemeLabel: u.Scheme, model.MetricsPathLabel: "/metrics"}
			if u.Path != "" {
				ls[model.MetricsPathLabel] = u.Path
			}
			for k, vs := range u.Query() {
				if len(vs) > 0 {
					ls[model.ParamLabelPrefix+k] = vs[0]
				}
			}
			for k, v := range t.Labels {
				ls[k] = v
			}
			sc.StaticConfigs = append(sc.StaticConfigs, staticYAML{Targets: []string{u.Host}, Labels: ls})
		}
		y.ScrapeConfigs = append(y.ScrapeConfigs, sc)
	}
	raw, err := yaml.Marshal(y)
	if err != nil {
		return nil, fmt.Errorf("embedded: writing the Prometheus configuration: %w", err)
	}
	cfg, err := promconfig.Load(string(raw), c.Logger)
	if err != nil {
		return nil, fmt.Errorf("embedded: the Prometheus configuration is refused: %w\n%s", err, raw)
	}
	return cfg, nil
}
