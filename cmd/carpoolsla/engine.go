package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/alerts"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/embedded"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/engine/actuate"
	"github.com/carpoolsla/carpoolsla/sla/engine/signals"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// engineJob is the scrape job of the engine's own /metrics in the embedded
// store, so the carpool_sla_* series reach the same store the dashboards
// and alerts read.
const engineJob = "carpool-engine"

// engineFlags are the flags of `carpoolsla engine`.
type engineFlags struct {
	specFile, listen, logLevel string
	scrape                     []string
	dryRun                     bool
	latencyWindow              time.Duration
	stateFile                  string
	stateMaxAge                time.Duration
	external                   source.Flags
	store                      embedded.Flags
	push                       actuate.Flags
	// changed reports whether a flag was set on the command line.
	changed func(name string) bool
}

func newEngine(stdout, stderr io.Writer) *cobra.Command {
	var f engineFlags
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Run the SLA engine: read the signals, score the regions, trip breakers and push route weights",
		Long: `engine runs the SLA engine of the spec. Every engine.interval it reads its signals with PromQL,
computes SLO attainment, burn rates, the composite SLA and each region's health score, decides each
region's circuit breaker and route weight, and pushes the route table to every --gateway
(PUT /admin/routing with the admin token from --admin-token-file). Without --gateway it decides
and reports without pushing; with --dry-run the gateways get every region closed at its weight.

Signals come from an external Prometheus-compatible API with --prometheus (Prometheus, Thanos,
VictoriaMetrics; its own scrape and rule configuration apply), or else from the embedded store:
an in-process Prometheus in --store-dir that scrapes every --scrape job (plus the engine's own
/metrics), evaluates the rules generated from --spec (or the --store-rules files) and serves its
query API (/api/v1/query, query_range, labels, series) on --listen next to the engine's own:

  GET /api/v1/status    every region's score, components, breaker, weight and SLOs
  GET /api/v1/routing   the current route table (the gateways' pull fallback)
  GET /metrics          the engine's metrics (carpool_sla_*, carpool_breaker_state, ...)

The breakers survive a restart: the engine keeps them in --state-file (by default
engine-state.json in --store-dir with the embedded store; none with --prometheus unless given)
and restores them at start when the file is younger than --state-max-age, so a region it had
broken stays out until it shows it recovered.`,
		Example: `  carpoolsla engine --spec deploy/sla.yaml \
    --scrape sh-a-entry=http://127.0.0.1:18100/metrics --scrape sh-a-gateway=http://127.0.0.1:18105/metrics \
    --gateway sh-a=http://127.0.0.1:18105 --gateway sh-b=http://127.0.0.1:18115 --gateway bj-a=http://127.0.0.1:18125 \
    --admin-token-file token
  carpoolsla engine --spec deploy/sla.yaml --prometheus http://127.0.0.1:9090 --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runEngine(ctx, f, stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.specFile, "spec", defaultSpec, "path of the SLA spec")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:9100", "address of the engine's HTTP API, its /metrics and (embedded) the store's query API")
	fs.StringArrayVar(&f.scrape, "scrape", nil, "embedded store: a scrape target as job=URL (repeat; a job may have several URLs; the path defaults to /metrics)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "decide and report without acting: the gateways get every region closed (overrides the spec's breaker.dryRun)")
	fs.DurationVar(&f.latencyWindow, "latency-window", signals.DefaultLatencyWindow, "rate window of each region's P99 and P95 latency and traffic (the breaker's and the weights' input); at least two scrape intervals")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.stateFile, "state-file", "", "file that keeps the breakers across restarts (default engine-state.json in --store-dir; none with --prometheus); --state-file= with --store-dir for none")
	fs.DurationVar(&f.stateMaxAge, "state-max-age", engine.DefaultStateMaxAge, "oldest state file restored at start; 0 restores any age")
	f.external.Register(fs)
	f.store.Register(fs)
	fs.StringVar(&f.store.Dir, "data-dir", embedded.DefaultDir, "alias of --store-dir")
	// Unless --store-rules is given, the command evaluates the rules
	// generated from --spec itself, so they always match the spec it runs.
	fs.Lookup("store-rules").Usage = "rule files (or globs) the embedded store evaluates; repeatable; --store-rules= for none"
	fs.Lookup("store-rules").DefValue = "the rules generated from --spec, written under --store-dir"
	f.push.Register(fs)
	f.changed = func(name string) bool { return fs.Changed(name) }
	return cmd
}

// usageErr prints a flag problem and exits 2.
func usageErr(stderr io.Writer, err error) error {
	fmt.Fprintf(stderr, "carpoolsla engine: %v\n", err)
	return exitError{2}
}

// parseScrape groups job=URL pairs into scrape jobs, in flag order.
func parseScrape(in []string) ([]embedded.Target, error) {
	var out []embedded.Target
	for _, s := range in {
		job, u, ok := strings.Cut(s, "=")
		job, u = strings.TrimSpace(job), strings.TrimSpace(u)
		if !ok || job == "" || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
			return nil, fmt.Errorf("--scrape %q: write job=URL, e.g. sh-a-gateway=http://127.0.0.1:18105/metrics", s)
		}
		if job == engineJob {
			return nil, fmt.Errorf("--scrape %q: the job name %s is the engine's own; pick another", s, engineJob)
		}
		i := slices.IndexFunc(out, func(t embedded.Target) bool { return t.Job == job })
		if i < 0 {
			out = append(out, embedded.Target{Job: job})
			i = len(out) - 1
		}
		out[i].URLs = append(out[i].URLs, u)
	}
	return out, nil
}

func runEngine(ctx context.Context, f engineFlags, stdout, stderr io.Writer) error {
	s, err := spec.Load(f.specFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{1}
	}
	if f.dryRun {
		s.Breaker.DryRun = true
	}
	external := f.external.External()
	var httpCfg source.HTTPConfig
	if external {
		if httpCfg, err = f.external.Config(); err != nil {
			return usageErr(stderr, err)
		}
		for _, name := range []string{"scrape", "store-dir", "data-dir", "store-rules", "store-alertmanager", "store-external-url"} {
			if f.changed(name) {
				return usageErr(stderr, fmt.Errorf("--%s configures the embedded store; with --prometheus configure scraping, rules and alerting in that server", name))
			}
		}
	}
	if f.stateMaxAge < 0 {
		return usageErr(stderr, fmt.Errorf("--state-max-age %s: give a positive age such as 1h, or 0 to restore any age", f.stateMaxAge))
	}
	if f.latencyWindow < time.Second {
		return usageErr(stderr, fmt.Errorf("--latency-window %s is too short; give a rate window of at least two scrape intervals, such as 1m", f.latencyWindow))
	}
	targets, err := parseScrape(f.scrape)
	if err != nil {
		return usageErr(stderr, err)
	}
	var pushCfg actuate.Config
	if f.push.Enabled() || f.push.TokenFile != "" {
		if pushCfg, err = f.push.Config(); err != nil {
			return usageErr(stderr, err)
		}
		if !f.push.Enabled() {
			return usageErr(stderr, errors.New("--admin-token-file without --gateway: name every region's gateway as --gateway region=URL"))
		}
		if err := pushCfg.Validate(); err != nil {
			return usageErr(stderr, err)
		}
		for _, g := range pushCfg.Gateways {
			if !slices.Contains(s.RegionNames(), g.Region) {
				return usageErr(stderr, fmt.Errorf("--gateway %s: not a region of %s; use one of %s", g.Region, f.specFile, strings.Join(s.RegionNames(), ", ")))
			}
		}
	}
	log, err := telemetry.NewLogger(telemetry.LogConfig{Service: "engine", Region: catalog.GlobalRegion, Level: f.logLevel, Sink: telemetry.NewWriterSink(stderr)})
	if err != nil {
		return usageErr(stderr, fmt.Errorf("--log-level: %w", err))
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return usageErr(stderr, fmt.Errorf("--listen %s: %w", f.listen, err))
	}
	defer ln.Close()
	base := "http://" + ln.Addr().String()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gatherers := prometheus.Gatherers{reg}
	mux := http.NewServeMux()

	var (
		querier source.Querier
		store   *embedded.Store
	)
	if external {
		h, err := source.NewHTTP(httpCfg)
		if err != nil {
			return usageErr(stderr, err)
		}
		cctx, cancel := context.WithTimeout(ctx, httpCfg.Timeout)
		if err := h.Check(cctx); err != nil {
			log.Warn("the external store does not answer yet; the engine keeps querying it every tick", "url", httpCfg.URL, "err", err)
		}
		cancel()
		querier = h
	} else {
		if !f.changed("store-rules") {
			if f.store.RuleFiles, err = writeRules(s, f.store.Dir); err != nil {
				return err
			}
		}
		if f.store.ExternalURL == "" {
			f.store.ExternalURL = base
		}
		cfg, err := f.store.Config(s, append(targets, embedded.Target{Job: engineJob, URLs: []string{base + "/metrics"}}))
		if err != nil {
			return usageErr(stderr, err)
		}
		cfg.Logger = log.With("component", "store")
		if store, err = embedded.Open(cfg); err != nil {
			return usageErr(stderr, fmt.Errorf("opening the embedded store: %w", err))
		}
		defer store.Close()
		gatherers = append(gatherers, store.Gatherer())
		querier = store
		mux.Handle("/api/v1/", store.Handler())
		mux.Handle("/-/", store.Handler())
	}

	reader, err := signals.New(signals.Config{Spec: s, Querier: querier, LatencyWindow: f.latencyWindow, Registerer: reg, Log: log.With("component", "signals")})
	if err != nil {
		return err
	}
	ecfg := engine.Config{Spec: s, Reader: reader, Now: time.Now, Log: log, Registerer: reg, StateFile: f.stateFile, StateMaxAge: f.stateMaxAge}
	if !f.changed("state-file") && !external {
		ecfg.StateFile = filepath.Join(f.store.Dir, "engine-state.json")
	}
	if f.stateMaxAge == 0 {
		ecfg.StateMaxAge = -1 // the library's "any age"
	}
	if f.push.Enabled() {
		pushCfg.Registerer = reg
		pushCfg.Log = log.With("component", "actuate")
		pusher, err := actuate.New(pushCfg)
		if err != nil {
			return usageErr(stderr, err)
		}
		ecfg.Actuator = pusher
	}
	eng, err := engine.New(ecfg)
	if err != nil {
		return err
	}
	mux.Handle("/api/v1/status", eng.Handler())
	mux.Handle("/api/v1/routing", eng.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))

	mode := "embedded store in " + f.store.Dir
	if external {
		mode = "external store " + httpCfg.URL
	}
	acting := "deciding without pushing (no --gateway)"
	if ecfg.Actuator != nil {
		acting = fmt.Sprintf("pushing to %d gateways", len(pushCfg.Gateways))
	}
	if s.Breaker.DryRun {
		acting += ", dry run"
	}
	fmt.Fprintf(stdout, "engine listening on %s (%s; %s; every %s)\n", base, mode, acting, s.Engine.Interval)

	g, gctx := errgroup.WithContext(ctx)
	serveUntilDone(g, gctx, ln, mux)
	if store != nil {
		g.Go(func() error { return store.Run(gctx) })
	}
	g.Go(func() error { return eng.Run(gctx) })
	return g.Wait()
}

// writeRules writes the rules generated from s under dir and returns their
// path, so the embedded store evaluates exactly what the spec says.
func writeRules(s *spec.Spec, dir string) ([]string, error) {
	set, err := alerts.Build(s)
	if err != nil {
		return nil, fmt.Errorf("generating the rules of the spec: %w", err)
	}
	b, err := set.RulesYAML(s)
	if err != nil {
		return nil, fmt.Errorf("generating the rules of the spec: %w", err)
	}
	path := filepath.Join(dir, "rules", "rules.yml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("writing the generated rules: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, fmt.Errorf("writing the generated rules: %w", err)
	}
	return []string{path}, nil
}

// serveUntilDone serves h on ln in g until ctx ends, then shuts the server
// down, giving requests in flight 5 s.
func serveUntilDone(g *errgroup.Group, ctx context.Context, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving %s: %w", ln.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
}
