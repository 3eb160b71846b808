package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/exporters/rto"
	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/loadgen/scenario"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/embedded"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/engine/actuate"
	"github.com/carpoolsla/carpoolsla/sla/engine/signals"
	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/report/chstore"
	"github.com/carpoolsla/carpoolsla/sla/report/memhistory"
	"github.com/carpoolsla/carpoolsla/sla/rollup"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// demoFlags are the flags of `carpoolsla demo`.
type demoFlags struct {
	specFile, listen, dataDir, clickhouse, logLevel, mix string
	basePort                                             int
	rate                                                 float64
	loadFor                                              time.Duration
	fast                                                 bool
	summaryEvery                                         time.Duration
}

func newDemo(stdout, stderr io.Writer) *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole platform on this machine: three regions, the SLA engine, the report API and status page, and load",
		Long: `demo runs the platform end to end in one process, on loopback, with nothing but this binary:
every region of the spec (gateway, order, dispatch, location, pricing, payment, replication and the
exporters), the embedded Prometheus scraping all of them and evaluating the rules generated from the
spec, the SLA engine steering the gateways, the SLI minute rollup, the SLA report API and status page
on --listen, and background load through every gateway.

Logs, SLA events and SLI minutes stay in process unless --clickhouse names a ClickHouse (then they
go there, with its schema migrated and its retention job running, and the report reads from it).
Inject a fault from the status page (with the printed token) or with 'carpoolsla fault'.
--fast shortens the breaker's windows (trip and recover in seconds, not minutes) so a fault's whole
story plays out while you watch. Ctrl-C stops everything cleanly.`,
		Example: `  carpoolsla demo
  carpoolsla demo --fast --rate 20
  carpoolsla demo --clickhouse 127.0.0.1:9000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, f, stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.specFile, "spec", defaultSpec, "path of the SLA spec")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the status page, the report API, the engine's API and the Prometheus-compatible query API")
	fs.IntVar(&f.basePort, "base-port", 18100, "first loopback port of the regions (region i uses base-port+10*i ... +5); 0 picks free ports")
	fs.StringVar(&f.dataDir, "data-dir", "", "folder for the embedded store, the admin token and the logs (default: a temporary folder removed at exit)")
	fs.StringVar(&f.clickhouse, "clickhouse", "", "ClickHouse native address (host:port) for logs, SLA events and SLI minutes; empty keeps them in process")
	fs.Float64Var(&f.rate, "rate", 6, "background load in iterations per second, spread over every region's gateway; 0 for none")
	fs.StringVar(&f.mix, "mix", "ride=60,drivers=30,quote=10", "background load mix (scenarios ride, drivers, quote)")
	fs.DurationVar(&f.loadFor, "load-for", 24*time.Hour, "how long the background load runs")
	fs.BoolVar(&f.fast, "fast", false, "short breaker windows (trip after 10s, recover after 10s, 5s ramp steps) so faults play out in a minute")
	fs.DurationVar(&f.summaryEvery, "summary-every", 2*time.Second, "how often the live summary line is printed (0: never)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "log level of the services and the platform: debug, info, warn or error")
	return cmd
}

// fastBreaker shortens the spec's breaker windows for a demo that shows a
// whole trip, hold, ramp and recovery while someone watches.
func fastBreaker(s *spec.Spec) {
	d := func(t time.Duration) spec.Duration { return spec.Duration(t) }
	s.Engine.Interval = d(time.Second)
	s.Engine.ScrapeInterval = d(time.Second)
	s.Engine.RecoveryBlackout = d(5 * time.Second)
	s.Engine.StaleAfter = d(15 * time.Second)
	s.Routing.Weights.Period = d(2 * time.Second)
	s.Breaker.Trip.For = d(10 * time.Second)
	s.Breaker.Recover.For = d(10 * time.Second)
	s.Breaker.Ramp.StepDuration = d(5 * time.Second)
	s.Breaker.Hold = spec.HoldOpen{Initial: d(10 * time.Second), Multiplier: 2, Max: d(2 * time.Minute), ResetAfter: d(10 * time.Minute)}
}

// demoUsage prints a flag problem and exits 2.
func demoUsage(stderr io.Writer, err error) error {
	fmt.Fprintf(stderr, "carpoolsla demo: %v\n", err)
	return exitError{2}
}

func runDemo(ctx context.Context, f demoFlags, stdout, stderr io.Writer) error {
	started := time.Now()
	s, err := spec.Load(f.specFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{1}
	}
	if f.fast {
		fastBreaker(s)
		if err := s.Validate(); err != nil {
			return fmt.Errorf("--fast made the spec invalid: %w", err)
		}
	}
	if f.rate < 0 || math.IsNaN(f.rate) {
		return demoUsage(stderr, fmt.Errorf("--rate %g: give iterations per second, 0 or more", f.rate))
	}
	mix, err := loadgen.ParseMix(f.mix)
	if err != nil {
		return demoUsage(stderr, fmt.Errorf("--mix: %w", err))
	}
	if f.basePort < 0 || f.basePort > 65000 {
		return demoUsage(stderr, fmt.Errorf("--base-port %d: give a port below 65000, or 0 for free ports", f.basePort))
	}
	dir := f.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "carpoolsla-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return demoUsage(stderr, fmt.Errorf("--data-dir: %w", err))
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return demoUsage(stderr, fmt.Errorf("--listen %s: %w (is another demo running? pick another address)", f.listen, err))
	}
	defer ln.Close()
	base := "http://" + ln.Addr().String()

	// Logs: the platform's own go to stderr at --log-level; the services'
	// to a file in the data folder (or ClickHouse), so the terminal stays
	// readable.
	log, err := telemetry.NewLogger(telemetry.LogConfig{Service: "demo", Region: catalog.GlobalRegion, Level: f.logLevel, Sink: telemetry.NewWriterSink(stderr)})
	if err != nil {
		return demoUsage(stderr, fmt.Errorf("--log-level: %w", err))
	}
	token, err := report.NewToken()
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g, gctx := errgroup.WithContext(ctx)

	// ClickHouse, when given: schema, writers, retention.
	var (
		sink    *chsink.Sink
		spans   sdktrace.SpanExporter
		mem     *memhistory.Store
		history report.History
		logSink telemetry.LogSink
	)
	if f.clickhouse != "" {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{f.clickhouse}, DialTimeout: 5 * time.Second})
		if err != nil {
			return demoUsage(stderr, fmt.Errorf("--clickhouse %s: %w", f.clickhouse, err))
		}
		defer conn.Close()
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = chsink.Migrate(mctx, conn, chsink.SchemaOptions{Retention: time.Duration(s.Logs.Retention), Logger: log})
		cancel()
		if err != nil {
			return demoUsage(stderr, fmt.Errorf("--clickhouse %s: migrating the schema: %w (is ClickHouse running there? deploy/local/stack.sh starts one)", f.clickhouse, err))
		}
		metrics, err := chsink.NewMetrics(reg)
		if err != nil {
			return err
		}
		sink, err = chsink.NewSink(conn, chsink.Config{WAL: chsink.WALConfig{Dir: filepath.Join(dir, "wal")}, Logger: log.With("component", "chsink"), Metrics: metrics})
		if err != nil {
			return err
		}
		ret, err := chsink.NewRetentionJob(conn, chsink.RetentionConfig{Retention: time.Duration(s.Logs.Retention), Logger: log, Metrics: metrics})
		if err != nil {
			return err
		}
		if history, err = chstore.New(conn, chstore.Config{}); err != nil {
			return err
		}
		logSink = chsink.NewLogSink(sink.Logs)
		spans = chsink.NewSpanExporter(sink.Spans)
		g.Go(func() error { return sink.Run(gctx) })
		g.Go(func() error { return ret.Run(gctx) })
	} else {
		lf, err := os.Create(filepath.Join(dir, "services.log"))
		if err != nil {
			return err
		}
		defer lf.Close()
		logSink = telemetry.NewWriterSink(lf)
		mem, err = memhistory.New(memhistory.Config{})
		if err != nil {
			return err
		}
		history = mem
	}

	// The regions.
	cluster, err := region.NewCluster(region.ClusterConfig{Spec: s, AdminToken: token, LogSink: logSink, LogLevel: f.logLevel, BasePort: f.basePort,
		WeightsURL: base + "/api/v1/routing", SpanExporter: spans})
	if err != nil {
		return demoUsage(stderr, fmt.Errorf("starting the regions (--base-port %d): %w", f.basePort, err))
	}

	// The embedded store scrapes every region's servers, the engine and
	// the demo's own metrics, and evaluates the spec's rules.
	rules, err := writeRules(s, dir)
	if err != nil {
		return err
	}
	var targets []embedded.Target
	jobs := cluster.MetricsJobs()
	for _, job := range sortedKeys(jobs) {
		targets = append(targets, embedded.Target{Job: job, URLs: jobs[job]})
	}
	targets = append(targets, embedded.Target{Job: engineJob, URLs: []string{base + "/metrics"}})
	scfg := embedded.ConfigFromSpec(s, filepath.Join(dir, "store"))
	scfg.Targets, scfg.RuleFiles, scfg.ExternalURL = targets, rules, base
	scfg.Logger = log.With("component", "store")
	store, err := embedded.Open(scfg)
	if err != nil {
		return fmt.Errorf("opening the embedded store: %w", err)
	}
	defer store.Close()

	// The engine reads the store and pushes to every gateway.
	reader, err := signals.New(signals.Config{Spec: s, Querier: store, Registerer: reg, Log: log.With("component", "signals")})
	if err != nil {
		return err
	}
	var gws []actuate.Gateway
	for _, name := range cluster.Names() {
		gws = append(gws, actuate.Gateway{Region: name, URL: cluster.Regions[name].URLs()[region.Gateway]})
	}
	pusher, err := actuate.New(actuate.Config{Gateways: gws, Token: token, Registerer: reg, Log: log.With("component", "actuate")})
	if err != nil {
		return err
	}
	sinks := fanoutSink{engine.NewLogSink(log.With("component", "engine"))}
	var minutes rollup.Sink
	if sink != nil {
		sinks = append(sinks, chEvents{sink.Events})
		minutes = chMinutes{sink.SLIMinutes}
	} else {
		sinks = append(sinks, mem)
		minutes = mem
	}
	// With --data-dir the breakers survive a restart of the demo.
	eng, err := engine.New(engine.Config{Spec: s, Reader: reader, Actuator: pusher, Sink: sinks, Log: log.With("component", "engine"), Registerer: reg,
		StateFile: filepath.Join(dir, "engine-state.json")})
	if err != nil {
		return err
	}
	roll, err := rollup.New(rollup.Config{Spec: s, Querier: store, Sink: minutes, Log: log.With("component", "rollup")})
	if err != nil {
		return err
	}

	// The report API and status page, with the engine's live view and the
	// regions' fault injectors behind them.
	// Drill results posted to the report API are exported as carpool_drill_*
	// too, for the DR dashboard.
	drills := demoDrills{mem: mem, metrics: &rto.Drills{}}
	for _, c := range rto.NewExporter(nil, drills.metrics, log).Collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	if sink != nil {
		drills.w = sink.Drills
	}
	rep, err := report.New(report.Config{Spec: s, History: history, Live: liveFromEngine{eng, cluster}, Faults: clusterFaults{cluster}, Drills: drills,
		Tokens: []string{token}, Log: log.With("component", "report"), Registerer: reg})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	for _, p := range embedded.APIPaths {
		if strings.Contains(p, "<name>") {
			p = "/label/"
		}
		mux.Handle("/api/v1"+p, store.Handler())
	}
	mux.Handle("/-/", store.Handler())
	mux.Handle("/api/v1/status", eng.Handler())
	mux.Handle("/api/v1/routing", eng.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.Gatherers{reg, store.Gatherer()}, promhttp.HandlerOpts{}))
	mux.Handle("/", rep)

	g.Go(func() error { return cluster.Run(gctx) })
	g.Go(func() error { return store.Run(gctx) })
	g.Go(func() error { return eng.Run(gctx) })
	g.Go(func() error { return roll.Run(gctx, 10*time.Second) })
	serveUntilDone(g, gctx, ln, mux)

	// Background load, one executor per region's gateway.
	var execs []*loadgen.Executor
	if f.rate > 0 {
		if err := waitReady(gctx, cluster); err != nil {
			return err
		}
		for _, name := range cluster.Names() {
			urls := cluster.Regions[name].URLs()
			ws, closeScenarios, err := scenario.Build(mix, scenario.Options{Target: urls[region.Gateway], PricingAddrs: []string{urls[region.Pricing]},
				RunID: "demo-" + name, Drivers: 50})
			if err != nil {
				return demoUsage(stderr, fmt.Errorf("--mix: %w", err))
			}
			ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(f.rate/float64(len(cluster.Names())), f.loadFor),
				Scenarios: ws, Workers: 8, MaxWorkers: 64, RunID: "demo-" + name, Target: urls[region.Gateway], Mix: mix})
			if err != nil {
				closeScenarios()
				return err
			}
			execs = append(execs, ex)
			g.Go(func() error {
				defer closeScenarios()
				if err := ex.Run(gctx); err != nil && gctx.Err() == nil {
					log.Warn("background load stopped", "region", name, "err", err)
				}
				return nil
			})
		}
	}

	printDemoBanner(stdout, s, f, base, dir, tokenFile, cluster, time.Since(started))
	if f.summaryEvery > 0 {
		g.Go(func() error { return liveSummary(gctx, stdout, eng, execs, f.summaryEvery) })
	}
	err = g.Wait()
	if sink != nil {
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = sink.Flush(fctx)
		cancel()
	}
	fmt.Fprintln(stdout, "\ndemo stopped")
	if ctx.Err() != nil {
		return nil // Ctrl-C: a clean stop
	}
	return err
}

// waitReady waits until every region's gateway answers, so the first
// iterations of the load are not refused connections.
func waitReady(ctx context.Context, c *region.Cluster) error {
	deadline := time.Now().Add(15 * time.Second)
	for _, name := range c.Names() {
		u := c.Regions[name].URLs()[region.Gateway] + "/metrics"
		for {
			resp, err := http.Get(u)
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("region %s's gateway did not answer at %s within 15s: %w", name, u, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func printDemoBanner(w io.Writer, s *spec.Spec, f demoFlags, base, dir, tokenFile string, c *region.Cluster, took time.Duration) {
	fmt.Fprintf(w, "carpoolsla demo is up (%d regions, started in %.1fs)\n\n", len(c.Names()), took.Seconds())
	fmt.Fprintf(w, "  status page         %s/\n", base)
	fmt.Fprintf(w, "  SLA report API      %s/api/v1/sla?scope=composite   (OpenAPI: %s/api/v1/openapi.json)\n", base, base)
	fmt.Fprintf(w, "  engine status       %s/api/v1/status\n", base)
	fmt.Fprintf(w, "  Prometheus API      %s   (add it to a Grafana as a Prometheus datasource)\n", base)
	fmt.Fprintf(w, "  dashboards          deploy/generated/grafana/dashboards/*.json\n")
	fmt.Fprintf(w, "  admin token         %s   (file %s)\n", readToken(tokenFile), tokenFile)
	fmt.Fprintf(w, "  data                %s\n", dir)
	for _, name := range c.Names() {
		u := c.Regions[name].URLs()
		fmt.Fprintf(w, "  region %-6s       gateway %s   faults %s/admin/faults\n", name, u[region.Gateway], u[region.Entry])
	}
	first := c.Names()[0]
	var faultsFlags []string
	for _, name := range c.Names() {
		faultsFlags = append(faultsFlags, "--faults "+name+"="+c.Regions[name].URLs()[region.Entry])
	}
	fmt.Fprintf(w, "\nTry: make region %s slow, watch its health fall and its breaker open (%s with --fast), then clear it:\n", first, breakerHint(s, f.fast))
	fmt.Fprintf(w, "  carpoolsla fault inject --region %s --kind latency --value 500ms %s --admin-token-file %s\n", first, strings.Join(faultsFlags, " "), tokenFile)
	fmt.Fprintf(w, "  carpoolsla fault clear  --region %s %s --admin-token-file %s\n", first, strings.Join(faultsFlags, " "), tokenFile)
	last := c.Names()[len(c.Names())-1]
	where := fmt.Sprintf("--base-port %d", f.basePort)
	if f.basePort == 0 {
		var fl []string
		for _, name := range c.Names() {
			u := c.Regions[name].URLs()
			fl = append(fl, "--gateway "+name+"="+u[region.Gateway], "--faults "+name+"="+u[region.Entry])
		}
		where = strings.Join(fl, " ")
	}
	fmt.Fprintf(w, "or use the form on the status page. Measure a drill (its RTO and RPO join the SLA report):\n")
	fmt.Fprintf(w, "  carpoolsla drill --scenario region_down --region %s %s --admin-token-file %s --engine %s/api/v1/status --report-url %s\n", last, where, tokenFile, base, base)
	fmt.Fprintf(w, "Ctrl-C stops.\n\n")
}

func breakerHint(s *spec.Spec, fast bool) string {
	if fast {
		return "about " + s.Breaker.Trip.For.String()
	}
	return "after " + s.Breaker.Trip.For.String() + "; seconds"
}

func readToken(file string) string {
	b, _ := os.ReadFile(file)
	return strings.TrimSpace(string(b))
}

// liveSummary prints one line of the engine's view and the load's counts
// every period: on a terminal it rewrites the line in place.
func liveSummary(ctx context.Context, w io.Writer, eng *engine.Engine, execs []*loadgen.Executor, every time.Duration) error {
	tty := loadgen.IsTerminal(w)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		line := summaryLine(eng.Status(), execs)
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
}

func summaryLine(st engine.Status, execs []*loadgen.Executor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", time.Now().Format("15:04:05"))
	for _, r := range st.Regions {
		fmt.Fprintf(&b, " | %s health %s %s w%.0f", r.Region, num0(r.Health), r.Breaker, r.Weight)
	}
	if c := float64(st.Global.Composite); !math.IsNaN(c) {
		fmt.Fprintf(&b, " | SLA %.3f%%", c*100)
	}
	if st.Panic {
		b.WriteString(" | PANIC")
	}
	var reqs, errs, dropped int64
	var rate float64
	for _, e := range execs {
		p := e.Progress()
		reqs, errs, dropped, rate = reqs+p.Requests, errs+p.Errors, dropped+p.Dropped, rate+p.AchievedRate
	}
	if len(execs) > 0 {
		fmt.Fprintf(&b, " | load %.1f/s req %d err %d dropped %d", rate, reqs, errs, dropped)
	}
	return b.String()
}

func num0(n engine.Number) string {
	if math.IsNaN(float64(n)) {
		return "?"
	}
	return fmt.Sprintf("%.0f", float64(n))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
