package rto

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
)

// Flags are the flags of `carpoolsla exporter rto`.
type Flags struct {
	RegionAPIs   []string
	Point        string
	RegionPoints []string
	Interval     time.Duration
	Timeout      time.Duration
	RiderID      string
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.RegionAPIs, "region-api", nil, "region=base-url of a region's ride API (its service entry or gateway), repeated; rides are created with POST base-url/v1/rides")
	fs.StringVar(&f.Point, "point", fmt.Sprintf("%g,%g", DefaultPoint.Lat, DefaultPoint.Lng), "lat,lng of the synthetic rides' pickup (the dropoff is 0.01° north-east)")
	fs.StringArrayVar(&f.RegionPoints, "region-point", nil, "region=lat,lng overriding --point for one region, repeated")
	fs.DurationVar(&f.Interval, "interval", DefaultInterval, "time between two synthetic probes of a region")
	fs.DurationVar(&f.Timeout, "timeout", DefaultTimeout, "bound of one probe (create and cancel), below --interval")
	fs.StringVar(&f.RiderID, "rider-id", DefaultRiderID, "rider_id of the synthetic rides, so reports can leave them out")
}

// Exporter is a built RTO exporter: register Collectors, run Run (the
// synthetic probe) until shutdown, and give Drills to the drill runner.
type Exporter struct {
	Collectors []prometheus.Collector
	Sets       []*vmetrics.Set
	Synthetic  *Synthetic
	Drills     *Drills
}

// Run runs the synthetic probe until ctx ends; a no-op on a nil Exporter.
func (e *Exporter) Run(ctx context.Context) error {
	if e == nil || e.Synthetic == nil {
		return nil
	}
	return e.Synthetic.Run(ctx)
}

// NewExporter wraps a synthetic probe and drill results in one frame
// Collector (exporter="rto"); syn may be nil (drills only), drills nil
// makes an empty Drills.
func NewExporter(syn *Synthetic, drills *Drills, log *slog.Logger) *Exporter {
	if drills == nil {
		drills = &Drills{}
	}
	return &Exporter{Synthetic: syn, Drills: drills,
		Collectors: []prometheus.Collector{exporters.NewCollector(Scraper{Synthetic: syn, Drills: drills}, 0, log)}}
}

// parsePoint parses lat,lng.
func parsePoint(s string) (LatLng, error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return LatLng{}, fmt.Errorf("%q: want lat,lng in degrees, e.g. 31.2304,121.4737", s)
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lng, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lng < -180 || lng > 180 {
		return LatLng{}, fmt.Errorf("%q: want lat in [-90, 90] and lng in [-180, 180], e.g. 31.2304,121.4737", s)
	}
	return LatLng{lat, lng}, nil
}

// Build validates the flags and builds the exporter.
func (f *Flags) Build(log *slog.Logger) (*Exporter, error) {
	var errs []error
	point, err := parsePoint(f.Point)
	if err != nil {
		errs = append(errs, fmt.Errorf("--point %w", err))
	}
	if f.Interval <= 0 || f.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--interval (%s) and --timeout (%s) must be positive", f.Interval, f.Timeout))
	}
	if strings.TrimSpace(f.RiderID) == "" {
		errs = append(errs, errors.New("--rider-id is empty"))
	}
	if len(f.RegionAPIs) == 0 {
		errs = append(errs, errors.New("--region-api is required: region=base-url of each region's ride API"))
	}
	cfg := SyntheticConfig{Interval: f.Interval, Timeout: f.Timeout, RiderID: f.RiderID, Log: log}
	index := map[string]int{}
	for _, ra := range f.RegionAPIs {
		name, u, ok := strings.Cut(ra, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("--region-api %q: want region=base-url", ra))
			continue
		}
		index[name] = len(cfg.Regions)
		cfg.Regions = append(cfg.Regions, RegionAPI{Name: name, BaseURL: strings.TrimSpace(u), Point: point})
	}
	for _, rp := range f.RegionPoints {
		name, p, ok := strings.Cut(rp, "=")
		i, known := index[strings.TrimSpace(name)]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("--region-point %q: want region=lat,lng", rp))
		case !known:
			errs = append(errs, fmt.Errorf("--region-point %q: region %q has no --region-api", rp, name))
		default:
			pt, err := parsePoint(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("--region-point %w", err))
				continue
			}
			cfg.Regions[i].Point = pt
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	syn, err := NewSynthetic(cfg)
	if err != nil {
		return nil, fmt.Errorf("--region-api/--interval/--timeout: %w", err)
	}
	return NewExporter(syn, nil, log), nil
}
