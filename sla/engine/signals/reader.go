// Package signals reads the SLA engine's input through PromQL: it builds
// engine.Signals for every region and SLO of the spec from a source.Querier
// (the embedded store or an external Prometheus-compatible API).
//
// Each tick runs one query per family (region P99 and P95 latency, traffic,
// SLO attainment, error budget, one burn rate per alert window, one per
// health measurement), each returning every region at once, concurrently up
// to a bound, and maps the samples to regions by their labels. Every name
// comes from sla/catalog, the same catalog the rules and the producers use.
package signals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Defaults of Config.
const (
	DefaultConcurrency  = 4
	maxDefaultTimeout   = 10 * time.Second
	fallbackTickTimeout = 5 * time.Second
)

// Config configures a Reader.
type Config struct {
	// Spec gives the regions, the SLOs with their objectives, the burn-rate
	// windows and the health measurements to read. Required.
	Spec *spec.Spec
	// Querier evaluates the PromQL. Required.
	Querier source.Querier
	// LatencyWindow is the rate window of the region's P99 and P95 latency
	// and traffic; default DefaultLatencyWindow (1m). It must hold at least
	// two scrapes.
	LatencyWindow time.Duration
	// Concurrency bounds the queries in flight at once; default 4.
	Concurrency int
	// QueryTimeout bounds each query; default the spec's engine interval,
	// at most 10 s, so a read never outlasts its tick.
	QueryTimeout time.Duration
	// Registerer receives carpool_engine_query_errors_total and
	// carpool_engine_read_duration_seconds; nil registers nothing.
	Registerer prometheus.Registerer
	// Log receives a warning per failed family; default discards.
	Log *slog.Logger
	// Now measures the read's duration; default time.Now.
	Now func() time.Time
}

// Validate checks cfg.
func (c Config) Validate() error {
	var errs []error
	if c.Spec == nil {
		errs = append(errs, errors.New("signals: Spec is nil; load the SLA spec (spec.Load) and pass it"))
	} else if len(c.Spec.Regions) == 0 {
		errs = append(errs, errors.New("signals: Spec has no regions; a reader needs at least one region to read"))
	}
	if c.Querier == nil {
		errs = append(errs, errors.New("signals: Querier is nil; pass the embedded store or an external Prometheus client"))
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("signals: Concurrency is %d; give a positive bound on queries in flight, or 0 for %d", c.Concurrency, DefaultConcurrency))
	}
	if c.LatencyWindow < 0 || (c.LatencyWindow > 0 && c.LatencyWindow < time.Second) {
		errs = append(errs, fmt.Errorf("signals: LatencyWindow is %s; give a rate window of at least two scrape intervals (e.g. 1m), or 0 for %s", c.LatencyWindow, DefaultLatencyWindow))
	}
	if c.QueryTimeout < 0 {
		errs = append(errs, fmt.Errorf("signals: QueryTimeout is %s; give a positive timeout, or 0 for the engine interval", c.QueryTimeout))
	}
	return errors.Join(errs...)
}

