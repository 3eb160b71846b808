package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/services/store"
)

func storeVerifier(t *testing.T, src, tgt *store.Memory, mod func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{
		Source: NewStore(src, src), Target: NewStore(tgt, tgt),
		SourceRegion: "sh-a", TargetRegion: "sh-b",
		Tables:    []Table{{Name: "rides"}},
		ChunkSize: 100, LeafRows: 8, Workers: 4,
		After: (&manualAfter{}).after,
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestConfigValidation(t *testing.T) {
	b := NewStore(nil, nil)
	ok := Config{Source: b, Target: b, Tables: []Table{{Name: "rides"}}}
	tests := map[string]struct {
		mod  func(*Config)
		want string
	}{
		"A config with both backends and a table is valid.":                {func(*Config) {}, ""},
		"A missing target backend is an error.":                            {func(c *Config) { c.Target = nil }, "backends are required"},
		"No table is an error.":                                            {func(c *Config) { c.Tables = nil }, "no table"},
		"A table listed twice is an error.":                                {func(c *Config) { c.Tables = []Table{{Name: "a"}, {Name: "a"}} }, "twice"},
		"The same region on both sides is an error.":                       {func(c *Config) { c.SourceRegion, c.TargetRegion = "x", "x" }, "must differ"},
		"A chunk of one row is an error.":                                  {func(c *Config) { c.ChunkSize = 1 }, "chunk size"},
		"Leaf rows above the chunk size is an error.":                      {func(c *Config) { c.ChunkSize, c.LeafRows = 10, 11 }, "leaf rows"},
		"Zero workers after defaults is impossible; too many is an error.": {func(c *Config) { c.Workers = 1000 }, "workers"},
		"A negative recheck delay is an error.":                            {func(c *Config) { c.RecheckAfter = -time.Second }, "recheck-after"},
		"A negative interval is an error.":                                 {func(c *Config) { c.Interval = -time.Second }, "interval"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			tc.mod(&cfg)
			_, err := New(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestIdenticalStoresReportNothing(t *testing.T) {
	src, tgt := newStores(t)
	fill(t, 2500, src, tgt)
	// Tombstones on both sides are no rows on either.
	ctx := context.Background()
	for _, s := range []*store.Memory{src, tgt} {
		if _, err := s.Delete(ctx, "rides", rideKey(7)); err != nil {
			t.Fatal(err)
		}
	}
	v := storeVerifier(t, src, tgt, nil)
	rep, err := v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Tables[0]
	if len(tr.Mismatches) != 0 || tr.Suspects != 0 || tr.ChunksMismatched != 0 {
		t.Fatalf("mismatches in identical stores: %+v", tr)
	}
	if tr.RowsVerified != 2499 || tr.Chunks != 25 || !tr.Complete {
		t.Errorf("rows %d chunks %d complete %v; want 2499 rows in 25 chunks, complete", tr.RowsVerified, tr.Chunks, tr.Complete)
	}
}

// inject applies the five differences of the proof to the target: a
// missing row, an extra row, a changed value, two values swapped between
// rows, and a duplicated pair (two extra rows holding the same document).
// It returns the expected summary.
func injectStore(t *testing.T, tgt *store.Memory) string {
	t.Helper()
	ctx := context.Background()
	must := func(_ store.Record, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tgt.Delete(ctx, "rides", rideKey(10)))                                   // missing
	must(tgt.Put(ctx, "rides", "ride-extra", []byte(`{"id":-1}`)))                // extra
	must(tgt.Put(ctx, "rides", rideKey(20), []byte(rideDoc(20, "changed"))))      // differ
	must(tgt.Put(ctx, "rides", rideKey(30), []byte(rideDoc(30, "d31"))))          // swapped ...
	must(tgt.Put(ctx, "rides", rideKey(31), []byte(rideDoc(31, "d30"))))          // ... with 31
	must(tgt.Put(ctx, "rides", rideKey(40)+"-dup-a", []byte(rideDoc(40, "d40")))) // duplicated pair
	must(tgt.Put(ctx, "rides", rideKey(40)+"-dup-b", []byte(rideDoc(40, "d40")))) // (same document twice)
	return strings.Join([]string{
		"differ " + rideKey(20), "differ " + rideKey(30), "differ " + rideKey(31),
		"extra " + rideKey(40) + "-dup-a", "extra " + rideKey(40) + "-dup-b", "extra ride-extra",
		"missing " + rideKey(10),
	}, "\n")
}

func TestInjectedDifferencesAreReportedWithTheirRepairs(t *testing.T) {
	src, tgt := newStores(t)
	fill(t, 1000, src, tgt)
	want := injectStore(t, tgt)
	v := storeVerifier(t, src, tgt, nil)
	ctx := context.Background()
	rep, err := v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(rep.Mismatches()); got != want {
		t.Fatalf("reported:\n%s\nwant:\n%s", got, want)
	}
	repairs := map[string]string{}
	for _, m := range rep.Mismatches() {
		repairs[m.Key] = m.Repair
	}
	for key, stmt := range map[string]string{
		rideKey(10):  "PUT rides/" + rideKey(10) + " " + rideDoc(10, "d10"),
		rideKey(20):  "PUT rides/" + rideKey(20) + " " + rideDoc(20, "d20"),
		"ride-extra": "DELETE rides/ride-extra",
	} {
		if repairs[key] != stmt {
			t.Errorf("repair of %s = %q, want %q", key, repairs[key], stmt)
		}
	}
	if got := len(v.OpenMismatches()); got != 7 {
		t.Errorf("%d open mismatches, want 7", got)
	}
	// The report is JSON.
	if _, err := json.Marshal(rep); err != nil {
		t.Fatalf("the report does not encode: %v", err)
	}
	// Applying the repairs makes the next pass clean.
	tb := v.Target().(Repairer)
	for _, m := range rep.Mismatches() {
		if err := tb.Apply(ctx, m.Table, m.Key, m.Target, m.Source); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ms := rep.Mismatches(); len(ms) != 0 {
		t.Fatalf("after the repairs: %s", summary(ms))
	}
	if got := len(v.OpenMismatches()); got != 0 {
		t.Errorf("%d open mismatches after a clean full pass", got)
	}
}

// xorCRC32 is the checksum this verifier replaces: the row count and the
// XOR of the CRC32s of each row's "key#value" text, as pt-table-checksum
// once did.
func xorCRC32(rows []string) (n int, x uint32) {
	for _, r := range rows {
		n++
		x ^= crc32.ChecksumIEEE([]byte(r))
	}
	return n, x
}

// sumHashes is this verifier's checksum of the same rows (the region
// store's row hash).
func sumHashes(salt uint64, rows []string) Checksum {
	var c Checksum
	for _, r := range rows {
		k, v, _ := strings.Cut(r, "#")
		c = c.Add(storeRowHash(salt, k, []byte(v)))
	}
	return c
}

func TestXORofCRC32MissesWhatTheSumOfSaltedHashesCatches(t *testing.T) {
	cases := map[string]struct{ source, target []string }{
		// CRC32 is affine over GF(2): for equal-length inputs
		// crc(a)^crc(b)^crc(c)^crc(d) = crc(a^b^c^d), and with values
		// swapped between two rows a^b^c^d is all zeros, so the XOR of
		// the four CRCs cancels.
		"Two values swapped between rows are missed by the XOR.": {
			source: []string{"k1#alice", "k2#bobby", "k3#carol"},
			target: []string{"k1#bobby", "k2#alice", "k3#carol"},
		},
		// x^x = 0: a row counted twice vanishes from an XOR; one
		// duplicated pair in place of another keeps the count too. (Rows
		// repeat where the chunking column is not unique, or a row is
		// copied under a replication bug.)
		"A duplicated pair in place of another is missed by the XOR.": {
			source: []string{"a#1", "b#2", "c#3", "c#3"},
			target: []string{"a#1", "b#2", "d#4", "d#4"},
		},
		"A duplicated pair added is missed by the XOR (only the count shows it).": {
			source: []string{"a#1", "b#2"},
			target: []string{"a#1", "b#2", "e#5", "e#5"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, xs := xorCRC32(tc.source)
			_, xt := xorCRC32(tc.target)
			if xs != xt {
				t.Fatalf("the XOR of CRC32s told them apart (%08x vs %08x): the premise is wrong", xs, xt)
			}
			for salt := range uint64(100) {
				if sumHashes(salt, tc.source) == sumHashes(salt, tc.target) {
					t.Fatalf("salt %d: the sum of salted hashes missed it", salt)
				}
			}
		})
	}
}

func TestATargetTooFarOffFailsInsteadOfHoldingEveryRow(t *testing.T) {
	src, tgt := newStores(t)
	fill(t, 500, src) // the target is empty
	v := storeVerifier(t, src, tgt, func(c *Config) { c.MaxSuspects = 50 })
	rep, err := v.Verify(context.Background())
	if err == nil || !strings.Contains(err.Error(), "copy the table afresh") {
		t.Fatalf("error %v, want the max-suspects one", err)
	}
	if rep.Tables[0].Complete || len(rep.Tables[0].Mismatches) != 0 {
		t.Errorf("the failed pass: %+v", rep.Tables[0])
	}
}

func TestAWriteInFlightIsNotReported(t *testing.T) {
	src, tgt := newStores(t)
	fill(t, 500, src, tgt)
	ctx := context.Background()
	// A write in the source that replication has not delivered yet, and a
	// real mismatch beside it.
	if _, err := src.Put(ctx, "rides", rideKey(100), []byte(rideDoc(100, "late"))); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Put(ctx, "rides", rideKey(200), []byte(rideDoc(200, "corrupt"))); err != nil {
		t.Fatal(err)
	}
	clock := &manualAfter{}
	// Replication delivers the write while the verifier waits out the lag.
	clock.hook = func(n int, _ time.Duration) {
		if n == 1 {
			if _, err := tgt.Put(ctx, "rides", rideKey(100), []byte(rideDoc(100, "late"))); err != nil {
				t.Error(err)
			}
		}
	}
	v := storeVerifier(t, src, tgt, func(c *Config) {
		c.After = clock.after
		c.RecheckAfter = 3 * time.Second
		c.Lag = func(context.Context) (time.Duration, error) { return 8 * time.Second, nil }
	})
	rep, err := v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Tables[0]
	if got := summary(tr.Mismatches); got != "differ "+rideKey(200) {
		t.Fatalf("reported %q; want only the real mismatch", got)
	}
	if tr.Suspects != 2 || tr.InFlight != 1 {
		t.Errorf("suspects %d, in flight %d; want 2 and 1", tr.Suspects, tr.InFlight)
	}
	// The wait covered the lag: 8 s of lag plus half of recheck-after.
	if len(clock.waits) != 1 || clock.waits[0] != 8*time.Second+1500*time.Millisecond {
		t.Errorf("waits %v; want one of 9.5s (lag + recheck-after/2)", clock.waits)
	}
}

func TestARowThatKeepsChangingIsUnsettledNotReported(t *testing.T) {
	src, tgt := newStores(t)
	fill(t, 300, src, tgt)
	ctx := context.Background()
	if _, err := src.Put(ctx, "rides", rideKey(5), []byte(rideDoc(5, "v0"))); err != nil {
		t.Fatal(err)
	}
	clock := &manualAfter{hook: func(n int, _ time.Duration) {
		// The source keeps writing the row; the target never catches up.
		if _, err := src.Put(ctx, "rides", rideKey(5), []byte(rideDoc(5, fmt.Sprintf("v%d", n)))); err != nil {
			t.Error(err)
		}
	}}
	v := storeVerifier(t, src, tgt, func(c *Config) { c.After = clock.after; c.Rechecks = 3 })
	rep, err := v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Tables[0]
	if len(tr.Mismatches) != 0 || len(tr.Unsettled) != 1 || tr.Unsettled[0] != rideKey(5) {
		t.Fatalf("mismatches %s, unsettled %v; want only %s unsettled", summary(tr.Mismatches), tr.Unsettled, rideKey(5))
	}
	if len(clock.waits) != 3 {
		t.Errorf("%d waits, want 3 re-checks", len(clock.waits))
	}
}

func TestARestartedRunContinuesFromTheCheckpoint(t *testing.T) {
	src, tgt := newStores(t)
	fill(t, 3000, src, tgt)
	ctx := context.Background()
	// One mismatch early (found by the interrupted run) and one late.
	if _, err := tgt.Delete(ctx, "rides", rideKey(50)); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Delete(ctx, "rides", rideKey(2950)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "verify.checkpoint.json")
	cps, err := NewFileCheckpoints(file)
	if err != nil {
		t.Fatal(err)
	}
	// The first run dies after about a third of the chunks.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	source := &flaky{Backend: NewStore(src, nil), onCall: func(n int) {
		if n == 10 {
			cancel()
		}
	}}
	v1 := storeVerifier(t, src, tgt, func(c *Config) { c.Source = source; c.Checkpoints = cps; c.Workers = 2 })
	rep1, err := v1.Verify(runCtx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted run returned %v, want context.Canceled", err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no checkpoint file after the interrupted run: %v", err)
	}
	var saved map[string]Checkpoint
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	cp, ok := saved["sh-a>sh-b:rides"]
	if !ok || !cp.HasAfter || cp.Scanned {
		t.Fatalf("checkpoint %s; want one part-way through the table", b)
	}
	if len(rep1.Tables) != 1 || rep1.Tables[0].Complete {
		t.Fatalf("the interrupted run's report: %+v", rep1.Tables)
	}

	// A new process (a new verifier on the same file) continues after it.
	cps2, err := NewFileCheckpoints(file)
	if err != nil {
		t.Fatal(err)
	}
	v2 := storeVerifier(t, src, tgt, func(c *Config) { c.Checkpoints = cps2 })
	rep2, err := v2.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr := rep2.Tables[0]
	if tr.ResumedFrom == nil || tr.ResumedFrom.After != cp.After {
		t.Fatalf("resumed from %+v, want after %q", tr.ResumedFrom, cp.After)
	}
	after := 0
	fmt.Sscanf(cp.After, "ride-%d", &after)
	if want := int64(3000 - after - 1); tr.RowsVerified != want { // the source's rows after the checkpoint
		t.Errorf("rows verified %d after resuming at %s; want %d", tr.RowsVerified, cp.After, want)
	}
	found := summary(tr.Mismatches)
	if !strings.Contains(found, "missing "+rideKey(2950)) {
		t.Errorf("the resumed run found %q; want the late mismatch", found)
	}
	if after > 50 && !strings.Contains(found, "missing "+rideKey(50)) && !strings.Contains(strings.Join(cp.Pending, ","), rideKey(50)) {
		t.Errorf("the early mismatch was lost: neither pending in the checkpoint %v nor found (%q)", cp.Pending, found)
	}
	if _, ok, _ := cps2.Load(ctx, "sh-a>sh-b:rides"); ok {
		t.Error("the checkpoint survived a completed pass")
	}
	// The next pass starts from the first key again.
	rep3, err := v2.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep3.Tables[0].ResumedFrom != nil || rep3.Tables[0].RowsVerified != 3000 {
		t.Errorf("the pass after a complete one: resumed %+v, rows %d; want a full pass of 3000", rep3.Tables[0].ResumedFrom, rep3.Tables[0].RowsVerified)
	}
	if got := summary(rep3.Mismatches()); got != "missing "+rideKey(2950)+"\nmissing "+rideKey(50) && got != "missing "+rideKey(50)+"\nmissing "+rideKey(2950) {
		t.Errorf("full pass found %q", got)
	}
}

func TestAnUnreachableBackendFailsTheRunAndRecovers(t *testing.T) {
	src, tgt := newStores(t)
	fill(t, 200, src, tgt)
	target := &flaky{Backend: NewStore(tgt, tgt)}
	target.setDown(true)
	waits := make(chan chan time.Time, 4)
	v := storeVerifier(t, src, tgt, func(c *Config) {
		c.Target = target
		c.After = func(time.Duration) <-chan time.Time {
			ch := make(chan time.Time, 1)
			waits <- ch
			return ch
		}
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(v, 0, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()

	// The first run finds the target down: logged, counted, up 0.
	next := <-waits
	if err := v.LastReport().Err(); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("the run with the target down reported %v", err)
	}
	if got := gather(t, reg, "carpool_exporter_up"); got != 0 {
		t.Errorf("up = %v with the target down, want 0", got)
	}
	if got := gather(t, reg, "carpool_verify_runs_total", "outcome", "error"); got != 1 {
		t.Errorf("failed runs = %v, want 1", got)
	}
	// It comes back: the next run, on the timer, succeeds.
	target.setDown(false)
	next <- time.Now()
	<-waits
	if err := v.LastReport().Err(); err != nil {
		t.Fatalf("the run after recovery failed: %v", err)
	}
	if got := gather(t, reg, "carpool_exporter_up"); got != 1 {
		t.Errorf("up = %v after recovery, want 1", got)
	}
	if got := gather(t, reg, "carpool_verify_rows_verified_total"); got != 200 {
		t.Errorf("rows verified = %v, want 200", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v on cancel", err)
	}
}
