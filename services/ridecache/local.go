package ridecache

import (
	"hash/maphash"
	"sync"
	"time"
)

// numShards splits the local cache so that concurrent reads of different
// rides rarely meet on one mutex.
const numShards = 32

// local is a bounded, TTL'd, least-recently-used map in numShards shards.
// Each shard also holds the loads in flight for its keys, so that a miss
// and the flight it joins are decided under one lock. The zero value is not
// usable; see newLocal.
type local[V any] struct {
	seed     maphash.Seed
	perShard int
	shards   [numShards]shard[V]
}

// shard is one lock's worth of the local cache.
type shard[V any] struct {
	mu      sync.Mutex
	items   map[string]*item[V]
	head    *item[V] // most recently used
	tail    *item[V] // least recently used
	flights map[string]*flight[V]
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

// item is a cached value on its shard's LRU list.
type item[V any] struct {
	key        string
	v          V
	expires    time.Time
	prev, next *item[V]
}

// flight is one load in progress; callers that miss the same key while it
// runs wait for it instead of loading again.
type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
	// stale is set (under the shard lock) when the key is invalidated while
	// the load runs: its value is still given to the callers that were
	// waiting, but it is not cached.
	stale bool
}

func newLocal[V any](maxEntries int) *local[V] {
	l := &local[V]{seed: maphash.MakeSeed(), perShard: max(1, (maxEntries+numShards-1)/numShards)}
	for i := range l.shards {
		l.shards[i].items = make(map[string]*item[V])
		l.shards[i].flights = make(map[string]*flight[V])
	}
	return l
}

func (l *local[V]) shard(key string) *shard[V] {
	return &l.shards[maphash.String(l.seed, key)%numShards]
}

// len returns the number of entries, expired ones included.
func (l *local[V]) len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.items)
		s.mu.Unlock()
	}
	return n
}

// getLocked returns key's live value and marks it recently used; an expired
// entry is dropped.
func (s *shard[V]) getLocked(key string, now time.Time) (V, bool) {
	it, ok := s.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	if !now.Before(it.expires) {
		s.removeLocked(it)
		var zero V
		return zero, false
	}
	s.moveToFrontLocked(it)
	return it.v, true
}

// putLocked stores key, evicting least recently used entries beyond limit;
// it returns how many it evicted.
func (s *shard[V]) putLocked(key string, v V, expires time.Time, limit int) (evicted int) {
	if it, ok := s.items[key]; ok {
		it.v, it.expires = v, expires
		s.moveToFrontLocked(it)
		return 0
	}
	it := &item[V]{key: key, v: v, expires: expires}
	s.items[key] = it
	s.pushFrontLocked(it)
	for len(s.items) > limit {
		s.removeLocked(s.tail)
		evicted++
	}
	return evicted
}

func (s *shard[V]) removeLocked(it *item[V]) {
	delete(s.items, it.key)
	s.removeLinksLocked(it)
	it.prev, it.next = nil, nil
}

func (s *shard[V]) pushFrontLocked(it *item[V]) {
	it.prev, it.next = nil, s.head
	if s.head != nil {
		s.head.prev = it
	}
	s.head = it
	if s.tail == nil {
		s.tail = it
	}
}

func (s *shard[V]) moveToFrontLocked(it *item[V]) {
	if s.head == it {
		return
	}
	s.removeLinksLocked(it)
	s.pushFrontLocked(it)
}

// removeLinksLocked unlinks it from the list but keeps it in the map.
func (s *shard[V]) removeLinksLocked(it *item[V]) {
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		s.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else {
		s.tail = it.prev
	}
}
