package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func newServices(stdout, stderr io.Writer) *cobra.Command {
	var (
		specFile, name, tokenFile, redis, logLevel string
		basePort                                   int
		peers                                      []string
		all                                        bool
	)
	cmd := &cobra.Command{
		Use:   "services",
		Short: "Run the carpool services of one region (or, with --all, of every region in this process)",
		Long: `services runs one region of the carpool system: its gateway and its order, payment, location and
pricing servers, each on its own loopback port (base-port + 0..5: entry, order, payment, location,
pricing, gateway), with its store, replication pulled from every --peer, heartbeats and the fault
injector. With --all it runs every region of the spec in this process, replicating over HTTP.
The admin token (fault injection and the gateway's routing API) is read from --admin-token-file;
without it both admin APIs are off.`,
		Example: `  carpoolsla services --all --base-port 18100
  carpoolsla services --region sh-a --base-port 18100 --peer sh-b=http://127.0.0.1:18110 --peer bj-a=http://127.0.0.1:18120`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := spec.Load(specFile)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return exitError{1}
			}
			token := ""
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					fmt.Fprintf(stderr, "--admin-token-file: %v\n", err)
					return exitError{1}
				}
				token = strings.TrimSpace(string(b))
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if all {
				c, err := region.NewCluster(region.ClusterConfig{Spec: s, AdminToken: token, RedisAddr: redis, LogLevel: logLevel, BasePort: basePort})
				if err != nil {
					return err
				}
				for _, n := range c.Names() {
					printURLs(stdout, n, c.Regions[n].URLs())
				}
				return c.Run(ctx)
			}
			if !slices.Contains(s.RegionNames(), name) {
				fmt.Fprintf(stderr, "--region %q is not a region of %s; use one of %s, or --all\n", name, specFile, strings.Join(s.RegionNames(), ", "))
				return exitError{1}
			}
			ps, err := parsePeers(s, name, peers)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return exitError{1}
			}
			lns, err := region.Listen(basePort)
			if err != nil {
				return err
			}
			r, err := region.New(region.Config{Spec: s, Name: name, Listeners: lns, Peers: ps, AdminToken: token, RedisAddr: redis, LogLevel: logLevel})
			if err != nil {
				return err
			}
			printURLs(stdout, name, r.URLs())
			return r.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&specFile, "spec", defaultSpec, "path of the SLA spec")
	f.StringVar(&name, "region", "", "the region to run (a region of the spec)")
	f.BoolVar(&all, "all", false, "run every region of the spec in this process")
	f.IntVar(&basePort, "base-port", 0, "first loopback port (entry); 0 picks free ports. With --all, region i uses base-port+10*i")
	f.StringArrayVar(&peers, "peer", nil, "another region as NAME=ENTRY_URL (repeat for each)")
	f.StringVar(&tokenFile, "admin-token-file", "", "file holding the admin bearer token (fault injection, routing weights)")
	f.StringVar(&redis, "redis", "", "Redis address for driver-position streams and the ride cache lock (default: in process)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func parsePeers(s *spec.Spec, self string, in []string) ([]region.Peer, error) {
	var out []region.Peer
	seen := map[string]bool{}
	for _, p := range in {
		n, u, ok := strings.Cut(p, "=")
		if !ok || !strings.HasPrefix(u, "http") {
			return nil, fmt.Errorf("--peer %q: write NAME=http://HOST:PORT (the peer region's entry URL)", p)
		}
		if n == self || !slices.Contains(s.RegionNames(), n) || seen[n] {
			return nil, fmt.Errorf("--peer %q: %q must be another region of the spec, named once", p, n)
		}
		seen[n] = true
		city := ""
		for _, r := range s.Regions {
			if r.Name == n {
				city = r.City
			}
		}
		out = append(out, region.Peer{Name: n, City: city, EntryURL: u})
	}
	if len(out) == 0 && len(s.Regions) > 1 {
		return nil, errors.New("no --peer given: a region replicates from every other region; pass --peer NAME=URL for each, or use --all")
	}
	return out, nil
}

func printURLs(w io.Writer, name string, urls map[string]string) {
	keys := make([]string, 0, len(urls))
	for k := range urls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "region %s:\n", name)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-9s %s\n", k, urls[k])
	}
}
