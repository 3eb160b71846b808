package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/exporters/verify"
)

// Flags are the verifier's flags plus auto-repair's: the flag set of
// `carpoolsla exporter verify` when it may repair. Auto-repair's flags are
// prefixed --repair- (--repair-enabled, --repair-interval,
// --repair-max-failure-rate, ...) so that they do not clash with the
// verifier's --interval.
type Flags struct {
	verify.Flags
	Enabled        bool
	Interval       time.Duration
	MaxFailureRate float64
	MinSample      int
	MaxPerRun      int
	AdminTokenFile string
}

// Register adds the verifier's and auto-repair's flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	f.Flags.Register(fs)
	fs.BoolVar(&f.Enabled, "repair-enabled", false, "repair the target from the source automatically (off by default)")
	fs.DurationVar(&f.Interval, "repair-interval", DefaultInterval, "time between two auto-repair cycles")
	fs.Float64Var(&f.MaxFailureRate, "repair-max-failure-rate", DefaultMaxFailureRate, "auto-repair stops itself when the day's failed repairs over attempted ones pass this (0.15 = 15 %)")
	fs.IntVar(&f.MinSample, "repair-min-sample", DefaultMinSample, "attempts a day needs before the failure rate can stop auto-repair")
	fs.IntVar(&f.MaxPerRun, "repair-max-per-run", DefaultMaxPerRun, "repairs one cycle applies at most")
	fs.StringVar(&f.AdminTokenFile, "repair-admin-token-file", "", "file holding the bearer token of POST /admin/repair/resume (required with --repair-enabled)")
}

// Validate checks the flags against each other.
func (f *Flags) Validate() error {
	if err := f.Flags.Validate(); err != nil {
		return err
	}
	switch {
	case f.Interval <= 0:
		return fmt.Errorf("repair: --repair-interval %v must be positive", f.Interval)
	case !(f.MaxFailureRate > 0 && f.MaxFailureRate <= 1):
		return fmt.Errorf("repair: --repair-max-failure-rate %v must be in (0, 1]: 0.15 is 15 %%", f.MaxFailureRate)
	case f.MinSample < 1:
		return fmt.Errorf("repair: --repair-min-sample %d must be at least 1", f.MinSample)
	case f.MaxPerRun < 1:
		return fmt.Errorf("repair: --repair-max-per-run %d must be at least 1", f.MaxPerRun)
	case f.Enabled && f.AdminTokenFile == "":
		return errors.New("repair: --repair-enabled needs --repair-admin-token-file: resuming a stopped auto-repair is an admin call")
	}
	return nil
}

// Exporter is a built verifier with its optional auto-repair: register
// Collectors, serve them with exporters.Handler(reg, Sets...), mount Admin
// (when not nil) at /admin/repair/, and Run it.
type Exporter struct {
	Collectors []prometheus.Collector
	Sets       []*vmetrics.Set
	// Verify is the verifier exporter; Job the repair job (nil when
	// --repair-enabled is off).
	Verify *verify.Exporter
	Job    *Job
	// Admin serves /admin/repair/resume and /admin/repair/status (nil
	// without a job).
	Admin http.Handler
}

// Build validates the flags and builds the verifier and, with
// --repair-enabled, the repair job that works from its mismatches. It
// connects to nothing.
func (f *Flags) Build(log *slog.Logger) (*Exporter, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var token string
	if f.AdminTokenFile != "" {
		b, err := os.ReadFile(f.AdminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("repair: --repair-admin-token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("repair: --repair-admin-token-file %s is empty: put the bearer token in it", f.AdminTokenFile)
		}
	}
	v, err := f.Flags.Build(log)
	if err != nil {
		return nil, err
	}
	e := &Exporter{Collectors: v.Collectors, Sets: v.Sets, Verify: v}
	if !f.Enabled {
		return e, nil
	}
	e.Job, err = New(Config{
		SourceRegion: f.SourceRegion, TargetRegion: f.TargetRegion,
		Mismatches: v.Verifier, Source: v.Source, Target: v.Target,
		Interval: f.Interval, MaxFailureRate: f.MaxFailureRate, MinSample: f.MinSample, MaxPerRun: f.MaxPerRun,
		AdminToken: token, Logger: log.With("exporter", Name),
	})
	if err != nil {
		_ = v.Close()
		return nil, fmt.Errorf("repair: %w", err)
	}
	e.Collectors = append(e.Collectors, exporters.NewCollector(e.Job, f.ScrapeTimeout, log))
	e.Admin = e.Job.Handler()
	return e, nil
}

// Run runs the verifier and the repair job until ctx ends, then closes the
// connections. It returns nil on cancel; a nil Exporter returns at once.
func (e *Exporter) Run(ctx context.Context) error {
	if e == nil {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	if e.Job != nil {
		g.Go(func() error { return e.Job.Run(ctx) })
	}
	g.Go(func() error { return e.Verify.Run(ctx) })
	return g.Wait()
}
