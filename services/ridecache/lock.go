package ridecache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Locker takes a lock shared by every cache that must not load the same
// key at once. Lock waits until it holds key (or ctx ends); the lock lapses
// by itself after ttl, so a holder that dies cannot block the others for
// longer. Unlock releases it only if it is still this holder's: after the
// lock lapsed and another took it, Unlock returns ErrNotHeld and leaves the
// other's lock alone.
type Locker interface {
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(ctx context.Context) error, err error)
}

// ErrNotHeld is returned by an unlock whose lock lapsed (and may have been
// taken by another holder since).
var ErrNotHeld = errors.New("lock no longer held: its ttl ran out")

// LocalLocker is the in-process Locker: it coordinates the caches of one
// process only. The zero value is ready to use.
type LocalLocker struct {
	// Now is the clock the ttl runs on (default time.Now).
	Now func() time.Time

	mu    sync.Mutex
	held  map[string]*localLock
	token uint64
}

type localLock struct {
	token    uint64
	expires  time.Time
	released chan struct{} // closed by the holder's unlock
}

// NewLocalLocker returns an in-process Locker.
func NewLocalLocker() *LocalLocker { return &LocalLocker{} }

func (l *LocalLocker) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Lock implements Locker.
func (l *LocalLocker) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("locking %s: ttl must be positive, got %s", key, ttl)
	}
	for {
		l.mu.Lock()
		now := l.now()
		cur := l.held[key]
		if cur == nil || !now.Before(cur.expires) {
			if l.held == nil {
				l.held = make(map[string]*localLock)
			}
			l.token++
			lk := &localLock{token: l.token, expires: now.Add(ttl), released: make(chan struct{})}
			l.held[key] = lk
			l.mu.Unlock()
			return func(context.Context) error { return l.unlock(key, lk.token) }, nil
		}
		wait, released := cur.expires.Sub(now), cur.released
		l.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-released:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the lock %s: %w", key, ctx.Err())
		}
		t.Stop()
	}
}

func (l *LocalLocker) unlock(key string, token uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.held[key]
	if cur == nil || cur.token != token {
		return fmt.Errorf("unlocking %s: %w", key, ErrNotHeld)
	}
	delete(l.held, key)
	close(cur.released)
	if !l.now().Before(cur.expires) {
		return fmt.Errorf("unlocking %s: %w", key, ErrNotHeld) // lapsed, as in Redis
	}
	return nil
}
