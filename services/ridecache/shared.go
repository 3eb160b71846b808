package ridecache

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// Shared is an optional cache tier shared by processes (RedisShared), so
// that a process that waited for the lock finds the value another process
// loaded instead of loading it again.
//
// Every key has a generation that Invalidate moves on. A filler reads the
// generation before it loads (Get) and passes it to Fill, which stores the
// value only if the generation has not moved since: a load that raced with a
// transition can never put the older state back.
type Shared interface {
	// Get returns key's value (ok is false when there is none) and its
	// generation.
	Get(ctx context.Context, key string) (val []byte, ok bool, gen int64, err error)
	// Fill stores val under key for ttl if key's generation is still gen;
	// stored reports whether it did.
	Fill(ctx context.Context, key string, gen int64, val []byte, ttl time.Duration) (stored bool, err error)
	// Invalidate drops key's value and moves its generation on.
	Invalidate(ctx context.Context, key string) error
}

// Codec turns cached values into bytes for the shared tier and back.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(b []byte, v any) error
}

// JSONCodec is the default Codec, encoding/json.
type JSONCodec struct{}

// Marshal implements Codec.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements Codec.
func (JSONCodec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// MemShared is an in-process Shared, for tests and single-process setups
// that want the tier's semantics without Redis. The zero value is ready to
// use. It implements Shared.
type MemShared struct {
	// Now is the clock of the values' ttl (default time.Now).
	Now func() time.Time

	mu   sync.Mutex
	vals map[string]memVal
	gens map[string]int64
}

type memVal struct {
	b       []byte
	expires time.Time
}

func (m *MemShared) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Get implements Shared.
func (m *MemShared) Get(_ context.Context, key string) ([]byte, bool, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vals[key]
	if ok && !m.now().Before(v.expires) {
		delete(m.vals, key)
		ok = false
	}
	return v.b, ok, m.gens[key], nil
}

// Fill implements Shared.
func (m *MemShared) Fill(_ context.Context, key string, gen int64, val []byte, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gens[key] != gen {
		return false, nil
	}
	if m.vals == nil {
		m.vals = make(map[string]memVal)
	}
	m.vals[key] = memVal{b: append([]byte(nil), val...), expires: m.now().Add(ttl)}
	return true, nil
}

// Invalidate implements Shared.
func (m *MemShared) Invalidate(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.vals, key)
	if m.gens == nil {
		m.gens = make(map[string]int64)
	}
	m.gens[key]++
	return nil
}
