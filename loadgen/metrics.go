package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Metrics are a run's client-side metrics (catalog names, see
// sla/catalog/loadgen.go) in a VictoriaMetrics/metrics Set of their own,
// written in the Prometheus text format and pushed, when asked, to a
// Prometheus-compatible import endpoint such as VictoriaMetrics'
// /api/v1/import/prometheus. Every series carries the run label.
type Metrics struct {
	set *vm.Set
}

// NewMetrics returns an empty set of client-side metrics; an Executor built
// with it fills it in.
func NewMetrics() *Metrics { return &Metrics{set: vm.NewSet()} }

// WritePrometheus writes the metrics in the Prometheus text format.
func (m *Metrics) WritePrometheus(w io.Writer) { m.set.WritePrometheus(w) }

// PushConfig configures pushing.
type PushConfig struct {
	// URL is the import endpoint, e.g.
	// http://127.0.0.1:8428/api/v1/import/prometheus (required).
	URL string
	// Interval between pushes during the run; default 5s.
	Interval time.Duration
	// Headers are extra request headers ("Name: value"), e.g. an
	// Authorization header.
	Headers []string
	// LogErr receives failed periodic pushes; default discard.
	LogErr func(format string, args ...any)
}

// Validate checks the push configuration.
func (c PushConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("push URL %q: want an http(s) URL of an import endpoint, e.g. http://127.0.0.1:8428/api/v1/import/prometheus", c.URL)
	}
	if c.Interval < 0 {
		return fmt.Errorf("push interval %v must be positive", c.Interval)
	}
	return nil
}

func (c PushConfig) options() *vm.PushOptions {
	logErr := c.LogErr
	if logErr == nil {
		logErr = func(string, ...any) {}
	}
	return &vm.PushOptions{Method: "POST", Headers: c.Headers, LogErr: logErr}
}

// Pusher pushes a Metrics set periodically while Run runs, and once more
// when it stops, so that a short run's final counts arrive.
type Pusher struct {
	m   *Metrics
	cfg PushConfig
}

// NewPusher validates the configuration and returns a pusher.
func NewPusher(m *Metrics, cfg PushConfig) (*Pusher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Second
	}
	return &Pusher{m: m, cfg: cfg}, nil
}

// Run pushes every Interval until ctx ends, then pushes a last time (with
// its own 10 s bound) and returns that push's error.
func (p *Pusher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if err := p.m.set.InitPushWithOptions(ctx, p.cfg.URL, p.cfg.Interval, withWG(p.cfg.options(), &wg)); err != nil {
		return fmt.Errorf("starting the metrics push to %s: %w", p.cfg.URL, err)
	}
	<-ctx.Done()
	wg.Wait()
	return p.Push(context.WithoutCancel(ctx))
}

// Push pushes the metrics once.
func (p *Pusher) Push(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.m.set.PushMetrics(ctx, p.cfg.URL, p.cfg.options()); err != nil {
		return fmt.Errorf("pushing the load generator's metrics to %s: %w", p.cfg.URL, err)
	}
	return nil
}

func withWG(o *vm.PushOptions, wg *sync.WaitGroup) *vm.PushOptions {
	o.WaitGroup = wg
	return o
}

// scenMetrics are one scenario's metric children, named once.
type scenMetrics struct {
	set                            *vm.Set
	run, scen                      string
	scheduled, iterations, dropped *vm.Counter
	mu                             sync.Mutex
	kinds                          map[string]*vm.Counter
}

// opMetrics are one operation's metric children.
type opMetrics struct {
	ok, err *vm.Counter
	dur     *vm.PrometheusHistogram
}

func (m *Metrics) scenario(run, scen string) *scenMetrics {
	l := fmt.Sprintf(`{%s=%q,%s=%q}`, catalog.LabelRun, run, catalog.LabelScenario, scen)
	return &scenMetrics{
		set: m.set, run: run, scen: scen, kinds: map[string]*vm.Counter{},
		scheduled:  m.set.GetOrCreateCounter(catalog.LoadgenScheduled.Name + l),
		iterations: m.set.GetOrCreateCounter(catalog.LoadgenIterations.Name + l),
		dropped:    m.set.GetOrCreateCounter(catalog.LoadgenDropped.Name + l),
	}
}

func (s *scenMetrics) op(op string) *opMetrics {
	l := fmt.Sprintf(`%s=%q,%s=%q,%s=%q`, catalog.LabelRun, s.run, catalog.LabelScenario, s.scen, catalog.LabelOperation, op)
	return &opMetrics{
		ok:  s.set.GetOrCreateCounter(fmt.Sprintf(`%s{%s,%s=%q}`, catalog.LoadgenRequests.Name, l, catalog.LabelOutcome, catalog.OutcomeOK)),
		err: s.set.GetOrCreateCounter(fmt.Sprintf(`%s{%s,%s=%q}`, catalog.LoadgenRequests.Name, l, catalog.LabelOutcome, catalog.OutcomeError)),
		dur: s.set.GetOrCreatePrometheusHistogramExt(catalog.LoadgenRequestDuration.Name+"{"+l+"}", catalog.LoadgenRequestDuration.Buckets),
	}
}

func (s *scenMetrics) errorKind(kind string) *vm.Counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.kinds[kind]
	if c == nil {
		c = s.set.GetOrCreateCounter(fmt.Sprintf(`%s{%s=%q,%s=%q,%s=%q}`, catalog.LoadgenErrors.Name,
			catalog.LabelRun, s.run, catalog.LabelScenario, s.scen, catalog.LabelKind, kind))
		s.kinds[kind] = c
	}
	return c
}

func (o *opMetrics) observe(d time.Duration, failed bool) {
	if failed {
		o.err.Inc()
	} else {
		o.ok.Inc()
	}
	o.dur.Update(d.Seconds())
}

func (m *Metrics) bindWorkers(run string, live, busy func() float64) {
	l := fmt.Sprintf(`{%s=%q}`, catalog.LabelRun, run)
	m.set.GetOrCreateGauge(catalog.LoadgenWorkers.Name+l, live)
	m.set.GetOrCreateGauge(catalog.LoadgenWorkersBusy.Name+l, busy)
}
