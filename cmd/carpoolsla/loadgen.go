package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/loadgen/scenario"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Exit codes of `carpoolsla loadgen`, as k6's.
const (
	exitThresholds = 99 // a threshold failed
	exitUsage      = 2  // bad flags or arguments
	exitFailure    = 1  // the run could not be made or written
)

// loadgenHooks are what the binary's wiring may add to the command: a
// recorder of finished runs (ClickHouse's load_runs).
type loadgenHooks struct {
	Recorder loadgen.RunRecorder
}

type loadgenFlags struct {
	target, ramp, mix, pushURL, locationURL, center, runID string
	clickhouse                                             string
	rate, spread                                           float64
	duration, timeout, grace, pushInterval, startDelay     time.Duration
	workers, maxWorkers, maxConns, drivers                 int
	thresholds, outs, pricingAddrs                         []string
	jsonOut                                                bool
}

func newLoadgen(stdout, stderr io.Writer) *cobra.Command {
	return newLoadgenWith(stdout, stderr, loadgenHooks{})
}

func newLoadgenWith(stdout, stderr io.Writer, hooks loadgenHooks) *cobra.Command {
	var f loadgenFlags
	cmd := &cobra.Command{
		Use:   "loadgen --target URL --rate R --duration D [--scenario S] [--threshold EXPR]...",
		Short: "Open-model load over the carpool services, with k6-style thresholds",
		Long: `loadgen starts iterations at a scheduled arrival rate whatever the responses do (an open model),
measures every request from its intended start (no coordinated omission), drops and counts iterations
when every worker is busy, and prints the achieved rate next to the target, latency percentiles, and
errors by kind.

Scenarios (--scenario, a name or a weighted mix such as ride=70,quote=20,drivers=10):
  ride     the ride flow over HTTP through a gateway: create (Idempotency-Key), read until matched,
           start, complete (which pays)
  drivers  drivers streaming positions over WebSocket to location (--location-url, default the
           --target gateway's /v1/drivers/stream)
  quote    price quotes over gRPC (--pricing-addr host:port)
  http     a GET of --target

Thresholds (--threshold, repeatable): [scenario[/operation]:]metric op value, e.g. 'p99<800ms',
'error_rate<0.0005', 'dropped==0', 'achieved_rate>=190', 'ride:p95<300ms'. Metrics: pNN (p50, p90,
p95, p99, p99.9), min, mean, max, error_rate, errors, requests, dropped, dropped_rate,
interrupted, iterations, achieved_rate.

Exit codes: 0 every threshold held, 99 a threshold failed, 2 usage error, 1 the run failed.`,
		Example: `  carpoolsla loadgen --target http://127.0.0.1:18105 --rate 200 --duration 30s \
      --threshold 'p99<800ms' --threshold 'error_rate<0.0005' --threshold 'dropped==0'
  carpoolsla loadgen --target http://127.0.0.1:18105 --scenario ride=70,quote=20,drivers=10 \
      --pricing-addr 127.0.0.1:18104 --rate 20 --ramp '100:10s,300:30s' --json
  carpoolsla loadgen merge a.json b.json --threshold 'p99<800ms'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLoadgen(cmd, f, stdout, stderr, hooks)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", "base URL of a gateway (ride, drivers) or the URL to GET (http)")
	fl.Float64Var(&f.rate, "rate", 0, "arrival rate, iterations per second (with --ramp: the rate at the start)")
	fl.DurationVar(&f.duration, "duration", 0, "length of a constant-rate run")
	fl.StringVar(&f.ramp, "ramp", "", "ramping stages target:duration,..., e.g. '50:10s,200:30s' (instead of --duration)")
	fl.StringVar(&f.mix, "scenario", "ride", "scenario or weighted mix, e.g. ride=70,quote=20,drivers=10")
	fl.StringArrayVar(&f.thresholds, "threshold", nil, "pass/fail criterion, repeatable, e.g. 'p99<800ms'")
	fl.IntVar(&f.workers, "workers", loadgen.DefaultWorkers, "workers started before the run (preallocated)")
	fl.IntVar(&f.maxWorkers, "max-workers", loadgen.DefaultMaxWorkers, "most workers; an iteration finding none free waits up to --max-start-delay, then is dropped")
	fl.DurationVar(&f.startDelay, "max-start-delay", loadgen.DefaultMaxStartDelay, "how long an iteration may wait for a free worker (counted in its latency) before it is dropped; 0 drops at once, as k6")
	fl.IntVar(&f.maxConns, "max-conns", 0, "most HTTP connections per host (default --max-workers)")
	fl.DurationVar(&f.timeout, "timeout", loadgen.DefaultTimeout, "timeout of each request")
	fl.DurationVar(&f.grace, "graceful-stop", loadgen.DefaultGracefulStop, "time running iterations get to finish after the schedule ends")
	fl.BoolVar(&f.jsonOut, "json", false, "print the summary as JSON (with mergeable histograms) instead of text")
	fl.StringArrayVar(&f.outs, "out", nil, "also write the summary: json=FILE (repeatable)")
	fl.StringVar(&f.pushURL, "push-url", "", "push client-side metrics to this Prometheus-compatible import URL, e.g. http://127.0.0.1:8428/api/v1/import/prometheus")
	fl.DurationVar(&f.pushInterval, "push-interval", 5*time.Second, "interval between metric pushes")
	fl.StringSliceVar(&f.pricingAddrs, "pricing-addr", nil, "pricing gRPC address host:port for quote (repeatable or comma-separated)")
	fl.StringVar(&f.locationURL, "location-url", "", "location WebSocket URL for drivers (default from --target)")
	fl.StringVar(&f.center, "center", fmt.Sprintf("%v,%v", scenario.DefaultCenter.Lat, scenario.DefaultCenter.Lng), "lat,lng around which rides and drivers are placed")
	fl.Float64Var(&f.spread, "spread", 0.01, "how far from --center points fall, degrees")
	fl.IntVar(&f.drivers, "drivers", 100, "driver connections the drivers scenario holds")
	fl.StringVar(&f.runID, "run-id", "", "run id in metrics, records and rider ids (default random)")
	fl.StringVar(&f.clickhouse, "clickhouse", "", "record the run in ClickHouse's load_runs at this native address (host:port)")
	cmd.AddCommand(newLoadgenMerge(stdout, stderr))
	return cmd
}

// usage reports a usage error and exits 2.
func usage(stderr io.Writer, format string, args ...any) error {
	fmt.Fprintf(stderr, "carpoolsla loadgen: "+format+"\n", args...)
	return exitError{exitUsage}
}

func runLoadgen(cmd *cobra.Command, f loadgenFlags, stdout, stderr io.Writer, hooks loadgenHooks) error {
	thresholds, err := loadgen.ParseThresholds(f.thresholds)
	if err != nil {
		return usage(stderr, "%v", err)
	}
	sched, err := scheduleFrom(cmd, f)
	if err != nil {
		return usage(stderr, "%v", err)
	}
	mix, err := loadgen.ParseMix(f.mix)
	if err != nil {
		return usage(stderr, "--scenario: %v", err)
	}
	if f.clickhouse != "" && hooks.Recorder == nil {
		rec, err := openRecords(cmd.Context(), f.clickhouse, time.Duration(spec.Default().Logs.Retention))
		if err != nil {
			return usage(stderr, "%v", err)
		}
		defer rec.Close()
		hooks.Recorder = rec
	}
	for _, t := range thresholds {
		if s := t.Scenario(); s != "" && !slices.Contains(mix.Names(), s) {
			return usage(stderr, "threshold %q names scenario %s, which is not in --scenario %s", t.Expr, s, mix)
		}
	}
	outs, err := parseOuts(f.outs)
	if err != nil {
		return usage(stderr, "%v", err)
	}
	center, err := parseCenter(f.center)
	if err != nil {
		return usage(stderr, "%v", err)
	}
	runID := f.runID
	if runID == "" {
		runID = loadgen.NewRunID()
	}
	maxWorkers := f.maxWorkers
	startDelay := f.startDelay
	switch {
	case startDelay < 0:
		return usage(stderr, "--max-start-delay %v: give a duration of 0 (drop at once) or more", startDelay)
	case startDelay == 0:
		startDelay = -1 // the library's "off"
	}
	maxConns := f.maxConns
	if maxConns == 0 {
		maxConns = maxWorkers
	}
	scens, closeScens, err := scenario.Build(mix, scenario.Options{
		Target: f.target, HTTP: scenario.NewHTTPClient(maxConns), PricingAddrs: f.pricingAddrs, LocationURL: f.locationURL,
		Center: center, Spread: f.spread, Drivers: f.drivers, RunID: runID,
	})
	if err != nil {
		return usage(stderr, "%v", err)
	}
	defer func() {
		if err := closeScens(); err != nil {
			fmt.Fprintf(stderr, "carpoolsla loadgen: closing connections: %v\n", err)
		}
	}()
	metrics := loadgen.NewMetrics()
	exec, err := loadgen.New(loadgen.Config{Schedule: sched, Scenarios: scens, Workers: f.workers, MaxWorkers: maxWorkers,
		MaxStartDelay: startDelay, Timeout: f.timeout, GracefulStop: f.grace, Metrics: metrics, RunID: runID, Target: f.target, Mix: mix})
	if err != nil {
		return usage(stderr, "%v", err)
	}
	var pusher *loadgen.Pusher
	if f.pushURL != "" {
		pusher, err = loadgen.NewPusher(metrics, loadgen.PushConfig{URL: f.pushURL, Interval: f.pushInterval,
			LogErr: func(format string, args ...any) { fmt.Fprintf(stderr, "carpoolsla loadgen: "+format+"\n", args...) }})
		if err != nil {
			return usage(stderr, "--push-url: %v", err)
		}
	}

	base := cmd.Context()
	if base == nil {
		base = context.Background()
	}
	ctx, stop := signal.NotifyContext(base, os.Interrupt, syscall.SIGTERM)
	defer stop()
	side, stopSide := context.WithCancel(context.WithoutCancel(ctx))
	sideDone := make(chan struct{})
	var pushErr error
	go func() {
		defer close(sideDone)
		progress := make(chan struct{})
		if loadgen.IsTerminal(stderr) {
			go func() { defer close(progress); loadgen.ShowProgress(side, stderr, exec, time.Second) }()
		} else {
			close(progress)
		}
		if pusher != nil {
			pushErr = pusher.Run(side)
		}
		<-progress
	}()
	runErr := exec.Run(ctx)
	stopSide()
	<-sideDone

	sum := exec.Summary()
	passed := loadgen.Evaluate(sum, thresholds)
	if f.jsonOut {
		err = sum.WriteJSON(stdout)
	} else {
		err = sum.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "carpoolsla loadgen: %v\n", err)
		return exitError{exitFailure}
	}
	failed := false
	for _, path := range outs {
		if err := writeSummaryFile(path, sum); err != nil {
			fmt.Fprintf(stderr, "carpoolsla loadgen: %v\n", err)
			failed = true
		}
	}
	if pushErr != nil {
		fmt.Fprintf(stderr, "carpoolsla loadgen: warning: %v\n", pushErr)
	}
	if hooks.Recorder != nil {
		if err := recordRun(hooks.Recorder, sum); err != nil {
			fmt.Fprintf(stderr, "carpoolsla loadgen: warning: %v\n", err)
		}
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "carpoolsla loadgen: %v\n", runErr)
		failed = true
	}
	switch {
	case failed:
		return exitError{exitFailure}
	case !passed:
		fmt.Fprintf(stderr, "carpoolsla loadgen: %d of %d thresholds failed\n", countFailed(sum), len(sum.Thresholds))
		return exitError{exitThresholds}
	}
	return nil
}

func recordRun(rec loadgen.RunRecorder, sum *loadgen.Summary) error {
	run, err := loadgen.RunOf(sum)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.RecordRun(ctx, run); err != nil {
		return fmt.Errorf("recording the run: %w", err)
	}
	return nil
}

func countFailed(s *loadgen.Summary) int {
	n := 0
	for _, t := range s.Thresholds {
		if !t.Passed {
			n++
		}
	}
	return n
}

// scheduleFrom builds the schedule: --rate for --duration, or --ramp stages
// starting at --rate (0 unless given).
func scheduleFrom(cmd *cobra.Command, f loadgenFlags) (loadgen.Schedule, error) {
	if f.ramp != "" {
		if cmd.Flags().Changed("duration") {
			return loadgen.Schedule{}, errors.New("give either --duration (constant rate) or --ramp (stages carry their durations), not both")
		}
		stages, err := loadgen.ParseRamp(f.ramp)
		if err != nil {
			return loadgen.Schedule{}, fmt.Errorf("--ramp: %w", err)
		}
		s := loadgen.Schedule{StartRate: f.rate, Stages: stages}
		return s, s.Validate()
	}
	if f.rate <= 0 || f.duration <= 0 {
		return loadgen.Schedule{}, fmt.Errorf("give --rate (iterations per second, now %v) and --duration (now %v), or --ramp stages", f.rate, f.duration)
	}
	s := loadgen.Constant(f.rate, f.duration)
	return s, s.Validate()
}

// parseOuts reads --out json=FILE values.
func parseOuts(outs []string) ([]string, error) {
	var paths []string
	for _, o := range outs {
		kind, path, ok := strings.Cut(o, "=")
		if !ok || kind != "json" || path == "" {
			return nil, fmt.Errorf("--out %q: want json=FILE", o)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

func parseCenter(s string) (scenario.LatLng, error) {
	la, lo, ok := strings.Cut(s, ",")
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(la), 64)
	lng, err2 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
	if !ok || err1 != nil || err2 != nil || lat < -90 || lat > 90 || lng < -180 || lng > 180 {
		return scenario.LatLng{}, fmt.Errorf("--center %q: want lat,lng in degrees, e.g. 31.2304,121.4737", s)
	}
	return scenario.LatLng{Lat: lat, Lng: lng}, nil
}

func writeSummaryFile(path string, s *loadgen.Summary) error {
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the summary: %w", err)
	}
	if err := s.WriteJSON(fh); err != nil {
		_ = fh.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func newLoadgenMerge(stdout, stderr io.Writer) *cobra.Command {
	var (
		thresholds, outs []string
		jsonOut          bool
	)
	cmd := &cobra.Command{
		Use:   "merge FILE.json...",
		Short: "Merge JSON summaries of runs made at the same time (several machines) and check thresholds",
		Long: `merge reads summaries written by 'carpoolsla loadgen --json' (or --out json=FILE) on several machines
that loaded one system at the same time, and prints their combination: counts and rates add up, the
HDR histograms merge (so percentiles are those of all requests together), and the duration is the
longest. Thresholds are evaluated on the merged result; the exit codes are loadgen's.`,
		Example: "  carpoolsla loadgen merge a.json b.json --threshold 'p99<800ms' --threshold 'error_rate<0.0005'",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			ts, err := loadgen.ParseThresholds(thresholds)
			if err != nil {
				return usage(stderr, "%v", err)
			}
			paths, err := parseOuts(outs)
			if err != nil {
				return usage(stderr, "%v", err)
			}
			var sums []*loadgen.Summary
			for _, file := range files {
				fh, err := os.Open(file)
				if err != nil {
					return usage(stderr, "merge: %v", err)
				}
				s, err := loadgen.ReadSummary(fh)
				_ = fh.Close()
				if err != nil {
					return usage(stderr, "merge: %s: %v", file, err)
				}
				sums = append(sums, s)
			}
			merged, err := loadgen.Merge(sums...)
			if err != nil {
				return usage(stderr, "%v", err)
			}
			passed := loadgen.Evaluate(merged, ts)
			if jsonOut {
				err = merged.WriteJSON(stdout)
			} else {
				err = merged.WriteText(stdout)
			}
			if err != nil {
				fmt.Fprintf(stderr, "carpoolsla loadgen merge: %v\n", err)
				return exitError{exitFailure}
			}
			for _, p := range paths {
				if err := writeSummaryFile(p, merged); err != nil {
					fmt.Fprintf(stderr, "carpoolsla loadgen merge: %v\n", err)
					return exitError{exitFailure}
				}
			}
			if !passed {
				fmt.Fprintf(stderr, "carpoolsla loadgen merge: %d of %d thresholds failed\n", countFailed(merged), len(merged.Thresholds))
				return exitError{exitThresholds}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&thresholds, "threshold", nil, "pass/fail criterion on the merged result, repeatable")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the merged summary as JSON")
	cmd.Flags().StringArrayVar(&outs, "out", nil, "also write the merged summary: json=FILE")
	return cmd
}
