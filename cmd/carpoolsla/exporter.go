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
	"syscall"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/exporters/configdrift"
	"github.com/carpoolsla/carpoolsla/exporters/probe"
	"github.com/carpoolsla/carpoolsla/exporters/repair"
	"github.com/carpoolsla/carpoolsla/exporters/rto"
	"github.com/carpoolsla/carpoolsla/exporters/streamlag"
	"github.com/carpoolsla/carpoolsla/exporters/synclag"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// built is what every exporter kind's Build returns, whatever its type.
type built struct {
	collectors []prometheus.Collector
	sets       []*vmetrics.Set
	run        func(context.Context) error
	// admin, when set, is mounted at /admin/repair/.
	admin http.Handler
}

type exporterKind struct {
	name, short string
	// flags registers the kind's flags and returns its builder.
	flags func(fs *pflag.FlagSet) func(*slog.Logger) (built, error)
}

// kindFlags is what every exporter package's Flags offers.
type kindFlags[E any] interface {
	Register(fs *pflag.FlagSet)
	Build(log *slog.Logger) (E, error)
}

// kind adapts an exporter package's Flags, and the parts of its built
// Exporter, to an exporterKind.
func kind[E any](name, short string, newFlags func() kindFlags[E], parts func(E) built) exporterKind {
	return exporterKind{name, short, func(fs *pflag.FlagSet) func(*slog.Logger) (built, error) {
		f := newFlags()
		f.Register(fs)
		return func(l *slog.Logger) (built, error) {
			e, err := f.Build(l)
			if err != nil {
				return built{}, err
			}
			return parts(e), nil
		}
	}}
}

var exporterKinds = []exporterKind{
	kind("synclag", "cross-region sync lag by the heartbeat method (MySQL/MariaDB, PostgreSQL, Redis)",
		func() kindFlags[*synclag.Exporter] { return &synclag.Flags{} },
		func(e *synclag.Exporter) built { return built{collectors: e.Collectors, sets: e.Sets, run: e.Run} }),
	kind("streamlag", "consumer-group lag of Redis Streams and NATS JetStream consumers",
		func() kindFlags[*streamlag.Exporter] { return &streamlag.Flags{} },
		func(e *streamlag.Exporter) built { return built{collectors: e.Collectors, sets: e.Sets, run: e.Run} }),
	kind("configdrift", "whether every region's normalized configuration hashes the same",
		func() kindFlags[*configdrift.Exporter] { return &configdrift.Flags{} },
		func(e *configdrift.Exporter) built { return built{collectors: e.Collectors, sets: e.Sets, run: e.Run} }),
	kind("probe", "health probes (HEAD every interval, N failures = unhealthy) per region and target",
		func() kindFlags[*probe.Exporter] { return &probe.Flags{} },
		func(e *probe.Exporter) built { return built{collectors: e.Collectors, sets: e.Sets, run: e.Run} }),
	kind("verify", "data verifier between two regions' tables (MariaDB/MySQL, PostgreSQL), with optional auto-repair",
		func() kindFlags[*repair.Exporter] { return &repair.Flags{} },
		func(e *repair.Exporter) built {
			return built{collectors: e.Collectors, sets: e.Sets, run: e.Run, admin: e.Admin}
		}),
	kind("rto", "synthetic business probe (create and cancel a ride per region every second)",
		func() kindFlags[*rto.Exporter] { return &rto.Flags{} },
		func(e *rto.Exporter) built { return built{collectors: e.Collectors, sets: e.Sets, run: e.Run} }),
}

func newExporter(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exporter KIND",
		Short: "Run one exporter standalone, serving /metrics, pointed at real systems",
		Long: `exporter runs one of the platform's exporters on its own, so that it can be pointed at your own
databases, streams and endpoints. Each serves /metrics (with carpool_exporter_up, scrape errors and
scrape duration) and /healthz on --listen. See docs/exporters/.`,
	}
	for _, k := range exporterKinds {
		cmd.AddCommand(newExporterKind(k, stdout, stderr))
	}
	return cmd
}

func newExporterKind(k exporterKind, stdout, stderr io.Writer) *cobra.Command {
	var listen, logLevel string
	var build func(*slog.Logger) (built, error)
	cmd := &cobra.Command{
		Use:   k.name,
		Short: k.short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := telemetry.NewLogger(telemetry.LogConfig{Service: "exporter-" + k.name, Region: "-", Level: logLevel, Sink: telemetry.NewWriterSink(stderr)})
			if err != nil {
				fmt.Fprintf(stderr, "--log-level: %v\n", err)
				return exitError{1}
			}
			b, err := build(log)
			if err != nil {
				fmt.Fprintf(stderr, "carpoolsla exporter %s: %v\n", k.name, err)
				return exitError{1}
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				fmt.Fprintf(stderr, "--listen %s: %v\n", listen, err)
				return exitError{1}
			}
			reg := prometheus.NewRegistry()
			for _, c := range b.collectors {
				if err := reg.Register(c); err != nil {
					return fmt.Errorf("registering the %s exporter's metrics: %w", k.name, err)
				}
			}
			mux := exporters.Mux(exporters.Handler(reg, b.sets...))
			if b.admin != nil {
				mux.Handle("/admin/repair/", b.admin)
			}
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(stdout, "carpoolsla exporter %s: metrics at http://%s/metrics\n", k.name, ln.Addr())
			g, ctx := errgroup.WithContext(ctx)
			g.Go(func() error {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				return nil
			})
			g.Go(func() error { return b.run(ctx) })
			g.Go(func() error {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return srv.Shutdown(sctx)
			})
			return g.Wait()
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9560", "address to serve /metrics on")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	build = k.flags(cmd.Flags())
	return cmd
}
