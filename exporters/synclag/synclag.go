// Package synclag measures cross-region sync lag by the heartbeat method,
// as pt-heartbeat does: a Writer stamps one heartbeat row per region every
// interval in the region's own database; the row replicates like any other
// data; a Reader in every other region reports now − the newest stamp
// applied there, per source → target pair. Unlike a replica's own estimate
// (MySQL's Seconds_Behind_Master is NULL once the SQL thread stops), the
// heartbeat lag keeps growing for as long as replication is stopped.
//
// Backends sit behind two small interfaces, HeartbeatWriter (the writer
// role) and HeartbeatReader (the reader role): the services' region stores
// (StoreBackend), MySQL/MariaDB and PostgreSQL (a heartbeat table, SQL) and
// Redis (a hash). The Reader is an exporters.Scraper that reads its
// backends at scrape time. By default it exposes its series through a
// VictoriaMetrics/metrics Set (see Reader.Set and docs/exporters/synclag.md
// for the benchmark behind that choice); ExposeClientGolang sends them as
// client_golang const metrics instead.
package synclag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Name is the exporter's name, the value of its exporter label.
const Name = "synclag"

// HeartbeatWriter stamps heartbeats: the writer role. Write records ts as
// region's newest heartbeat in the backend's source database (an upsert of
// the region's row).
type HeartbeatWriter interface {
	Write(ctx context.Context, region string, ts time.Time) error
}

// HeartbeatReader reads heartbeats: the reader role. Read returns the
// newest heartbeat stamp held by the backend's database for every region
// that has one: in a target database, the stamps applied there by
// replication (and the target's own row, when it writes one).
type HeartbeatReader interface {
	Read(ctx context.Context) (map[string]time.Time, error)
}

// HeartbeatBackend is a backend with both roles.
type HeartbeatBackend interface {
	HeartbeatWriter
	HeartbeatReader
}

// Exposition says which metrics library renders the Reader's series.
type Exposition int

// Expositions of the Reader.
const (
	// ExposeVM, the default, renders the series into the
	// VictoriaMetrics/metrics Set returned by Reader.Set, at scrape time.
	ExposeVM Exposition = iota
	// ExposeClientGolang sends the series as client_golang const metrics
	// from Scrape.
	ExposeClientGolang
)

// Target is one target region the Reader reports lag for.
type Target struct {
	// Region is the target region's name. Required.
	Region string
	// Applied reads the heartbeats held in the target region's database.
	// Each row of another region is a source → Region pair; the row of
	// Region itself, when there is one, is Region's own written heartbeat
	// (active-active setups write one in every region). Required.
	Applied HeartbeatReader
	// Sources are the source regions expected to replicate into Region.
	// A source without a heartbeat yet reports a lag of the time since the
	// Reader started (a lower bound that keeps growing) and no applied
	// timestamp, so that an alert on the lag fires for a pair that never
	// synced. Rows of other regions are reported as well. Optional.
	Sources []string
}

