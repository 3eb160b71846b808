package streamlag

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
)

// Flags are the flags of `carpoolsla exporter streamlag`.
type Flags struct {
	Region        string
	RedisAddr     string
	Streams       []string
	CountLimit    int64
	AlwaysCount   bool
	NATSURL       string
	NATSStreams   []string
	NATSPosition  string
	TableSize     int
	ScrapeTimeout time.Duration
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.Region, "region", "", "region label of every lag exported (required)")
	fs.StringVar(&f.RedisAddr, "redis-addr", "", "Redis to read consumer groups from: host:port or a redis:// URL (with user and password)")
	fs.StringSliceVar(&f.Streams, "streams", nil, "Redis stream keys or glob patterns (matched with SCAN TYPE stream on every scrape), comma-separated or repeated")
	fs.Int64Var(&f.CountLimit, "redis-count-limit", DefaultCountLimit, "most entries counted on the server for one group whose lag Redis cannot tell")
	fs.BoolVar(&f.AlwaysCount, "redis-always-count", false, "count every lagging group's entries on the server instead of trusting XINFO GROUPS lag when it looks consistent (exact after trimming overtook a group; O(lag) work per scrape)")
	fs.StringVar(&f.NATSURL, "nats-url", "", "NATS server to read JetStream consumers from, e.g. nats://127.0.0.1:4222")
	fs.StringSliceVar(&f.NATSStreams, "nats-streams", nil, "JetStream streams to read (default: every stream)")
	fs.StringVar(&f.NATSPosition, "nats-position", string(PositionDelivered), "where a JetStream consumer's lag starts: delivered (num_pending) or ack_floor (num_pending + num_ack_pending)")
	fs.IntVar(&f.TableSize, "nats-table-size", DefaultTableSize, "(sequence, time) samples kept per JetStream stream for the seconds interpolation (one per scrape)")
	fs.DurationVar(&f.ScrapeTimeout, "scrape-timeout", exporters.DefaultScrapeTimeout, "bound of one scrape of the backends")
}

// Exporter is a built stream-lag exporter: register Collectors, serve Sets
// (none) and run Run until shutdown; Run closes the clients Build opened.
type Exporter struct {
	Collectors []prometheus.Collector
	Sets       []*vmetrics.Set
	closers    []func()
}

// Run waits for ctx to end and closes the exporter's clients. It is a
// no-op on a nil Exporter.
func (e *Exporter) Run(ctx context.Context) error {
	if e == nil {
		return nil
	}
	<-ctx.Done()
	for _, c := range e.closers {
		c()
	}
	return nil
}

// Build validates the flags and builds the exporter. Nothing is dialled:
// an unreachable backend shows as up 0 on scrapes, until it is reachable.
func (f *Flags) Build(log *slog.Logger) (*Exporter, error) {
	log = discard(log)
	var errs []error
	if f.Region == "" {
		errs = append(errs, errors.New("--region is required: the region label of the lags"))
	}
	if f.RedisAddr == "" && f.NATSURL == "" {
		errs = append(errs, errors.New("give --redis-addr (Redis Streams), --nats-url (JetStream) or both"))
	}
	if f.RedisAddr == "" && len(f.Streams) > 0 {
		errs = append(errs, errors.New("--streams needs --redis-addr"))
	}
	if f.RedisAddr != "" && len(f.Streams) == 0 {
		errs = append(errs, errors.New("--redis-addr needs --streams: stream keys or patterns such as 'positions:*'"))
	}
	if f.NATSURL == "" && len(f.NATSStreams) > 0 {
		errs = append(errs, errors.New("--nats-streams needs --nats-url"))
	}
	if f.CountLimit < 1 {
		errs = append(errs, fmt.Errorf("--redis-count-limit is %d; it must be at least 1", f.CountLimit))
	}
	if f.TableSize < 2 {
		errs = append(errs, fmt.Errorf("--nats-table-size is %d; interpolation needs at least 2 samples", f.TableSize))
	}
	if f.ScrapeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--scrape-timeout is %s; it must be positive", f.ScrapeTimeout))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e := &Exporter{}
	var readers []Reader
	fail := func(err error) (*Exporter, error) {
		for _, c := range e.closers {
			c()
		}
		return nil, err
	}
	if f.RedisAddr != "" {
		opts, err := redisOptions(f.RedisAddr)
		if err != nil {
			return fail(err)
		}
		rdb := redis.NewClient(opts)
		e.closers = append(e.closers, func() { _ = rdb.Close() })
		r, err := NewRedisReader(RedisConfig{Client: rdb, Region: f.Region, Streams: f.Streams, CountLimit: f.CountLimit, AlwaysCount: f.AlwaysCount, Log: log})
		if err != nil {
			return fail(fmt.Errorf("--streams/--redis-count-limit: %w", err))
		}
		readers = append(readers, r)
	}
	if f.NATSURL != "" {
		if !strings.HasPrefix(f.NATSURL, "nats://") && !strings.HasPrefix(f.NATSURL, "tls://") {
			return fail(fmt.Errorf("--nats-url %q: want nats://host:port or tls://host:port", f.NATSURL))
		}
		nc, err := dialNATS(f.NATSURL, log)
		if err != nil {
			return fail(fmt.Errorf("--nats-url %q: %w", f.NATSURL, err))
		}
		e.closers = append(e.closers, nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			return fail(fmt.Errorf("--nats-url %q: %w", f.NATSURL, err))
		}
		r, err := NewNATSReader(NATSConfig{JS: js, Region: f.Region, Streams: f.NATSStreams,
			Position: Position(f.NATSPosition), TableSize: f.TableSize, Log: log})
		if err != nil {
			return fail(fmt.Errorf("--nats-streams/--nats-position/--nats-table-size: %w", err))
		}
		readers = append(readers, r)
	}
	s, err := New(Config{Readers: readers})
	if err != nil {
		return fail(err)
	}
	e.Collectors = []prometheus.Collector{exporters.NewCollector(s, f.ScrapeTimeout, log)}
	return e, nil
}

// redisOptions parses --redis-addr: a redis:// or rediss:// URL, or
// host:port.
func redisOptions(addr string) (*redis.Options, error) {
	if strings.Contains(addr, "://") {
		opts, err := redis.ParseURL(addr)
		if err != nil {
			return nil, fmt.Errorf("--redis-addr: %w (want host:port or redis://[user:password@]host:port[/db])", err)
		}
		return opts, nil
	}
	if !strings.Contains(addr, ":") {
		return nil, fmt.Errorf("--redis-addr %q: want host:port or redis://[user:password@]host:port[/db]", addr)
	}
	return &redis.Options{Addr: addr}, nil
}

// dialNATS connects to url without waiting for the server: a server that
// is down now is retried in the background forever, and scrapes report it.
func dialNATS(url string, log *slog.Logger) (*nats.Conn, error) {
	return nats.Connect(url,
		nats.Name("carpoolsla-streamlag-exporter"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.Timeout(2*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err.Error())
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
	)
}
