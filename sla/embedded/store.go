// Package embedded is the SLA engine's default metric store: an in-process
// Prometheus built from the prometheus/prometheus module's own packages. Its
// TSDB keeps samples on local disk for the spec's retention, its scrape
// manager scrapes the configured targets, its rule manager evaluates the
// generated recording and alerting rules, its notifier sends firing alerts
// to Alertmanager, and its PromQL engine answers the engine's queries
// (source.Querier) and a Prometheus-compatible HTTP API subset (Handler) that
// a Grafana Prometheus datasource can use.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/carpoolsla/carpoolsla/sla/source"
)

// Store is the embedded Prometheus. Open it, Run it until its context ends,
// then Close it. Query, the appenders and Handler work from Open on;
// scraping, rule evaluation and alerting run while Run does. It implements
// source.Querier and storage.Appendable/AppendableV2.
type Store struct {
	cfg      Config
	reg      prometheus.Registerer
	gatherer prometheus.Gatherer

	db       *tsdb.DB
	engine   *promql.Engine
	scraper  *scrape.Manager
	ruler    *rules.Manager
	notifier *notifier.Manager
	api      *apiHandler

	ruleFiles []string
	extLabels labels.Labels

	ctx    context.Context // ends at Close: rule queries and Run
	cancel context.CancelFunc

	mu         sync.Mutex
	targets    []Target
	promCfg    *promconfig.Config
	running    bool // Run was called
	closed     bool
	runDone    chan struct{}
	scrapeSets chan map[string][]*targetgroup.Group
	notifySets chan map[string][]*targetgroup.Group

	ready atomic.Bool // Run runs
	open  atomic.Bool // between Open and Close: queries are answered
}

var (
	_ source.Querier       = (*Store)(nil)
	_ storage.Appendable   = (*Store)(nil)
	_ storage.AppendableV2 = (*Store)(nil)
	_ storage.Queryable    = (*Store)(nil)
)

// Open validates cfg, opens (or creates) the TSDB in cfg.Dir, checks the
// rule files and builds the managers. Nothing is scraped or evaluated
// before Run.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{cfg: cfg, targets: slices.Clone(cfg.Targets)}
	s.reg, s.gatherer = cfg.Registerer, nil
	if s.reg == nil {
		r := prometheus.NewRegistry()
		s.reg, s.gatherer = r, r
	} else if g, ok := s.reg.(prometheus.Gatherer); ok {
		s.gatherer = g
	}
	if s.gatherer == nil {
		s.gatherer = prometheus.NewRegistry()
	}
	log := cfg.Logger

	var err error
	s.promCfg, err = promConfig(cfg, s.targets)
	if err != nil {
		return nil, err
	}
	s.ruleFiles, err = expandRuleFiles(cfg.RuleFiles)
	if err != nil {
		return nil, err
	}
	s.extLabels = labels.FromMap(cfg.ExternalLabels)

	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded: creating the store's folder: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	s.db, err = tsdb.Open(cfg.Dir, log.With("component", "tsdb"), s.reg, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("embedded: opening the TSDB in %s: %w", cfg.Dir, err)
	}
	fail := func(err error) (*Store, error) {
		s.cancel()
		_ = s.db.Close()
		return nil, err
	}

	evalMillis := cfg.EvaluationInterval.Milliseconds()
	s.engine = promql.NewEngine(promql.EngineOpts{
		Logger:                   log.With("component", "query engine"),
		Reg:                      s.reg,
		MaxSamples:               cfg.MaxSamples,
		Timeout:                  cfg.QueryTimeout,
		LookbackDelta:            cfg.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return evalMillis },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
	})

	s.scraper, err = scrape.NewManager(&scrape.Options{
		DiscoveryReloadInterval:  model.Duration(cfg.TargetReloadInterval),
		DiscoveryReloadOnStartup: true,
	}, log.With("component", "scrape manager"), nil, nil, s.db, s.reg)
	if err != nil {
		return fail(fmt.Errorf("embedded: building the scrape manager: %w", err))
	}

	s.notifier = notifier.NewManager(&notifier.Options{
		QueueCapacity: 10000,
		Registerer:    s.reg,
	}, model.UTF8Validation, log.With("component", "notifier"))

	s.ruler = rules.NewManager(&rules.ManagerOptions{
		AppendableV2:    s.db,
		Queryable:       s.db,
		QueryFunc:       rules.EngineQueryFunc(s.engine, s.db),
		NotifyFunc:      rules.SendAlerts(s.notifier, cfg.ExternalURL),
		Context:         s.ctx,
		ExternalURL:     mustURL(cfg.ExternalURL),
		Registerer:      s.reg,
		Logger:          log.With("component", "rule manager"),
		OutageTolerance: time.Hour,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     cfg.ResendDelay,
	})
	if _, errs := s.ruler.LoadGroups(cfg.EvaluationInterval, s.extLabels, cfg.ExternalURL, nil, false, s.ruleFiles...); len(errs) > 0 {
		return fail(fmt.Errorf("embedded: loading the rule files: %w", errors.Join(errs...)))
	}

	s.api, err = newAPIHandler(s)
	if err != nil {
		return fail(err)
	}
	s.open.Store(true)
	return s, nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		// Validate parsed it already.
		panic(fmt.Sprintf("embedded: external URL %q: %v", s, err))
	}
	return u
}