// Config configures a Reader.
type Config struct {
	// Name is the exporter label; default Name.
	Name string
	// Targets are the target regions to report. Required, unique regions.
	Targets []Target
	// Written are further readers of written heartbeats: every stamp they
	// return is exposed as carpool_sync_heartbeat_written_timestamp_seconds
	// of its region (a Writer in the same process, or the source database
	// through OnlyRegion). The newest stamp of a region wins.
	Written []HeartbeatReader
	// Now is the clock lag is measured on; default time.Now.
	Now func() time.Time
	// Exposition picks the metrics library; default ExposeVM.
	Exposition Exposition
	// SnapshotMaxAge is how old a Scrape's reading may be for the Set to
	// render it; older (or already rendered) readings make the Set read the
	// backends itself. Default exporters.DefaultScrapeTimeout.
	SnapshotMaxAge time.Duration
	// ReadTimeout bounds the backends' reads when the Set reads them
	// itself; default exporters.DefaultScrapeTimeout.
	ReadTimeout time.Duration
	// ReadConcurrency bounds how many targets are read at once; default
	// DefaultReadConcurrency.
	ReadConcurrency int
	// Logger receives the read errors of the Set's own reads; default
	// discards (Scrape's errors are the Collector's to log).
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = Name
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SnapshotMaxAge == 0 {
		c.SnapshotMaxAge = exporters.DefaultScrapeTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = exporters.DefaultScrapeTimeout
	}
	if c.ReadConcurrency == 0 {
		c.ReadConcurrency = DefaultReadConcurrency
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// DefaultReadConcurrency is how many targets a Reader reads at once.
const DefaultReadConcurrency = 8

// Validate checks the configuration after defaults are filled in.
func (c Config) Validate() error {
	if len(c.Targets) == 0 && len(c.Written) == 0 {
		return errors.New("synclag config: no targets and no written-heartbeat readers: give at least one")
	}
	seen := map[string]bool{}
	for i, t := range c.Targets {
		switch {
		case t.Region == "":
			return fmt.Errorf("synclag config: targets[%d]: region is required", i)
		case t.Applied == nil:
			return fmt.Errorf("synclag config: target %s: applied reader is required", t.Region)
		case seen[t.Region]:
			return fmt.Errorf("synclag config: target %s is listed twice", t.Region)
		}
		seen[t.Region] = true
		for _, s := range t.Sources {
			if s == "" || s == t.Region {
				return fmt.Errorf("synclag config: target %s: source %q must be another, non-empty region", t.Region, s)
			}
		}
	}
	for i, w := range c.Written {
		if w == nil {
			return fmt.Errorf("synclag config: written[%d] is nil", i)
		}
	}
	switch {
	case c.Exposition != ExposeVM && c.Exposition != ExposeClientGolang:
		return fmt.Errorf("synclag config: exposition %d is unknown", c.Exposition)
	case c.ReadConcurrency < 1:
		return fmt.Errorf("synclag config: read concurrency is %d; it must be at least 1", c.ReadConcurrency)
	case c.SnapshotMaxAge < 0 || c.ReadTimeout < 0:
		return fmt.Errorf("synclag config: snapshot max age (%v) and read timeout (%v) must not be negative", c.SnapshotMaxAge, c.ReadTimeout)
	}
	return nil
}

var (
	lagDesc     = desc(catalog.SyncLag)
	writtenDesc = desc(catalog.SyncHeartbeatWritten)
	appliedDesc = desc(catalog.SyncHeartbeatApplied)
)

func desc(m catalog.Metric) *prometheus.Desc {
	return prometheus.NewDesc(m.Name, m.Help, m.Labels, nil)
}

// Reader reports sync lag per source → target pair at scrape time. It
// implements exporters.Scraper; wrap it with exporters.NewCollector and,
// with ExposeVM, serve Set() next to the collector's registry with
// exporters.Handler(reg, r.Set()).
type Reader struct {
	cfg      Config
	start    time.Time
	set      *vmetrics.Set
	expected []map[string]bool          // per target: its expected sources
	orders   []atomic.Pointer[[]string] // per target: the sorted sources of the last read

	mu      sync.Mutex
	pending *snapshot // read by the last Scrape, not yet rendered (ExposeVM)
}

// pair is one source → target reading.
type pair struct {
	source, target string
	applied        time.Time // zero: none yet (an expected source)
}

// snapshot is one reading of every backend.
type snapshot struct {
	taken   time.Time
	pairs   []pair
	written []stamp // sorted by region
}

type stamp struct {
	region string
	ts     time.Time
}

// New returns a Reader configured by cfg.
func New(cfg Config) (*Reader, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Targets = slices.Clone(cfg.Targets)
	for i := range cfg.Targets {
		src := slices.Clone(cfg.Targets[i].Sources)
		slices.Sort(src)
		cfg.Targets[i].Sources = slices.Compact(src)
	}
	slices.SortFunc(cfg.Targets, func(a, b Target) int { return strings.Compare(a.Region, b.Region) })
	r := &Reader{cfg: cfg, start: cfg.Now(), orders: make([]atomic.Pointer[[]string], len(cfg.Targets))}
	for _, t := range cfg.Targets {
		exp := map[string]bool{}
		for _, src := range t.Sources {
			exp[src] = true
		}
		r.expected = append(r.expected, exp)
	}
	if cfg.Exposition == ExposeVM {
		r.set = vmetrics.NewSet()
		r.set.RegisterMetricsWriter(r.writeSet)
	}
	return r, nil
}

// Name implements exporters.Scraper.
func (r *Reader) Name() string { return r.cfg.Name }

// Set is the VictoriaMetrics/metrics set the series are rendered into
// (ExposeVM), nil with ExposeClientGolang. Serve it with
// exporters.Handler(reg, set) where reg holds the Reader's Collector: the
// collection reads the backends, then the set renders that reading with
// the lag computed at that moment. Served on its own, the set reads the
// backends itself.
func (r *Reader) Set() *vmetrics.Set { return r.set }

// Describe implements exporters.Scraper. With ExposeVM the series are not
// client_golang metrics and nothing is described.
func (r *Reader) Describe(ch chan<- *prometheus.Desc) {
	if r.cfg.Exposition == ExposeClientGolang {
		ch <- lagDesc
		ch <- writtenDesc
		ch <- appliedDesc
	}
}

// Scrape implements exporters.Scraper: it reads every backend. A backend
// that fails drops its series from this scrape and fails the scrape; the
// others are still exposed.
func (r *Reader) Scrape(ctx context.Context, ch chan<- prometheus.Metric) error {
	snap, err := r.read(ctx)
	if r.cfg.Exposition == ExposeVM {
		r.mu.Lock()
		r.pending = snap
		r.mu.Unlock()
		return err
	}
	now := r.cfg.Now()
	for _, w := range snap.written {
		ch <- prometheus.MustNewConstMetric(writtenDesc, prometheus.GaugeValue, unixSeconds(w.ts), w.region)
	}
	for _, p := range snap.pairs {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, r.lag(now, p), p.source, p.target)
		if !p.applied.IsZero() {
			ch <- prometheus.MustNewConstMetric(appliedDesc, prometheus.GaugeValue, unixSeconds(p.applied), p.source, p.target)
		}
	}
	return err
}

// lag is now − the applied stamp, never negative (a source clock ahead of
// the reader's shows in the raw timestamps, not as a negative lag); for an
// expected source without a heartbeat, the time since the Reader started.
func (r *Reader) lag(now time.Time, p pair) float64 {
	from := p.applied
	if from.IsZero() {
		from = r.start
	}
	return max(now.Sub(from).Seconds(), 0)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// read reads every backend once, the targets concurrently (at most
// ReadConcurrency at a time).
func (r *Reader) read(ctx context.Context) (*snapshot, error) {
	snap := &snapshot{taken: r.cfg.Now()}
	type result struct {
		rows map[string]time.Time
		err  error
	}
	results := make([]result, len(r.cfg.Targets))
	if len(r.cfg.Targets) == 1 || r.cfg.ReadConcurrency == 1 {
		for i, t := range r.cfg.Targets {
			results[i].rows, results[i].err = t.Applied.Read(ctx)
		}
	} else {
		var wg sync.WaitGroup
		sem := make(chan struct{}, r.cfg.ReadConcurrency)
		for i, t := range r.cfg.Targets {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				results[i].rows, results[i].err = t.Applied.Read(ctx)
			})
		}
		wg.Wait()
	}
	var errs []error
	written := map[string]time.Time{}
	note := func(region string, ts time.Time) {
		if ts.After(written[region]) {
			written[region] = ts
		}
	}
	n := 0
	for _, res := range results {
		n += len(res.rows)
	}
	snap.pairs = make([]pair, 0, n)
	for i, t := range r.cfg.Targets {
		got, err := results[i].rows, results[i].err
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the heartbeats applied in %s: %w", t.Region, err))
			continue
		}
		if ts, ok := got[t.Region]; ok {
			note(t.Region, ts)
		}
		for _, src := range r.sourceOrder(i, got) {
			snap.pairs = append(snap.pairs, pair{source: src, target: t.Region, applied: got[src]})
		}
	}
	for _, w := range r.cfg.Written {
		got, err := w.Read(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading written heartbeats: %w", err))
		}
		for region, ts := range got {
			note(region, ts)
		}
	}
	for region, ts := range written {
		snap.written = append(snap.written, stamp{region, ts})
	}
	slices.SortFunc(snap.written, func(a, b stamp) int { return strings.Compare(a.region, b.region) })
	return snap, errors.Join(errs...)
}

