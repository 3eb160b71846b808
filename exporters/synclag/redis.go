package synclag

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisKey is the hash the Redis backend keeps heartbeats in: one
// field per region, the value the writer's clock in Unix microseconds.
const DefaultRedisKey = "carpool:heartbeat"

// RedisConfig configures the Redis backend.
type RedisConfig struct {
	// Addr is host:port or a redis:// (rediss://) URL with password and
	// database. Required.
	Addr string
	// Key is the heartbeat hash; default DefaultRedisKey.
	Key string
}

// Redis is the HeartbeatBackend of Redis: the writer sets its region's
// field of the hash on the source, the reader reads the whole hash on the
// target (a replica, or the same server). The client re-dials by itself.
type Redis struct {
	c   *redis.Client
	key string
}

// Redis implements HeartbeatBackend.
var _ HeartbeatBackend = (*Redis)(nil)

// OpenRedis checks cfg and returns the backend. It does not connect.
func OpenRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.Addr == "" {
		return nil, errors.New("redis backend: the address is empty: give host:port or redis://[:password@]host:port[/db]")
	}
	var opts *redis.Options
	if strings.Contains(cfg.Addr, "://") {
		var err error
		if opts, err = redis.ParseURL(cfg.Addr); err != nil {
			return nil, fmt.Errorf("redis backend: the URL does not parse (%w): give redis://[:password@]host:port[/db]", err)
		}
	} else {
		if _, port, ok := strings.Cut(cfg.Addr, ":"); !ok || port == "" {
			return nil, fmt.Errorf("redis backend: address %q has no port: give host:port", cfg.Addr)
		}
		opts = &redis.Options{Addr: cfg.Addr}
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	opts.MaxRetries = -1 // a heartbeat is retried on the next interval, a read on the next scrape
	if cfg.Key == "" {
		cfg.Key = DefaultRedisKey
	}
	return &Redis{c: redis.NewClient(opts), key: cfg.Key}, nil
}

// Close closes the client.
func (r *Redis) Close() error { return r.c.Close() }

// Write implements HeartbeatWriter.
func (r *Redis) Write(ctx context.Context, region string, ts time.Time) error {
	if err := r.c.HSet(ctx, r.key, region, ts.UnixMicro()).Err(); err != nil {
		return fmt.Errorf("setting the heartbeat of %s in %s: %w", region, r.key, err)
	}
	return nil
}

// Read implements HeartbeatReader.
func (r *Redis) Read(ctx context.Context) (map[string]time.Time, error) {
	m, err := r.c.HGetAll(ctx, r.key).Result()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", r.key, err)
	}
	out := make(map[string]time.Time, len(m))
	for region, v := range m {
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return out, fmt.Errorf("reading %s: field %q holds %q, not Unix microseconds: %w", r.key, region, v, err)
		}
		out[region] = time.UnixMicro(us)
	}
	return out, nil
}
