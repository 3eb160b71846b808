package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Flags are the flags of `carpoolsla exporter probe`.
type Flags struct {
	Region         string
	Targets        []string
	Spec           string
	Interval       time.Duration
	Timeout        time.Duration
	UnhealthyAfter int
	HealthyAfter   int

	fs *pflag.FlagSet
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.Region, "region", "", "the prober's region, the region label (required)")
	fs.StringArrayVar(&f.Targets, "target", nil, "name=url probed with HEAD, repeated (e.g. sh-b=http://10.0.2.1:8080/healthz)")
	fs.StringVar(&f.Spec, "spec", "", "SLA spec whose routing.probes give the defaults of the four settings below (flags set explicitly win)")
	fs.DurationVar(&f.Interval, "interval", DefaultInterval, "time between two probes of a target")
	fs.DurationVar(&f.Timeout, "timeout", DefaultTimeout, "timeout of one probe, below --interval")
	fs.IntVar(&f.UnhealthyAfter, "unhealthy-after", DefaultUnhealthyAfter, "consecutive failures that make a target unhealthy")
	fs.IntVar(&f.HealthyAfter, "healthy-after", DefaultHealthyAfter, "consecutive successes that make it healthy again")
}

// Exporter is a built probe exporter: register Collectors and run Run, the
// probe loop, until shutdown.
type Exporter struct {
	Collectors []prometheus.Collector
	Sets       []*vmetrics.Set
	// Prober is the probe loop and the scraper of its results.
	Prober *Prober
}

// Run runs the probe loop until ctx ends; a no-op on a nil Exporter.
func (e *Exporter) Run(ctx context.Context) error {
	if e == nil || e.Prober == nil {
		return nil
	}
	return e.Prober.Run(ctx)
}

// changed reports whether a flag was set on the command line.
func (f *Flags) changed(name string) bool { return f.fs != nil && f.fs.Changed(name) }

// Build validates the flags and builds the exporter.
func (f *Flags) Build(log *slog.Logger) (*Exporter, error) {
	cfg := Config{Region: f.Region, Interval: f.Interval, Timeout: f.Timeout,
		UnhealthyAfter: f.UnhealthyAfter, HealthyAfter: f.HealthyAfter, Log: log}
	var errs []error
	if f.Spec != "" {
		s, err := spec.Load(f.Spec)
		if err != nil {
			return nil, fmt.Errorf("--spec: %w", err)
		}
		p := s.Routing.Probes
		if !f.changed("interval") {
			cfg.Interval = time.Duration(p.Interval)
		}
		if !f.changed("timeout") {
			cfg.Timeout = time.Duration(p.Timeout)
		}
		if !f.changed("unhealthy-after") {
			cfg.UnhealthyAfter = p.UnhealthyAfter
		}
		if !f.changed("healthy-after") {
			cfg.HealthyAfter = p.HealthyAfter
		}
	}
	// Zero means "default" to Config; on the command line it is a mistake.
	if cfg.Interval <= 0 || cfg.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--interval (%s) and --timeout (%s) must be positive", cfg.Interval, cfg.Timeout))
	}
	if cfg.UnhealthyAfter < 1 || cfg.HealthyAfter < 1 {
		errs = append(errs, fmt.Errorf("--unhealthy-after (%d) and --healthy-after (%d) must be at least 1", cfg.UnhealthyAfter, cfg.HealthyAfter))
	}
	for _, t := range f.Targets {
		name, u, ok := strings.Cut(t, "=")
		if !ok || strings.TrimSpace(name) == "" {
			errs = append(errs, fmt.Errorf("--target %q: want name=url", t))
			continue
		}
		cfg.Targets = append(cfg.Targets, Target{Name: strings.TrimSpace(name), URL: strings.TrimSpace(u)})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--region/--target/--interval/--timeout: %w", err)
	}
	return &Exporter{Collectors: []prometheus.Collector{exporters.NewCollector(p, 0, log)}, Prober: p}, nil
}
