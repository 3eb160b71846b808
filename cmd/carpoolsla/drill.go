package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/spf13/cobra"

	"github.com/carpoolsla/carpoolsla/exporters/rto"
	"github.com/carpoolsla/carpoolsla/loadgen/drill"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Exit codes of `carpoolsla drill`.
const (
	drillExitMissed       = 1 // the drill ran and missed an objective
	drillExitUsage        = 2 // bad flags (as every usage error)
	drillExitUnmeasurable = 3 // the scenario cannot be measured here (latency_spike without --engine)
	drillExitNotRun       = 4 // the drill could not be carried out (unreachable, not steady, fault refused)
)

// drillURLs are the per-region URL flags shared by `drill` and `fault`.
type drillURLs struct {
	specFile, tokenFile string
	basePort            int
	gateways, faults    []string
	apis, metrics       []string
}

func (u *drillURLs) register(cmd *cobra.Command, withGateways bool) {
	f := cmd.Flags()
	f.StringVar(&u.specFile, "spec", defaultSpec, "path of the SLA spec (its regions, cities and DR objectives)")
	f.StringVar(&u.tokenFile, "admin-token-file", "", "file holding the admin bearer token of the fault and routing admin APIs")
	f.IntVar(&u.basePort, "base-port", 0, "the --base-port of 'carpoolsla services --all': region i's entry is base-port+10*i, its gateway base-port+10*i+5 (URL flags override)")
	f.StringArrayVar(&u.faults, "faults", nil, "REGION=URL of a region's fault admin API (its service entry, or its gateway), repeated")
	if withGateways {
		f.StringArrayVar(&u.gateways, "gateway", nil, "REGION=URL of a region's gateway, repeated: riders create rides through it, and its GET /admin/routing is polled")
		f.StringArrayVar(&u.apis, "api", nil, "REGION=URL of a region's own ride API (its service entry), repeated; default its --faults URL")
		f.StringArrayVar(&u.metrics, "metrics", nil, "REGION=URL of the /metrics with a region's sync lag and RPO exposure, repeated; default its API + /metrics")
	}
}

