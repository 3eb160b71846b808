package configdrift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
)

// Flags are the flags of `carpoolsla exporter configdrift`.
type Flags struct {
	Source        string
	Regions       []string
	Ignore        []string
	Reference     string
	MaxBytes      int64
	ScrapeTimeout time.Duration
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.Source, "source", "config", "name of the configuration compared (the source label)")
	fs.StringArrayVar(&f.Regions, "region-config", nil, "region=source, repeated, at least two: source is a file path, file:// URL or http(s):// URL fetched on every scrape")
	fs.StringSliceVar(&f.Ignore, "ignore", nil, "dotted paths of volatile fields dropped before hashing, * for any key or element (e.g. metadata.generatedAt,regions.*.updated_at)")
	fs.StringVar(&f.Reference, "reference", "", "region the others are compared with (default: the majority)")
	fs.Int64Var(&f.MaxBytes, "max-bytes", DefaultMaxBytes, "largest configuration fetched, in bytes")
	fs.DurationVar(&f.ScrapeTimeout, "scrape-timeout", exporters.DefaultScrapeTimeout, "bound of one scrape (every fetch runs within it)")
}

// Exporter is a built config-drift exporter: register Collectors; it has
// no Sets and nothing runs in the background.
type Exporter struct {
	Collectors []prometheus.Collector
	Sets       []*vmetrics.Set
}

// Run is a no-op: everything happens at scrape time.
func (e *Exporter) Run(context.Context) error { return nil }

// Build validates the flags and builds the exporter.
func (f *Flags) Build(log *slog.Logger) (*Exporter, error) {
	var errs []error
	if f.MaxBytes < 1 {
		errs = append(errs, fmt.Errorf("--max-bytes is %d; it must be positive", f.MaxBytes))
	}
	if f.ScrapeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--scrape-timeout is %s; it must be positive", f.ScrapeTimeout))
	}
	set := Set{Source: f.Source, Reference: f.Reference}
	client := &http.Client{Transport: http.DefaultTransport}
	for _, rc := range f.Regions {
		region, src, ok := strings.Cut(rc, "=")
		region = strings.TrimSpace(region)
		if !ok || region == "" {
			errs = append(errs, fmt.Errorf("--region-config %q: want region=source (a file path or an http(s) URL)", rc))
			continue
		}
		fe, err := ParseSource(src, client, f.MaxBytes)
		if err != nil {
			errs = append(errs, fmt.Errorf("--region-config %q: %w", rc, err))
			continue
		}
		set.Regions = append(set.Regions, Region{Name: region, Fetcher: fe})
	}
	for _, s := range f.Ignore {
		p, err := ParsePath(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--ignore %q: %w", s, err))
			continue
		}
		set.Ignore = append(set.Ignore, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s, err := New(Config{Sets: []Set{set}, Log: log})
	if err != nil {
		return nil, fmt.Errorf("--source/--region-config/--reference: %w", err)
	}
	return &Exporter{Collectors: []prometheus.Collector{exporters.NewCollector(s, f.ScrapeTimeout, log)}}, nil
}