// Run scrapes the targets, evaluates the rules and sends alerts until ctx
// ends or the store is closed, then stops them and returns nil. The TSDB
// stays open until Close. Run may be called once.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return errors.New("embedded: Run after Close")
	case s.running:
		s.mu.Unlock()
		return errors.New("embedded: Run called twice")
	}
	s.running = true
	s.runDone = make(chan struct{})
	defer close(s.runDone)
	s.scrapeSets = make(chan map[string][]*targetgroup.Group, 1)
	s.notifySets = make(chan map[string][]*targetgroup.Group, 1)
	cfg := s.promCfg
	err := errors.Join(s.scraper.ApplyConfig(cfg), s.notifier.ApplyConfig(cfg))
	if err == nil {
		err = s.ruler.Update(s.cfg.EvaluationInterval, s.ruleFiles, s.extLabels, s.cfg.ExternalURL, nil)
	}
	if err != nil {
		s.mu.Unlock()
		// No rule group started (Update is last and failed, or was not
		// reached), so stopping cannot wait on one.
		s.ruler.Stop()
		s.scraper.Stop()
		s.notifier.Stop()
		return fmt.Errorf("embedded: applying the configuration: %w", err)
	}
	replace(s.scrapeSets, scrapeGroups(cfg))
	replace(s.notifySets, notifyGroups(cfg))
	s.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.scraper.Run(s.scrapeSets); err != nil {
			s.cfg.Logger.Error("scrape manager stopped", "err", err)
		}
	})
	wg.Go(func() { s.notifier.Run(s.notifySets) })
	wg.Go(s.ruler.Run) // blocks until Stop
	s.ready.Store(true)
	s.cfg.Logger.Info("embedded store running", "dir", s.cfg.Dir, "jobs", len(cfg.ScrapeConfigs),
		"rule_files", len(s.ruleFiles), "alertmanagers", len(s.cfg.Alertmanagers))

	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	s.ready.Store(false)
	s.ruler.Stop()
	s.scraper.Stop()
	s.notifier.Stop()
	wg.Wait()
	return nil
}

