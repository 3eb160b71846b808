package ridecache

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisShared is the Shared tier in Redis. A key k lives in two Redis keys
// with the same hash tag (one cluster slot, as the scripts need):
// <prefix>{k}:v holds the value with a PX ttl, <prefix>{k}:g its generation,
// which expires GenTTL after the last invalidation (an absent generation is
// 0). It implements Shared.
type RedisShared struct {
	client RedisClient
	prefix string
	// GenTTL is how long a generation outlives its last invalidation
	// (default 1h); it must exceed any load's duration.
	GenTTL time.Duration
}

// NewRedisShared returns the shared tier on client, its keys under prefix
// (for example "ridecache:sh-a:").
func NewRedisShared(client RedisClient, prefix string) *RedisShared {
	return &RedisShared{client: client, prefix: prefix, GenTTL: time.Hour}
}

func (r *RedisShared) keys(key string) (val, gen string) {
	base := r.prefix + "{" + key + "}"
	return base + ":v", base + ":g"
}

// fillScript sets KEYS[1] to ARGV[2] for ARGV[3] ms if KEYS[2] (default 0)
// equals ARGV[1].
var fillScript = redis.NewScript(`
local g = redis.call("GET", KEYS[2]) or "0"
if g ~= ARGV[1] then
	return 0
end
redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
return 1`)

// invalidateScript deletes KEYS[1] and increments KEYS[2], which expires
// after ARGV[1] ms.
var invalidateScript = redis.NewScript(`
redis.call("DEL", KEYS[1])
redis.call("INCR", KEYS[2])
redis.call("PEXPIRE", KEYS[2], ARGV[1])
return 1`)

// Get implements Shared.
func (r *RedisShared) Get(ctx context.Context, key string) ([]byte, bool, int64, error) {
	vk, gk := r.keys(key)
	res, err := r.client.Do(ctx, "MGET", vk, gk).Slice()
	if err != nil {
		return nil, false, 0, fmt.Errorf("reading %s from the shared cache: %w", key, err)
	}
	if len(res) != 2 {
		return nil, false, 0, fmt.Errorf("reading %s from the shared cache: MGET answered %d values", key, len(res))
	}
	var gen int64
	if s, ok := res[1].(string); ok {
		if gen, err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, false, 0, fmt.Errorf("reading %s from the shared cache: generation %q: %w", key, s, err)
		}
	}
	s, ok := res[0].(string)
	return []byte(s), ok, gen, nil
}

// Fill implements Shared.
func (r *RedisShared) Fill(ctx context.Context, key string, gen int64, val []byte, ttl time.Duration) (bool, error) {
	vk, gk := r.keys(key)
	n, err := fillScript.Run(ctx, r.client, []string{vk, gk}, strconv.FormatInt(gen, 10), val, max(ttl.Milliseconds(), 1)).Int()
	if err != nil {
		return false, fmt.Errorf("filling %s in the shared cache: %w", key, err)
	}
	return n == 1, nil
}

// Invalidate implements Shared.
func (r *RedisShared) Invalidate(ctx context.Context, key string) error {
	vk, gk := r.keys(key)
	if err := invalidateScript.Run(ctx, r.client, []string{vk, gk}, max(r.GenTTL.Milliseconds(), 1)).Err(); err != nil {
		return fmt.Errorf("invalidating %s in the shared cache: %w", key, err)
	}
	return nil
}
