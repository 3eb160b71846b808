package region

import (
	"context"
	"fmt"
	"net"
	"slices"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/exporters/configdrift"
	"github.com/carpoolsla/carpoolsla/exporters/rpo"
	"github.com/carpoolsla/carpoolsla/exporters/streamlag"
	"github.com/carpoolsla/carpoolsla/exporters/synclag"

	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// ClusterConfig configures every region of a spec in one process.
type ClusterConfig struct {
	Spec       *spec.Spec
	AdminToken string
	// WeightsURL is every gateway's pull fallback (see Config.WeightsURL).
	WeightsURL string
	// SpanExporter receives every region's spans (see Config.SpanExporter).
	SpanExporter sdktrace.SpanExporter
	RedisAddr    string
	LogSink      telemetry.LogSink
	LogLevel     string
	// BasePort, when set, puts region i's servers on BasePort+10*i+j;
	// 0 picks free ports.
	BasePort int
}

// Cluster is every region of a spec running in one process, each on its
// own loopback ports, replicating over HTTP as separate processes would.
type Cluster struct {
	Regions map[string]*Region
	order   []string
}

// NewCluster binds and builds every region.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	lns := map[string]map[string]net.Listener{}
	closeAll := func() {
		for _, m := range lns {
			for _, l := range m {
				_ = l.Close()
			}
		}
	}
	for i, r := range cfg.Spec.Regions {
		base := 0
		if cfg.BasePort > 0 {
			base = cfg.BasePort + 10*i
		}
		m, err := Listen(base)
		if err != nil {
			closeAll()
			return nil, err
		}
		lns[r.Name] = m
	}
	c := &Cluster{Regions: map[string]*Region{}}
	for _, r := range cfg.Spec.Regions {
		var peers []Peer
		for _, p := range cfg.Spec.Regions {
			if p.Name != r.Name {
				peers = append(peers, Peer{Name: p.Name, City: p.City, EntryURL: URL(lns[p.Name][Entry])})
			}
		}
		reg, err := New(Config{Spec: cfg.Spec, Name: r.Name, Listeners: lns[r.Name], Peers: peers, AdminToken: cfg.AdminToken, WeightsURL: cfg.WeightsURL, SpanExporter: cfg.SpanExporter,
			RedisAddr: cfg.RedisAddr, LogSink: cfg.LogSink, LogLevel: cfg.LogLevel})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("building region %s: %w", r.Name, err)
		}
		c.Regions[r.Name] = reg
		c.order = append(c.order, r.Name)
	}
	if err := c.wireExporters(); err != nil {
		closeAll()
		return nil, err
	}
	return c, nil
}

// wireExporters puts, on each region entry's /metrics, the exporters that
// measure that region as a target: sync lag (heartbeats applied from every
// other region), RPO exposure (writes of every other region not yet applied
// here) and its driver-stream consumer lag. In one process they read the
// stores directly; the standalone exporters read real databases.
func (c *Cluster) wireExporters() error {
	// Every region's running configuration, compared across regions. Each
	// region exports the comparison, so any region's scrape carries it.
	drift := configdrift.Set{Source: "services"}
	for _, name := range c.order {
		r := c.Regions[name]
		drift.Regions = append(drift.Regions, configdrift.Region{Name: name, Fetcher: configdrift.FetcherFunc(func(context.Context) ([]byte, error) { return r.RunningConfig() })})
	}
	for _, name := range c.order {
		if len(drift.Regions) < 2 {
			break
		}
		cd, err := configdrift.New(configdrift.Config{Sets: []configdrift.Set{drift}})
		if err != nil {
			return fmt.Errorf("config-drift exporter for %s: %w", name, err)
		}
		if err := c.Regions[name].AddExporter(exporters.NewCollector(cd, 0, c.Regions[name].log)); err != nil {
			return err
		}
	}
	for _, name := range c.order {
		r := c.Regions[name]
		var sources []string
		var pairs []rpo.Pair
		for _, src := range c.order {
			if src != name {
				sources = append(sources, src)
				pairs = append(pairs, rpo.Pair{SourceRegion: src, Source: c.Regions[src].Store, TargetRegion: name, Target: r.Store})
			}
		}
		if len(sources) == 0 {
			continue
		}
		sl, err := synclag.NewStoreReader(name, r.Store, sources, nil)
		if err != nil {
			return fmt.Errorf("sync-lag exporter for %s: %w", name, err)
		}
		if err := r.AddExporter(exporters.NewCollector(sl, 0, r.log), sl.Set()); err != nil {
			return err
		}
		rp, err := rpo.New(rpo.Config{Pairs: pairs})
		if err != nil {
			return fmt.Errorf("RPO exporter for %s: %w", name, err)
		}
		if err := r.AddExporter(exporters.NewCollector(rp, 0, r.log)); err != nil {
			return err
		}
		gr, err := streamlag.NewGroupReader(name, r.Location.Stream(), r.Location.Group())
		if err != nil {
			return fmt.Errorf("stream-lag exporter for %s: %w", name, err)
		}
		st, err := streamlag.New(streamlag.Config{Readers: []streamlag.Reader{gr}})
		if err != nil {
			return fmt.Errorf("stream-lag exporter for %s: %w", name, err)
		}
		if err := r.AddExporter(exporters.NewCollector(st, 0, r.log)); err != nil {
			return err
		}
	}
	return nil
}

// MetricsJobs groups every region's /metrics URLs into scrape jobs by
// server kind, "carpool-<server>" (carpool-entry, carpool-gateway, ...),
// each job's URLs sorted: what a metrics store scrapes to see the cluster.
func (c *Cluster) MetricsJobs() map[string][]string {
	jobs := map[string][]string{}
	for _, name := range c.order {
		for server, u := range c.Regions[name].MetricsTargets() {
			jobs["carpool-"+server] = append(jobs["carpool-"+server], u)
		}
	}
	for _, urls := range jobs {
		slices.Sort(urls)
	}
	return jobs
}

// Names lists the regions in spec order.
func (c *Cluster) Names() []string { return append([]string(nil), c.order...) }

// Run runs every region until ctx ends.
func (c *Cluster) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, r := range c.Regions {
		g.Go(func() error { return r.Run(ctx) })
	}
	return g.Wait()
}
