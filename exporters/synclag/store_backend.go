package synclag

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/carpoolsla/carpoolsla/services/store"
)

// RegionStore is the part of a region store (services/store) the store
// backend uses; *store.Memory and every store.Store satisfy it.
type RegionStore interface {
	store.Putter
	ScanRange(ctx context.Context, table, fromKey, toKey string, limit int) ([]store.Record, error)
}

// maxHeartbeatRows bounds one read of a store's heartbeat table (one row
// per region).
const maxHeartbeatRows = 10_000

// StoreBackend is the HeartbeatBackend of the services' region stores. The
// services already write heartbeats (store.HeartbeatWriter, every second,
// into store.HeartbeatTable); Read reads every row of that table, and
// Write writes a row the same way, for a writer outside the services.
type StoreBackend struct {
	st RegionStore
}

// StoreBackend implements HeartbeatBackend.
var _ HeartbeatBackend = (*StoreBackend)(nil)

// NewStoreBackend returns the backend of one region store.
func NewStoreBackend(st RegionStore) *StoreBackend { return &StoreBackend{st: st} }

// Write implements HeartbeatWriter, in the format of store.HeartbeatWriter.
func (b *StoreBackend) Write(ctx context.Context, region string, ts time.Time) error {
	v, err := json.Marshal(store.Heartbeat{Region: region, Written: ts.UTC()})
	if err != nil {
		return fmt.Errorf("encoding the heartbeat of %s: %w", region, err)
	}
	if _, err := b.st.Put(ctx, store.HeartbeatTable, region, v); err != nil {
		return fmt.Errorf("writing the heartbeat of %s: %w", region, err)
	}
	return nil
}

// Read implements HeartbeatReader: every region's newest heartbeat held by
// the store (its own, written there, and the others', replicated).
func (b *StoreBackend) Read(ctx context.Context) (map[string]time.Time, error) {
	recs, err := b.st.ScanRange(ctx, store.HeartbeatTable, "", "", maxHeartbeatRows)
	if err != nil {
		return nil, fmt.Errorf("reading the heartbeat table: %w", err)
	}
	out := make(map[string]time.Time, len(recs))
	for _, rec := range recs {
		if rec.Deleted {
			continue
		}
		ts, err := decodeWritten(rec.Value)
		if err != nil {
			return out, fmt.Errorf("decoding the heartbeat row %q: %w", rec.Key, err)
		}
		out[rec.Key] = ts
	}
	return out, nil
}

// writtenField opens the written stamp in a heartbeat row as
// store.HeartbeatWriter encodes it (compact JSON, an RFC 3339 string).
var writtenField = []byte(`"written":"`)

// decodeWritten returns the written stamp of a heartbeat row. It parses
// the field directly (a scrape of 100 regions decodes 10,000 rows, and
// encoding/json took most of that scrape's time) and falls back to
// encoding/json for any other shape.
func decodeWritten(v []byte) (time.Time, error) {
	if i := bytes.Index(v, writtenField); i >= 0 {
		rest := v[i+len(writtenField):]
		if j := bytes.IndexByte(rest, '"'); j > 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
			if ts, err := time.Parse(time.RFC3339Nano, string(rest[:j])); err == nil {
				return ts, nil
			}
		}
	}
	var hb store.Heartbeat
	if err := json.Unmarshal(v, &hb); err != nil {
		return time.Time{}, err
	}
	if hb.Written.IsZero() {
		return time.Time{}, fmt.Errorf("no written stamp in %s", v)
	}
	return hb.Written, nil
}

// NewStoreReader returns a Reader of the sync lag from every source into
// targetRegion, read from the target's region store. sources are the
// regions expected to replicate into it (see Target.Sources); now is the
// clock lag is measured on (nil: time.Now; in process pass the target
// region's fault-injector clock to measure as that region would). The
// target's own row is exposed as its written heartbeat.
//
// One Reader reports one exporter's up and error metrics; to export every
// pair of several regions from one registry, use NewClusterReader.
func NewStoreReader(targetRegion string, target RegionStore, sources []string, now func() time.Time) (*Reader, error) {
	return New(Config{
		Targets: []Target{{Region: targetRegion, Applied: NewStoreBackend(target), Sources: sources}},
		Now:     now,
	})
}

// NewClusterReader returns one Reader of every source → target pair of the
// region stores by region name (a region.Cluster's: stores[name] =
// c.Regions[name].Store): each region is a target of every other, and each
// region's own row is its written heartbeat.
func NewClusterReader(stores map[string]RegionStore, now func() time.Time) (*Reader, error) {
	names := slices.Sorted(maps.Keys(stores))
	cfg := Config{Now: now}
	for _, name := range names {
		if stores[name] == nil {
			return nil, fmt.Errorf("synclag: the store of region %s is nil", name)
		}
		var sources []string
		for _, s := range names {
			if s != name {
				sources = append(sources, s)
			}
		}
		cfg.Targets = append(cfg.Targets, Target{Region: name, Applied: NewStoreBackend(stores[name]), Sources: sources})
	}
	return New(cfg)
}