func (c *Config) defaults() {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.LatencyWindow == 0 {
		c.LatencyWindow = DefaultLatencyWindow
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = min(spec.D(c.Spec.Engine.Interval), maxDefaultTimeout)
		if c.QueryTimeout <= 0 {
			c.QueryTimeout = fallbackTickTimeout
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// sloKey identifies one SLO of one service.
type sloKey struct{ service, slo string }

// Reader implements engine.Reader over a source.Querier.
type Reader struct {
	cfg     Config
	queries []Query
	// regionIdx maps a region name to its index in the spec.
	regionIdx map[string]int
	// slos lists the spec's SLOs in order; sloIdx indexes them;
	// budgets holds each SLO's error budget (1 - objective).
	slos    []sloKey
	sloIdx  map[sloKey]int
	budgets []float64
	windows []string
	// measures are the health measurements read.
	measures []string

	errors   *prometheus.CounterVec
	duration *prometheus.GaugeVec
}

var _ engine.Reader = (*Reader)(nil)

// New returns a Reader of cfg.
func New(cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	r := &Reader{
		cfg: cfg, queries: Queries(cfg.Spec, cfg.LatencyWindow),
		regionIdx: map[string]int{}, sloIdx: map[sloKey]int{},
		errors:   telemetry.NewCounterVec(catalog.EngineQueryErrors),
		duration: telemetry.NewGaugeVec(catalog.EngineReadDuration),
	}
	for i, reg := range cfg.Spec.Regions {
		r.regionIdx[reg.Name] = i
	}
	for _, svc := range cfg.Spec.Services {
		for _, slo := range svc.SLOs {
			k := sloKey{svc.Name, slo.Name}
			r.sloIdx[k] = len(r.slos)
			r.slos = append(r.slos, k)
			r.budgets = append(r.budgets, (100-slo.Objective)/100)
		}
	}
	for _, q := range r.queries {
		switch {
		case q.Window != "":
			r.windows = append(r.windows, q.Window)
		case q.Measure != "":
			r.measures = append(r.measures, q.Measure)
		}
		r.errors.WithLabelValues(q.Family) // expose 0 for every family
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.errors, r.duration} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("signals: registering metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Queries returns the queries the Reader runs every tick.
func (r *Reader) Queries() []Query { return append([]Query(nil), r.queries...) }

// Read implements engine.Reader: it runs every family's query at `at` and
// returns the signals of every region of the spec, in spec order. A sample
// that is absent (or NaN) gives a Measured with OK false, never a zero. A
// failed family leaves its signals absent and is counted; Read fails only
// when every query fails.
func (r *Reader) Read(ctx context.Context, at time.Time) (engine.Signals, error) {
	start := r.cfg.Now()
	results := make([]source.Vector, len(r.queries))
	errs := make([]error, len(r.queries))
	g := new(errgroup.Group)
	g.SetLimit(r.cfg.Concurrency)
	for i, q := range r.queries {
		g.Go(func() error {
			qctx, cancel := context.WithTimeout(ctx, r.cfg.QueryTimeout)
			defer cancel()
			v, err := r.cfg.Querier.Query(qctx, q.Expr, at)
			if err != nil {
				errs[i] = fmt.Errorf("query family %s (%s): %w", q.Family, q.Expr, err)
				return nil
			}
			results[i] = v
			return nil
		})
	}
	_ = g.Wait() // the goroutines record their errors in errs
	r.duration.WithLabelValues().Set(r.cfg.Now().Sub(start).Seconds())

	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			r.errors.WithLabelValues(r.queries[i].Family).Inc()
			r.cfg.Log.Warn("signal query failed; its signals are absent this tick", "family", r.queries[i].Family, "err", err)
		}
	}
	if failed == len(r.queries) {
		return engine.Signals{}, fmt.Errorf("signals: every query failed: %w", errors.Join(errs...))
	}

	sig := r.empty(at)
	for i, q := range r.queries {
		if errs[i] == nil {
			r.apply(&sig, q, results[i])
		}
	}
	return sig, nil
}

// empty returns signals with every region, SLO, window and measure present
// and every value absent.
func (r *Reader) empty(at time.Time) engine.Signals {
	sig := engine.Signals{At: at, Regions: make([]engine.RegionSignals, len(r.cfg.Spec.Regions))}
	for i, reg := range r.cfg.Spec.Regions {
		rs := engine.RegionSignals{Region: reg.Name, Components: make(map[string]engine.Measured, len(r.measures)),
			SLOs: make([]engine.SLOSignal, len(r.slos))}
		for _, m := range r.measures {
			rs.Components[m] = engine.Measured{}
		}
		for j, k := range r.slos {
			burn := make(map[string]engine.Measured, len(r.windows))
			for _, w := range r.windows {
				burn[w] = engine.Measured{}
			}
			rs.SLOs[j] = engine.SLOSignal{Service: k.service, SLO: k.slo, BurnRates: burn}
		}
		sig.Regions[i] = rs
	}
	return sig
}

// measured turns a sample into a Measured; NaN and ±Inf are absent (a
// ratio of no events, a quantile of an empty histogram).
func measured(s source.Sample) engine.Measured {
	if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
		return engine.Measured{}
	}
	return engine.Val(s.Value, s.T)
}

// apply maps one family's samples onto sig. Samples of regions or SLOs the
// spec does not know (and region="global") are ignored.
func (r *Reader) apply(sig *engine.Signals, q Query, v source.Vector) {
	switch q.Kind {
	case Global:
		if len(v) == 0 {
			return
		}
		m := measured(v[0])
		for i := range sig.Regions {
			sig.Regions[i].Components[q.Measure] = m
		}
	case PerRegion:
		for _, s := range v {
			i, ok := r.regionIdx[s.Labels[q.Label]]
			if !ok {
				continue
			}
			rs := &sig.Regions[i]
			m := measured(s)
			switch q.Family {
			case FamilyLatencyP99:
				rs.LatencyP99 = m
			case FamilyLatencyP95:
				rs.LatencyP95 = m
			case FamilyTraffic:
				rs.Traffic = m
			default:
				rs.Components[q.Measure] = m
			}
		}
	case PerSLO:
		for _, s := range v {
			i, ok := r.regionIdx[s.Labels[catalog.LabelRegion]]
			if !ok {
				continue
			}
			j, ok := r.sloIdx[sloKey{s.Labels[catalog.LabelService], s.Labels[catalog.LabelSLO]}]
			if !ok {
				continue
			}
			slo := &sig.Regions[i].SLOs[j]
			m := measured(s)
			switch {
			case q.Family == FamilyAttainment:
				slo.Attainment = m
			case q.Family == FamilyBudget:
				slo.BudgetRemaining = m
			case q.Window != "":
				if m.OK && r.budgets[j] > 0 {
					m.Value /= r.budgets[j]
				}
				slo.BurnRates[q.Window] = m
			}
		}
	}
}
