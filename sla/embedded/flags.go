package embedded

import (
	"errors"

	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Default flag values.
const (
	DefaultDir       = ".carpoolsla/store"
	DefaultRulesFile = "deploy/generated/prometheus/rules.yml"
)

// Flags are the command-line flags of the embedded store. Its intervals and
// retention come from the spec (engine.scrapeInterval, engine.retention);
// its targets from the command's own wiring.
type Flags struct {
	Dir           string
	RuleFiles     []string
	Alertmanagers []string
	ExternalURL   string
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.Dir, "store-dir", DefaultDir, "folder of the embedded store's TSDB (samples kept for the spec's engine.retention)")
	fs.StringArrayVar(&f.RuleFiles, "store-rules", []string{DefaultRulesFile}, "rule files (or globs) the embedded store evaluates every engine.scrapeInterval; repeatable; --store-rules= for none")
	fs.StringArrayVar(&f.Alertmanagers, "store-alertmanager", nil, "Alertmanager base URL that firing alerts are sent to (POST /api/v2/alerts); repeatable; none: alerts are evaluated, not sent")
	fs.StringVar(&f.ExternalURL, "store-external-url", "", "URL the embedded store's API is reached at, for the links in alerts")
}

// Config returns the store's Config for s, with targets, validated.
func (f *Flags) Config(s *spec.Spec, targets []Target) (Config, error) {
	if s == nil {
		return Config{}, errors.New("embedded: no spec: the store takes its intervals and retention from it")
	}
	cfg := ConfigFromSpec(s, f.Dir)
	for _, r := range f.RuleFiles {
		if r != "" {
			cfg.RuleFiles = append(cfg.RuleFiles, r)
		}
	}
	cfg.Alertmanagers = f.Alertmanagers
	cfg.ExternalURL = f.ExternalURL
	cfg.Targets = targets
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}