// replace puts m on a one-slot channel, dropping an update not yet taken:
// the managers only need the latest full set.
func replace(ch chan map[string][]*targetgroup.Group, m map[string][]*targetgroup.Group) {
	for {
		select {
		case ch <- m:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// scrapeGroups returns the static target groups of every scrape job.
func scrapeGroups(cfg *promconfig.Config) map[string][]*targetgroup.Group {
	m := map[string][]*targetgroup.Group{}
	for _, sc := range cfg.ScrapeConfigs {
		m[sc.JobName] = staticGroups(sc.ServiceDiscoveryConfigs)
	}
	return m
}

// notifyGroups returns the static target groups of every Alertmanager set,
// keyed as the notifier keys them.
func notifyGroups(cfg *promconfig.Config) map[string][]*targetgroup.Group {
	m := map[string][]*targetgroup.Group{}
	for key, am := range cfg.AlertingConfig.AlertmanagerConfigs.ToMap() {
		m[key] = staticGroups(am.ServiceDiscoveryConfigs)
	}
	return m
}

func staticGroups(cfgs discovery.Configs) []*targetgroup.Group {
	var groups []*targetgroup.Group
	for _, c := range cfgs {
		if static, ok := c.(discovery.StaticConfig); ok {
			groups = append(groups, static...)
		}
	}
	for i, g := range groups {
		if g.Source == "" {
			g.Source = fmt.Sprint(i)
		}
	}
	return groups
}

// ApplyTargets replaces the scrape jobs. Targets of a job that stays keep
// their series; a removed job is no longer scraped and, as in Prometheus on
// a configuration reload, its series fade after the lookback (5m). New
// targets are scraped within TargetReloadInterval.
func (s *Store) ApplyTargets(targets []Target) error {
	if err := validateTargets(targets); err != nil {
		return err
	}
	cfg, err := promConfig(s.cfg, targets)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("embedded: ApplyTargets after Close")
	}
	if s.running {
		if err := s.scraper.ApplyConfig(cfg); err != nil {
			return fmt.Errorf("embedded: applying targets: %w", err)
		}
		replace(s.scrapeSets, scrapeGroups(cfg))
	}
	s.targets, s.promCfg = slices.Clone(targets), cfg
	return nil
}

// Targets returns the scrape jobs in force.
func (s *Store) Targets() []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.targets)
	for i := range out {
		out[i].URLs = slices.Clone(out[i].URLs)
		out[i].Labels = maps.Clone(out[i].Labels)
	}
	return out
}

// Close stops Run if it is running, waits for it, and closes the TSDB.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.open.Store(false)
	running, done := s.running, s.runDone
	s.mu.Unlock()
	s.cancel()
	if running {
		<-done
	} else {
		s.ruler.Stop()
		s.scraper.Stop()
		s.notifier.Stop()
	}
	s.scraper.UnregisterMetrics()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded: closing the TSDB: %w", err)
	}
	return nil
}

// Ready reports whether the store is running: scraping, evaluating and
// answering.
func (s *Store) Ready() bool { return s.ready.Load() }

// Gatherer gathers the store's own metrics (those of its TSDB, engine,
// scrape, rule and notifier managers); an empty one when Config.Registerer
// is not a prometheus.Gatherer.
func (s *Store) Gatherer() prometheus.Gatherer { return s.gatherer }

// Appender returns a storage appender into the TSDB, for tests and
// scenarios (storage.Appendable).
func (s *Store) Appender(ctx context.Context) storage.Appender { return s.db.Appender(ctx) }

// AppenderV2 returns a storage appender into the TSDB, for tests and
// scenarios (storage.AppendableV2).
func (s *Store) AppenderV2(ctx context.Context) storage.AppenderV2 { return s.db.AppenderV2(ctx) }

// Querier returns a storage querier over [mint, maxt] in milliseconds
// (storage.Queryable).
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) { return s.db.Querier(mint, maxt) }

// Query evaluates the instant query expr at at (now when zero) and
// implements source.Querier: a vector as it is, a scalar as one Sample
// without labels.
func (s *Store) Query(ctx context.Context, expr string, at time.Time) (source.Vector, error) {
	if at.IsZero() {
		at = time.Now()
	}
	q, err := s.engine.NewInstantQuery(ctx, s.db, nil, expr, at)
	if err != nil {
		return nil, fmt.Errorf("embedded: query %q: %w", expr, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("embedded: query %q: %w", expr, res.Err)
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		out := make(source.Vector, 0, len(v))
		for _, smp := range v {
			if smp.H != nil {
				return nil, fmt.Errorf("embedded: query %q: the result holds a native histogram for %s: wrap it in histogram_quantile or histogram_count", expr, smp.Metric)
			}
			out = append(out, source.Sample{Labels: smp.Metric.Map(), Value: smp.F, T: time.UnixMilli(smp.T)})
		}
		return out, nil
	case promql.Scalar:
		return source.Vector{{Labels: map[string]string{}, Value: v.V, T: time.UnixMilli(v.T)}}, nil
	default:
		return nil, fmt.Errorf("embedded: query %q: the result is a %s: give an expression that yields an instant vector or a scalar", expr, res.Value.Type())
	}
}