// sourceOrder returns the sorted sources of target i's pairs: the regions
// of got other than the target, and its expected sources. The order of
// the previous read is reused when the set is the same (the usual case),
// which spares sorting 9,900 pairs on every scrape at 100 regions.
func (r *Reader) sourceOrder(i int, got map[string]time.Time) []string {
	t := &r.cfg.Targets[i]
	want := len(got)
	if _, ok := got[t.Region]; ok {
		want--
	}
	for _, src := range t.Sources {
		if _, ok := got[src]; !ok {
			want++
		}
	}
	if prev := r.orders[i].Load(); prev != nil && len(*prev) == want {
		same := true
		for _, src := range *prev {
			if _, ok := got[src]; !ok && !r.expected[i][src] {
				same = false
				break
			}
		}
		if same { // want distinct names, all in the set: the same set
			return *prev
		}
	}
	order := make([]string, 0, want)
	for src := range got {
		if src != t.Region {
			order = append(order, src)
		}
	}
	for _, src := range t.Sources {
		if _, ok := got[src]; !ok {
			order = append(order, src)
		}
	}
	slices.Sort(order)
	r.orders[i].Store(&order)
	return order
}

// writeSet renders the pending reading into the Set's output; without a
// fresh one it reads the backends itself.
func (r *Reader) writeSet(w io.Writer) {
	now := r.cfg.Now()
	r.mu.Lock()
	snap := r.pending
	r.pending = nil
	r.mu.Unlock()
	if snap == nil || now.Sub(snap.taken) > r.cfg.SnapshotMaxAge {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ReadTimeout)
		var err error
		snap, err = r.read(ctx)
		cancel()
		if err != nil {
			r.cfg.Logger.Warn("sync lag read failed", "exporter", r.cfg.Name, "err", err.Error())
		}
		now = r.cfg.Now()
	}
	bp := renderBufs.Get().(*[]byte)
	if size := 128*(2*len(snap.pairs)+len(snap.written)) + 1024; cap(*bp) < size {
		*bp = make([]byte, 0, size)
	}
	b := r.render((*bp)[:0], snap, now)
	_, _ = w.Write(b)
	*bp = b
	renderBufs.Put(bp)
}

// renderBufs recycles the rendered text between scrapes (2 MB at 100
// regions).
var renderBufs = sync.Pool{New: func() any { return new([]byte) }}
