package order

import (
	"context"
	"sync"
)

const memShards = 32

// MemStore is an in-process Store and KeyIndex: the default, and the one the
// tests and benchmarks use. Its zero value is not usable; call NewMemStore.
type MemStore struct {
	shards [memShards]memShard
	keysMu sync.RWMutex
	keys   map[string]int64 // rider \x00 idempotency key → ride id
}

type memShard struct {
	mu    sync.RWMutex
	rides map[int64]Ride
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	s := &MemStore{keys: map[string]int64{}}
	for i := range s.shards {
		s.shards[i].rides = map[int64]Ride{}
	}
	return s
}

func (s *MemStore) shard(id int64) *memShard {
	return &s.shards[uint64(id)%memShards]
}

// PutRide implements Store.
func (s *MemStore) PutRide(_ context.Context, r Ride) error {
	sh := s.shard(r.ID)
	sh.mu.Lock()
	sh.rides[r.ID] = r
	sh.mu.Unlock()
	if r.IdempotencyKey != "" {
		s.keysMu.Lock()
		s.keys[keyOf(r.RiderID, r.IdempotencyKey)] = r.ID
		s.keysMu.Unlock()
	}
	return nil
}

// GetRide implements Store.
func (s *MemStore) GetRide(_ context.Context, id int64) (Ride, bool, error) {
	sh := s.shard(id)
	sh.mu.RLock()
	r, ok := sh.rides[id]
	sh.mu.RUnlock()
	return r, ok, nil
}

// RideByKey implements KeyIndex.
func (s *MemStore) RideByKey(ctx context.Context, riderID, key string) (Ride, bool, error) {
	s.keysMu.RLock()
	id, ok := s.keys[keyOf(riderID, key)]
	s.keysMu.RUnlock()
	if !ok {
		return Ride{}, false, nil
	}
	return s.GetRide(ctx, id)
}

// Len returns the number of rides held.
func (s *MemStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.rides)
		sh.mu.RUnlock()
	}
	return n
}

// keyOf scopes an idempotency key to its rider.
func keyOf(riderID, key string) string { return riderID + "\x00" + key }

// MemClaims is an in-process Claimer: the default. Its zero value is ready
// to use.
type MemClaims struct {
	mu   sync.Mutex
	held map[string]int64 // driver → ride
}

// Claim implements Claimer.
func (c *MemClaims) Claim(_ context.Context, driverID string, rideID int64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = map[string]int64{}
	}
	if cur, ok := c.held[driverID]; ok {
		return cur == rideID, nil
	}
	c.held[driverID] = rideID
	return true, nil
}

// Release implements Claimer.
func (c *MemClaims) Release(_ context.Context, driverID string, rideID int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[driverID] == rideID {
		delete(c.held, driverID)
	}
	return nil
}

// Held returns the ride holding driverID, if any.
func (c *MemClaims) Held(driverID string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.held[driverID]
	return id, ok
}