// resolve reads the spec and the token and builds every region's URLs.
func (u *drillURLs) resolve() (*spec.Spec, string, map[string]drill.RegionTarget, error) {
	s, err := spec.Load(u.specFile)
	if err != nil {
		return nil, "", nil, err
	}
	token := ""
	if u.tokenFile != "" {
		b, err := os.ReadFile(u.tokenFile)
		if err != nil {
			return nil, "", nil, fmt.Errorf("--admin-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, "", nil, fmt.Errorf("--admin-token-file %s is empty", u.tokenFile)
		}
	}
	names := s.RegionNames()
	out := map[string]drill.RegionTarget{}
	if u.basePort != 0 {
		if u.basePort < 1 || u.basePort+10*len(names) > 65535 {
			return nil, "", nil, fmt.Errorf("--base-port %d: give the first port of `carpoolsla services --all`, below %d", u.basePort, 65535-10*len(names))
		}
		at := func(i int, server string) string {
			return fmt.Sprintf("http://127.0.0.1:%d", u.basePort+10*i+slices.Index(region.Servers, server))
		}
		for i, n := range names {
			out[n] = drill.RegionTarget{Gateway: at(i, region.Gateway), API: at(i, region.Entry)}
		}
	}
	set := func(flag string, values []string, put func(*drill.RegionTarget, string)) error {
		for _, v := range values {
			name, url, ok := strings.Cut(v, "=")
			if !ok || !strings.HasPrefix(url, "http") {
				return fmt.Errorf("--%s %q: write REGION=http://HOST:PORT", flag, v)
			}
			if !slices.Contains(names, name) {
				return fmt.Errorf("--%s %q: %q is not a region of %s; use one of %s", flag, v, name, u.specFile, strings.Join(names, ", "))
			}
			rt := out[name]
			put(&rt, strings.TrimSuffix(url, "/"))
			out[name] = rt
		}
		return nil
	}
	for _, f := range []struct {
		flag   string
		values []string
		put    func(*drill.RegionTarget, string)
	}{
		{"gateway", u.gateways, func(r *drill.RegionTarget, v string) { r.Gateway = v }},
		{"faults", u.faults, func(r *drill.RegionTarget, v string) { r.Faults = v }},
		{"api", u.apis, func(r *drill.RegionTarget, v string) { r.API = v }},
		{"metrics", u.metrics, func(r *drill.RegionTarget, v string) { r.Metrics = v }},
	} {
		if err := set(f.flag, f.values, f.put); err != nil {
			return nil, "", nil, err
		}
	}
	return s, token, out, nil
}

func newDrill(stdout, stderr io.Writer) *cobra.Command {
	var (
		urls                               drillURLs
		scenario, regionName, city, value  string
		engineURL, out, push, faultAt, lvl string
		clickhouseAddr, reportURL          string
		reportTokenFile                    string
		rate                               float64
		duration, baseline, settle         time.Duration
		maxWait, recoverTimeout, poll      time.Duration
		external                           bool
	)
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Run a fault drill against a running deployment and measure its RTO, RPO and order success",
		Long: `drill runs one of the spec's DR drill scenarios against a running deployment (the demo, or regions
reached by URL). It creates rides through every region's gateway at a fixed rate (riders homed in every
region), waits for a steady baseline, injects the scenario's fault through the fault admin API at a
recorded time T0, and measures:

  RTO by phase   detect (a gateway's probes, ejection or breaker, the engine, or the replication lag noticed),
                 decide (the engine opened the breaker, or a gateway took the region out), shift (every
                 gateway routes around it) and total (T0 to the failed region's riders served elsewhere
                 with every gateway routing around it); for replication_stall and clock_skew, the
                 catch-up after the fault is cleared
  RPO            acknowledged rides missing in the surviving regions after a settle time, and the
                 replication lag at T0
  success        the share of ride creations acknowledged (the spec's order availability, 99.99 %)
  ride ids       unique, and increasing per snowflake node

then clears the fault and waits for recovery. It checks the spec's DR objectives (dr.drills, tightened by
dr.pairs), prints the report, writes it as JSON and Markdown under --out, pushes the drill metrics
with --push, and records the result in ClickHouse with --clickhouse and in a report API (the demo's)
with --report-url, where the SLA report's RPO/RTO compliance counts it. With --external-fault it injects nothing: a Chaos Mesh experiment (deploy/k8s/chaos) does,
and T0 is --fault-at or the first failure seen.

Scenarios: region_down, same_city_loss (every region of --region's city), replication_stall,
latency_spike (needs --engine: it must trip the breaker), clock_skew.
Exit codes: 0 every objective met, 1 an objective missed, 2 bad flags, 3 not measurable here,
4 the drill could not be carried out.`,
		Example: `  carpoolsla drill --scenario region_down --region sh-a --base-port 18100 --admin-token-file token
  carpoolsla drill --scenario latency_spike --region sh-b --base-port 18100 --admin-token-file token \
      --engine http://127.0.0.1:8080/api/v1/status --value 500ms
  carpoolsla drill --scenario region_down --region sh-a --external-fault --gateway sh-a=http://gw-sh-a ... `,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, token, targets, err := urls.resolve()
			if err != nil {
				fmt.Fprintln(stderr, err)
				return exitError{drillExitUsage}
			}
			if scenario == "" {
				fmt.Fprintf(stderr, "--scenario is required: one of %s\n", strings.Join(spec.Scenarios, ", "))
				return exitError{drillExitUsage}
			}
			var at time.Time
			if faultAt != "" {
				if at, err = time.Parse(time.RFC3339Nano, faultAt); err != nil {
					fmt.Fprintf(stderr, "--fault-at %q: write an RFC 3339 time such as 2026-11-25T10:00:00Z\n", faultAt)
					return exitError{drillExitUsage}
				}
			}
			log, err := telemetry.NewLogger(telemetry.LogConfig{Service: "drill", Region: catalog.GlobalRegion, Level: lvl, Sink: telemetry.NewWriterSink(stderr)})
			if err != nil {
				fmt.Fprintf(stderr, "--log-level: %v\n", err)
				return exitError{drillExitUsage}
			}
			drills := &rto.Drills{}
			reg := prometheus.NewRegistry()
			for _, c := range rto.NewExporter(nil, drills, log).Collectors {
				reg.MustRegister(c)
			}
			dm, err := drill.NewMetrics(reg)
			if err != nil {
				return err
			}
			var recs recorders
			if reportURL != "" {
				p, err := newReportPoster(reportURL, reportTokenFile, token)
				if err != nil {
					fmt.Fprintln(stderr, err)
					return exitError{drillExitUsage}
				}
				recs = append(recs, p)
			}
			if clickhouseAddr != "" {
				rec, err := openRecords(cmd.Context(), clickhouseAddr, time.Duration(s.Logs.Retention))
				if err != nil {
					fmt.Fprintln(stderr, err)
					return exitError{drillExitUsage}
				}
				defer rec.Close()
				recs = append(recs, rec)
			}
			var recorder drill.Recorder
			if len(recs) > 0 {
				recorder = recs
			}
			r, err := drill.New(drill.Config{
				Spec: s, Scenario: scenario, Region: regionName, City: city, Value: value,
				Target: drill.Target{Regions: targets, Engine: engineURL, Token: token},
				Rate:   rate, Hold: duration, Baseline: baseline, Settle: settle, MaxWait: maxWait, RecoverTimeout: recoverTimeout, Poll: poll,
				External: external, FaultAt: at, Log: log, Metrics: drills, Recorder: recorder,
			})
			if err != nil {
				fmt.Fprintln(stderr, strings.TrimPrefix(err.Error(), "configuring the drill: "))
				return exitError{drillExitUsage}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := r.Run(ctx)
			if err != nil {
				fmt.Fprintf(stderr, "the drill could not be carried out: %v\n", err)
				return exitError{drillExitNotRun}
			}
			dm.Observe(res)
			fmt.Fprint(stdout, res.Markdown())
			if out != "" {
				j, m, err := drill.WriteReports(out, res)
				if err != nil {
					fmt.Fprintln(stderr, err)
					return exitError{drillExitNotRun}
				}
				fmt.Fprintf(stdout, "\nreports: %s %s\n", j, m)
			}
			if push != "" {
				if err := pushDrillMetrics(cmd.Context(), push, reg); err != nil {
					fmt.Fprintln(stderr, err)
					return exitError{drillExitNotRun}
				}
				fmt.Fprintf(stdout, "drill metrics pushed to %s\n", push)
			}
			switch {
			case !res.Measurable:
				return exitError{drillExitUnmeasurable}
			case !res.Passed:
				fmt.Fprintf(stderr, "drill %s missed: %s\n", res.Scenario, strings.Join(res.Failed(), ", "))
				return exitError{drillExitMissed}
			}
			return nil
		},
	}
	urls.register(cmd, true)
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", "", "the drill: "+strings.Join(spec.Scenarios, ", "))
	f.StringVar(&regionName, "region", "", "the region the fault hits (same_city_loss: every region of its city)")
	f.StringVar(&city, "city", "", "same_city_loss only: the city to lose, instead of --region's")
	f.StringVar(&value, "value", "", "the fault's size: latency_spike a latency (default 400ms), clock_skew a skew (default 2s)")
	f.StringVar(&engineURL, "engine", "", "the SLA engine's status URL (GET, JSON with each region's breaker); without it the gateways alone decide, and latency_spike is not measurable")
	f.Float64Var(&rate, "rate", drill.DefaultRate, "rides created per second over all riders")
	f.DurationVar(&duration, "duration", drill.DefaultHold, "how long the fault is held (at least until the failover is measured, at most --max-wait)")
	f.DurationVar(&baseline, "baseline", drill.DefaultBaseline, "steady load, every region healthy and no failed ride, required before the fault")
	f.DurationVar(&settle, "settle", drill.DefaultSettle, "time given to replication before acknowledged rides are looked up in the surviving regions")
	f.DurationVar(&maxWait, "max-wait", 0, "bound on the wait for the failover after T0 (default the scenario's RTO objective + 10s)")
	f.DurationVar(&recoverTimeout, "recover-timeout", drill.DefaultRecoverTimeout, "bound on the wait for recovery after the fault is cleared")
	f.DurationVar(&poll, "poll", drill.DefaultPoll, "interval of the gateway and engine polls: the phases' resolution")
	f.StringVar(&out, "out", "drill-reports", "folder for the JSON and Markdown reports (empty: none)")
	f.StringVar(&push, "push", "", "push the drill metrics (carpool_drill_*) in the Prometheus text format to this URL, e.g. VictoriaMetrics' /api/v1/import/prometheus")
	f.BoolVar(&external, "external-fault", false, "inject nothing: measure a fault injected by Chaos Mesh (deploy/k8s/chaos); T0 is --fault-at or the first failure seen")
	f.StringVar(&faultAt, "fault-at", "", "with --external-fault: the fault's time, RFC 3339")
	f.StringVar(&clickhouseAddr, "clickhouse", "", "record the result in ClickHouse's drill_results at this native address (host:port)")
	f.StringVar(&reportURL, "report-url", "", "record the result in this report API (POST /api/v1/drills), e.g. the demo's http://127.0.0.1:8080")
	f.StringVar(&reportTokenFile, "report-token-file", "", "bearer token of --report-url (default the --admin-token-file token, as in the demo)")
	f.StringVar(&lvl, "log-level", "warn", "log level of the drill's progress on stderr: debug, info, warn or error")
	return cmd
}

// pushDrillMetrics POSTs the registry's metrics in the Prometheus text format.
func pushDrillMetrics(ctx context.Context, url string, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("gathering the drill metrics: %w", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encoding the drill metrics: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &buf)
	if err != nil {
		return fmt.Errorf("--push %s: %w", url, err)
	}
	req.Header.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("pushing the drill metrics to %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("pushing the drill metrics to %s: status %d: %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// newReportPoster checks --report-url and reads its token.
func newReportPoster(base, tokenFile, adminToken string) (reportPoster, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return reportPoster{}, fmt.Errorf("--report-url %q: give the report API's base URL, e.g. http://127.0.0.1:8080", base)
	}
	token := adminToken
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return reportPoster{}, fmt.Errorf("--report-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return reportPoster{}, errors.New("--report-url needs a write token: give --report-token-file (or --admin-token-file when the report API takes the admin token, as the demo's does)")
	}
	target := strings.TrimSuffix(u.String(), "/")
	if !strings.HasSuffix(target, "/api/v1/drills") {
		target += "/api/v1/drills"
	}
	return reportPoster{url: target, token: token, client: &http.Client{Timeout: 10 * time.Second}}, nil
}
