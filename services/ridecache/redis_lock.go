package ridecache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisClient is what the Redis implementations need of a go-redis client;
// *redis.Client and *redis.ClusterClient satisfy it.
type RedisClient interface {
	redis.Scripter
	Do(ctx context.Context, args ...any) *redis.Cmd
}

// RedisLocker is the Locker shared by processes: the lock is the Redis key
// itself, taken with SET key token NX PX ttl and released by a script that
// deletes the key only if it still holds this holder's random token. A
// taker that finds the key held retries with jittered exponential backoff
// until its context ends.
type RedisLocker struct {
	client RedisClient
	// MinBackoff and MaxBackoff bound the wait between two tries (defaults
	// 2ms and 50ms).
	MinBackoff, MaxBackoff time.Duration
}

// NewRedisLocker returns a Locker on client.
func NewRedisLocker(client RedisClient) *RedisLocker {
	return &RedisLocker{client: client, MinBackoff: 2 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
}

// unlockScript deletes KEYS[1] only when it holds ARGV[1].
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// Lock implements Locker.
func (l *RedisLocker) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	ms := ttl.Milliseconds()
	if ms <= 0 {
		return nil, fmt.Errorf("locking %s: ttl must be at least 1ms, got %s", key, ttl)
	}
	token := newToken()
	backoff := max(l.MinBackoff, time.Millisecond)
	var last error
	for {
		err := l.client.Do(ctx, "SET", key, token, "NX", "PX", ms).Err()
		switch {
		case err == nil:
			return func(ctx context.Context) error { return l.unlock(ctx, key, token) }, nil
		case errors.Is(err, redis.Nil):
			last = errors.New("held by another")
		default:
			last = err
		}
		// Jitter keeps a crowd of waiters from retrying in step.
		wait := backoff/2 + time.Duration(mrand.Int64N(int64(backoff)/2+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("taking the Redis lock %s (last try: %v): %w", key, last, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, max(l.MaxBackoff, l.MinBackoff))
	}
}

func (l *RedisLocker) unlock(ctx context.Context, key, token string) error {
	n, err := unlockScript.Run(ctx, l.client, []string{key}, token).Int()
	if err != nil {
		return fmt.Errorf("releasing the Redis lock %s: %w", key, err)
	}
	if n == 0 {
		return fmt.Errorf("releasing the Redis lock %s: %w", key, ErrNotHeld)
	}
	return nil
}

// newToken returns a random lock token.
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}
