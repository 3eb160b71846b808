package location

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

// Config configures a region's location service: the WebSocket server, the
// stream, the consumer group and the dispatch index. Zero fields take the
// defaults documented on them and on the component configs.
type Config struct {
	// Region names the region. Required.
	Region string
	// RedisAddr selects Redis Streams at host:port; empty (the default)
	// selects the in-process stream.
	RedisAddr string
	// StreamName is the stream (the Redis key); default
	// "carpool:location:<region>".
	StreamName string
	// StreamMaxLen bounds the stream; default DefaultMaxLen.
	StreamMaxLen int
	// ClaimAfter is how long a delivered position may stay unacknowledged
	// before another consumer reclaims it; default DefaultClaimAfter.
	ClaimAfter time.Duration

	// Server, Consumer and Index configure the components; their Region,
	// Now, Faults, Logger, TracerProvider and Metrics are filled in from
	// the fields below.
	Server   ServerConfig
	Consumer ConsumerConfig
	Index    IndexConfig

	// Registerer receives the metrics; nil keeps them in a private registry.
	Registerer prometheus.Registerer
	// TracerProvider makes spans; default no-op.
	TracerProvider trace.TracerProvider
	// Logger receives logs; default slog.Default's handler.
	Logger *slog.Logger
	// Faults is the region's fault injector; nil injects nothing.
	Faults *faults.Injector
	// Now is the region's clock; default Faults.Clock.
	Now func() time.Time
}

func (c *Config) defaults() {
	setDefault(&c.StreamName, "carpool:location:"+c.Region)
	setDefault(&c.StreamMaxLen, DefaultMaxLen)
	setDefault(&c.ClaimAfter, DefaultClaimAfter)
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.Default().Handler())
	}
	if c.Now == nil {
		c.Now = c.Faults.Clock
	}
}

// Validate checks the service-level fields; each component validates its
// own.
func (c Config) Validate() error {
	switch {
	case c.Region == "":
		return errors.New("location service: the region is required")
	case c.StreamMaxLen < 1:
		return errors.New("location service: the stream max length must be at least 1")
	case c.ClaimAfter <= 0:
		return errors.New("location service: the claim timeout must be positive")
	}
	return nil
}

// Service is one region's location service.
type Service struct {
	cfg      Config
	stream   Stream
	index    *Index
	server   *Server
	consumer *Consumer
}

// New builds the service; it does not connect to Redis (the first command
// does) and starts nothing until Run.
func New(cfg Config) (*Service, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var stream Stream
	var err error
	if cfg.RedisAddr != "" {
		stream, err = NewRedisStream(RedisStreamConfig{Addr: cfg.RedisAddr, Name: cfg.StreamName, MaxLen: int64(cfg.StreamMaxLen), ClaimAfter: cfg.ClaimAfter})
	} else {
		stream, err = NewMemStream(MemStreamConfig{Name: cfg.StreamName, MaxLen: cfg.StreamMaxLen, ClaimAfter: cfg.ClaimAfter, Now: cfg.Now})
	}
	if err != nil {
		return nil, err
	}
	ccfg := cfg.Consumer
	setDefault(&ccfg.Group, DefaultGroup)
	m, err := NewMetrics(cfg.Registerer, cfg.Region, stream.Name(), ccfg.Group)
	if err != nil {
		return nil, err
	}
	icfg := cfg.Index
	if icfg.Now == nil {
		icfg.Now = cfg.Now
	}
	index, err := NewIndex(icfg)
	if err != nil {
		return nil, err
	}
	m.indexDrivers.set(func() float64 { return float64(index.Len()) })

	scfg := cfg.Server
	scfg.Region, scfg.Now, scfg.Faults, scfg.Logger, scfg.TracerProvider, scfg.Metrics = cfg.Region, cfg.Now, cfg.Faults, cfg.Logger, cfg.TracerProvider, m
	server, err := NewServer(scfg, stream)
	if err != nil {
		return nil, err
	}
	ccfg.Region, ccfg.Faults, ccfg.Logger, ccfg.TracerProvider, ccfg.Metrics = cfg.Region, cfg.Faults, cfg.Logger, cfg.TracerProvider, m
	consumer, err := NewConsumer(ccfg, stream, index)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, stream: stream, index: index, server: server, consumer: consumer}, nil
}

// Handler serves Route, wrapped in the fault injector's middleware (a
// down region refuses the upgrade by dropping the connection).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Route, s.server)
	return s.cfg.Faults.Middleware(ServiceName, mux)
}

// Run runs the publish workers, the consumer and the index sweeper until
// ctx ends, then closes the driver connections and the stream.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.server.Run(gctx) })
	g.Go(func() error { return s.consumer.Run(gctx) })
	g.Go(func() error { return s.index.Run(gctx) })
	err := g.Wait()
	if cerr := s.stream.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// Index returns the dispatch index the consumer group feeds.
func (s *Service) Index() *Index { return s.index }

// Stream returns the stream (for the stream-lag exporter: Stream().Lag(ctx,
// Group())).
func (s *Service) Stream() Stream { return s.stream }

// Group returns the consumer group that feeds the index.
func (s *Service) Group() string { return s.consumer.cfg.Group }
