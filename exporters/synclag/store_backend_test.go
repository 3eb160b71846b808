package synclag

import (
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/hlc"
	"github.com/carpoolsla/carpoolsla/services/replication"
	"github.com/carpoolsla/carpoolsla/services/store"
)

func newStore(t testing.TB, name string, now func() time.Time) *store.Memory {
	t.Helper()
	clk, err := hlc.New(hlc.Config{Region: name, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.NewMemory(store.Config{Region: name, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreReaderFollowsTheServicesHeartbeatsThroughAStalledReplicator(t *testing.T) {
	clk := newClock()
	src, dst := newStore(t, "a", clk.Now), newStore(t, "b", clk.Now)
	// The services' own heartbeat writers, in both regions.
	hbA, err := store.NewHeartbeatWriter(store.HeartbeatConfig{Store: src, Region: "a", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	hbB, err := store.NewHeartbeatWriter(store.HeartbeatConfig{Store: dst, Region: "b", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replication.New(replication.Config{SourceRegion: "a", Source: replication.NewLocalSource(src), Target: dst})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewStoreReader("b", dst, []string{"a"}, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r)
	beat := func() {
		t.Helper()
		if _, err := hbA.Beat(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := hbB.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing replicated yet: the pair reports the time since start.
	beat()
	clk.Add(300 * time.Millisecond)
	if got, _ := s.scrape(t).lag("a", "b"); !near(got, 0.3, 1e-9) {
		t.Fatalf("lag before any heartbeat arrived = %v, want 0.3", got)
	}
	if _, err := rep.Step(ctx); err != nil {
		t.Fatal(err)
	}
	// Replication runs: lag is the age of a's newest stamp.
	sc := s.scrape(t)
	if got, _ := sc.lag("a", "b"); !near(got, 0.3, 1e-9) {
		t.Fatalf("lag = %v, want 0.3", got)
	}
	if got, _ := sc.get("carpool_sync_heartbeat_written_timestamp_seconds", "region", "b"); got != float64(t0.Unix()) {
		t.Fatalf("b's own written stamp = %v", got)
	}
	// The replicator stalls (no steps) while both regions keep beating:
	// lag grows second by second.
	for i := 1; i <= 5; i++ {
		clk.Add(time.Second)
		beat()
		if got, _ := s.scrape(t).lag("a", "b"); !near(got, 0.3+float64(i), 1e-9) {
			t.Fatalf("lag %d s into the stall = %v, want %v", i, got, 0.3+float64(i))
		}
	}
	// It resumes and catches up: lag falls back to the newest stamp's age.
	if _, err := rep.Step(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Add(100 * time.Millisecond)
	if got, _ := s.scrape(t).lag("a", "b"); !near(got, 0.1, 1e-9) {
		t.Fatalf("lag after catch-up = %v, want 0.1", got)
	}
	promtoolCheck(t, s.text(t))
}

func TestClusterReaderReportsEveryPairOfTheStores(t *testing.T) {
	clk := newClock()
	names := []string{"a", "b", "c"}
	stores := map[string]RegionStore{}
	mems := map[string]*store.Memory{}
	for _, n := range names {
		mems[n] = newStore(t, n, clk.Now)
		stores[n] = mems[n]
		if err := NewStoreBackend(mems[n]).Write(ctx, n, clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for _, src := range names {
		for _, dst := range names {
			if src == dst {
				continue
			}
			rep, err := replication.New(replication.Config{SourceRegion: src, Source: replication.NewLocalSource(mems[src]), Target: mems[dst]})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rep.Step(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := NewClusterReader(stores, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Second)
	s := serve(t, r)
	sc := s.scrape(t)
	if n := sc.count("carpool_sync_lag_seconds"); n != 6 {
		t.Fatalf("%d pairs, want 6", n)
	}
	for _, src := range names {
		for _, dst := range names {
			if got, ok := sc.lag(src, dst); src != dst && (!ok || got != 2) {
				t.Errorf("lag %s→%s = %v (present %v), want 2", src, dst, got, ok)
			}
		}
		if _, ok := sc.get("carpool_sync_heartbeat_written_timestamp_seconds", "region", src); !ok {
			t.Errorf("no written stamp of %s", src)
		}
	}
	promtoolCheck(t, s.text(t))
}

func TestStoreBackendReportsACorruptHeartbeatRow(t *testing.T) {
	st := newStore(t, "b", time.Now)
	if _, err := st.Put(ctx, store.HeartbeatTable, "a", []byte(`{"written":"yesterday"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStoreBackend(st).Read(ctx); err == nil {
		t.Fatal("a corrupt heartbeat row read without error")
	}
}

func TestDecodeWrittenReadsTheServicesFormatAndFallsBackToJSON(t *testing.T) {
	want := time.Date(2025, 11, 25, 1, 2, 3, 456789000, time.UTC)
	f := func(row, wantErr string) {
		t.Helper()
		got, err := decodeWritten([]byte(row))
		switch {
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: got %v, %v; want an error containing %q", row, got, err, wantErr)
		case wantErr == "" && (err != nil || !got.Equal(want)):
			t.Errorf("%s: got %v, %v; want %v", row, got, err, want)
		}
	}
	f(`{"region":"a","written":"2025-11-25T01:02:03.456789Z"}`, "")
	f(`{ "written" : "2025-11-25T03:02:03.456789+02:00", "region": "a" }`, "")
	f(`{"region":"a","written":"2025-11-25T01:02:03.456789Z","extra":{"written":"x"}}`, "")
	f(`{"region":"a"}`, "no written stamp")
	f(`{"region":"a","written":"yesterday"}`, "cannot parse")
	f(`not json`, "invalid character")
}
