package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/services/hlc"
)

// fakeTime is a settable physical clock.
type fakeTime struct{ ms atomic.Int64 }

func (f *fakeTime) now() time.Time      { return time.UnixMilli(f.ms.Load()) }
func (f *fakeTime) add(d time.Duration) { f.ms.Add(d.Milliseconds()) }

func newMem(t testing.TB, region string, ft *fakeTime) *Memory {
	t.Helper()
	clk, err := hlc.New(hlc.Config{Region: region, Now: ft.now})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMemory(Config{Region: region, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var ctx = context.Background()

func TestConfigValidation(t *testing.T) {
	clk, _ := hlc.New(hlc.Config{Region: "us"})
	cases := map[string]struct {
		cfg  Config
		want string
	}{
		"A store without a region is refused.":           {Config{}, "region is required"},
		"A clock of another region is refused.":          {Config{Region: "eu", Clock: clk}, `belongs to region "us"`},
		"A region alone gets a default clock.":           {Config{Region: "eu"}, ""},
		"A clock of the store's own region is accepted.": {Config{Region: "us", Clock: clk}, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewMemory(c.cfg)
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestPutGetAndTheOutbox(t *testing.T) {
	ft := &fakeTime{}
	ft.ms.Store(1000)
	m := newMem(t, "eu", ft)
	r1, err := m.Put(ctx, "rides", "r1", []byte(`{ "state" : "requested" }`))
	if err != nil {
		t.Fatal(err)
	}
	if string(r1.Value) != `{"state":"requested"}` || r1.Origin != "eu" || r1.Version != (hlc.Timestamp{WallMS: 1000, Region: "eu"}) || !r1.Prev.IsZero() {
		t.Fatalf("first put = %+v", r1)
	}
	r2, _ := m.Put(ctx, "rides", "r1", []byte(`{"state":"matched"}`))
	if r2.Prev != r1.Version || !r1.Version.Less(r2.Version) {
		t.Fatalf("second put = %+v; want prev %v", r2, r1.Version)
	}
	got, ok, err := m.Get(ctx, "rides", "r1")
	if err != nil || !ok || string(got.Value) != `{"state":"matched"}` {
		t.Fatalf("Get = %+v %v %v", got, ok, err)
	}
	got.Value[0] = 'X' // a copy: the store is unaffected
	if again, _, _ := m.Get(ctx, "rides", "r1"); string(again.Value) != `{"state":"matched"}` {
		t.Fatal("Get handed out the stored bytes")
	}
	del, _ := m.Delete(ctx, "rides", "r1")
	if !del.Deleted || del.Value != nil || del.Prev != r2.Version {
		t.Fatalf("delete = %+v", del)
	}
	if _, ok, _ := m.Get(ctx, "rides", "missing"); ok {
		t.Fatal("a missing key was found")
	}
	hw, _ := m.HighWater(ctx)
	evs, err := m.Since(ctx, 0, 10)
	if err != nil || hw != 3 || len(evs) != 3 {
		t.Fatalf("hw %d, events %d, %v", hw, len(evs), err)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
	if evs[2].Record.Version != del.Version || !evs[2].Record.Deleted || evs[0].Record.Version != r1.Version {
		t.Fatalf("outbox records differ from the writes: %+v", evs)
	}
	if evs, _ := m.Since(ctx, 1, 1); len(evs) != 1 || evs[0].Seq != 2 {
		t.Fatalf("Since(1,1) = %+v", evs)
	}
	if evs, _ := m.Since(ctx, 3, 10); len(evs) != 0 {
		t.Fatalf("Since(hw) = %+v", evs)
	}
}

func TestBadWritesChangeNothing(t *testing.T) {
	m := newMem(t, "eu", &fakeTime{})
	cases := map[string]struct {
		table, key, value, field string
	}{
		"A value that is not JSON is refused.":  {"rides", "r1", `{"a":`, "value"},
		"An empty value is refused.":            {"rides", "r1", ``, "value"},
		"A write without a table is refused.":   {"", "r1", `{}`, "table"},
		"A write without a key is refused.":     {"rides", "", `{}`, "key"},
		"Trailing garbage after JSON is found.": {"rides", "r1", `{} x`, "value"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := m.Put(ctx, c.table, c.key, []byte(c.value))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field+":") {
				t.Fatalf("err = %v, want ErrInvalid naming %s", err, c.field)
			}
		})
	}
	if hw, _ := m.HighWater(ctx); hw != 0 || len(m.Dump()) != 0 {
		t.Fatalf("a refused write left traces: hw %d, %d records", hw, len(m.Dump()))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Put(cctx, "rides", "r1", []byte(`{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled write: %v", err)
	}
}

func TestOutboxBoundsAndTruncation(t *testing.T) {
	m := newMem(t, "eu", &fakeTime{})
	for i := range 5 {
		_, _ = m.Put(ctx, "t", fmt.Sprint(i), []byte(`1`))
	}
	cases := map[string]struct {
		offset uint64
		limit  int
		want   error
	}{
		"An offset past the high-water mark is an error.": {6, 1, ErrOffsetAhead},
		"A negative limit is refused.":                    {0, -1, ErrInvalid},
		"A huge limit is refused.":                        {0, MaxScanLimit + 1, ErrInvalid},
		"A zero limit only checks the offset.":            {2, 0, nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := m.Since(ctx, c.offset, c.limit); !errors.Is(err, c.want) && !(c.want == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	m.Truncate(3)
	if _, err := m.Since(ctx, 2, 10); !errors.Is(err, ErrTruncated) {
		t.Fatalf("reading truncated events: %v", err)
	}
	evs, err := m.Since(ctx, 3, 10)
	if err != nil || len(evs) != 2 || evs[0].Seq != 4 {
		t.Fatalf("after truncation: %+v %v", evs, err)
	}
	m.Truncate(100) // clamps to the high-water mark
	if hw, _ := m.HighWater(ctx); hw != 5 {
		t.Fatalf("hw = %d", hw)
	}
	if _, _ = m.Put(ctx, "t", "x", []byte(`1`)); true {
		if evs, _ := m.Since(ctx, 5, 10); len(evs) != 1 || evs[0].Seq != 6 {
			t.Fatalf("after full truncation: %+v", evs)
		}
	}
}

func TestChangedSignalsTheNextAppend(t *testing.T) {
	m := newMem(t, "eu", &fakeTime{})
	ch := m.Changed()
	select {
	case <-ch:
		t.Fatal("signalled before any write")
	default:
	}
	_, _ = m.Put(ctx, "t", "k", []byte(`1`))
	select {
	case <-ch:
	default:
		t.Fatal("not signalled by a write")
	}
	ch2 := m.Changed()
	if ch2 == ch {
		t.Fatal("the same closed channel again")
	}
	remote := newMem(t, "us", &fakeTime{})
	rec, _ := remote.Put(ctx, "t", "k", []byte(`2`))
	_, _ = m.Apply(ctx, Event{Seq: 1, Record: rec})
	select {
	case <-ch2:
		t.Fatal("an applied remote write signalled the local outbox")
	default:
	}
}

func TestScanRange(t *testing.T) {
	m := newMem(t, "eu", &fakeTime{})
	for _, k := range []string{"d", "a", "c", "b", "e"} {
		_, _ = m.Put(ctx, "t", k, []byte(`"`+k+`"`))
	}
	_, _ = m.Delete(ctx, "t", "c")
	_, _ = m.Put(ctx, "other", "a", []byte(`0`))
	keys := func(rs []Record) string {
		var b strings.Builder
		for _, r := range rs {
			b.WriteString(r.Key)
			if r.Deleted {
				b.WriteString("†")
			}
		}
		return b.String()
	}
	cases := map[string]struct {
		from, to string
		limit    int
		want     string
	}{
		"A full scan is ordered by key and includes tombstones.": {"", "", 100, "abc†de"},
		"The upper bound is exclusive.":                          {"b", "d", 100, "bc†"},
		"The limit cuts the page.":                               {"", "", 2, "ab"},
		"A page starts at its lower bound.":                      {"c", "", 2, "c†d"},
		"An empty range returns nothing.":                        {"d", "b", 10, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			rs, err := m.ScanRange(ctx, "t", c.from, c.to, c.limit)
			if err != nil || keys(rs) != c.want {
				t.Fatalf("scan = %q, %v; want %q", keys(rs), err, c.want)
			}
		})
	}
	if _, err := m.ScanRange(ctx, "t", "", "", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("limit 0: %v", err)
	}
	if rs, err := m.ScanRange(ctx, "none", "", "", 5); err != nil || len(rs) != 0 {
		t.Fatalf("unknown table: %v %v", rs, err)
	}
	if tabs, _ := m.Tables(ctx); strings.Join(tabs, ",") != "other,t" {
		t.Fatalf("tables = %v", tabs)
	}
}

// ts builds a version.
func ts(wall int64, logical uint32, region string) hlc.Timestamp {
	return hlc.Timestamp{WallMS: wall, Logical: logical, Region: region}
}

func rec(key string, v, prev hlc.Timestamp, value string) Record {
	r := Record{Table: "t", Key: key, Version: v, Prev: prev, Origin: v.Region}
	if value == "" {
		r.Deleted = true
	} else {
		r.Value = []byte(value)
	}
	return r
}

func TestApplyLastWriterWins(t *testing.T) {
	// The target region "b" holds key k at version 100.0@b (which had
	// overwritten 90.0@a) before each case applies one event.
	held := rec("k", ts(100, 0, "b"), ts(90, 0, "a"), `"held"`)
	cases := map[string]struct {
		incoming     Record
		want         Outcome
		wantConflict bool
		wantValue    string
	}{
		"A newer concurrent write wins and is a conflict.": {
			rec("k", ts(200, 0, "a"), ts(90, 0, "a"), `"new"`), Won, true, `"new"`},
		"A newer write that had seen the held one wins without a conflict.": {
			rec("k", ts(200, 0, "c"), ts(100, 0, "b"), `"new"`), Won, false, `"new"`},
		"An older concurrent write loses and is a conflict.": {
			rec("k", ts(95, 0, "c"), ts(0, 0, ""), `"old"`), Lost, true, `"held"`},
		"A stale delivery of the overwritten version loses without a conflict.": {
			rec("k", ts(90, 0, "a"), ts(0, 0, ""), `"old"`), Lost, false, `"held"`},
		"A tie on wall and logical is broken by region name (c > b).": {
			rec("k", ts(100, 0, "c"), ts(0, 0, ""), `"c"`), Won, true, `"c"`},
		"A tie on wall and logical is broken by region name (a < b).": {
			rec("k", ts(100, 0, "a"), ts(0, 0, ""), `"a"`), Lost, true, `"held"`},
		"A newer tombstone deletes.": {
			rec("k", ts(300, 0, "a"), ts(100, 0, "b"), ``), Won, false, ``},
		"A write to a new key wins without a conflict.": {
			rec("new", ts(10, 0, "a"), ts(0, 0, ""), `1`), Won, false, `1`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ft := &fakeTime{}
			ft.ms.Store(1000)
			m := newMem(t, "b", ft)
			m.tableLocked("t")
			m.installLocked(m.tables["t"], nil, held)
			res, err := m.Apply(ctx, Event{Seq: 1, Record: c.incoming})
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != c.want || res.Conflict != c.wantConflict {
				t.Fatalf("outcome %v conflict %v; want %v %v", res.Outcome, res.Conflict, c.want, c.wantConflict)
			}
			got, _, _ := m.Get(ctx, "t", c.incoming.Key)
			if string(got.Value) != c.wantValue || res.Current.Version != got.Version {
				t.Fatalf("value %s (current %v); want %s", got.Value, res.Current.Version, c.wantValue)
			}
			// The receive merged the event's version into the clock.
			if !c.incoming.Version.Less(m.Clock().Now()) {
				t.Fatal("the clock did not move past the applied version")
			}
		})
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	src, dst := newMem(t, "a", &fakeTime{}), newMem(t, "b", &fakeTime{})
	_, _ = src.Put(ctx, "t", "k", []byte(`1`))
	evs, _ := src.Since(ctx, 0, 1)
	if res, _ := dst.Apply(ctx, evs[0]); res.Outcome != Won {
		t.Fatalf("first apply %v", res.Outcome)
	}
	if res, _ := dst.Apply(ctx, evs[0]); res.Outcome != Duplicate {
		t.Fatalf("second apply %v", res.Outcome)
	}
	// The same write under a sequence number not yet applied (an outbox
	// rebuilt after a restart) is still recognised by its version.
	again := evs[0]
	again.Seq = 2
	if res, _ := dst.Apply(ctx, again); res.Outcome != Duplicate {
		t.Fatalf("same version, new seq: %v", res.Outcome)
	}
	if seq, _ := dst.AppliedSeq(ctx, "a"); seq != 2 {
		t.Fatalf("applied seq %d", seq)
	}
	if s := dst.Stats(); s.Won != 1 || s.Duplicates != 2 {
		t.Fatalf("stats %v", s)
	}
}

func TestApplyRefusesAVersionTooFarAhead(t *testing.T) {
	ft := &fakeTime{}
	ft.ms.Store(10_000)
	m := newMem(t, "b", ft)
	ev := Event{Seq: 1, Record: rec("k", ts(10_600, 0, "a"), ts(0, 0, ""), `1`)}
	_, err := m.Apply(ctx, ev)
	if !errors.Is(err, hlc.ErrRemoteAhead) {
		t.Fatalf("err = %v", err)
	}
	if seq, _ := m.AppliedSeq(ctx, "a"); seq != 0 || len(m.Dump()) != 0 || m.Clock().Rejected() != 1 {
		t.Fatalf("a refused event left traces: seq %d, %d records", seq, len(m.Dump()))
	}
	ft.add(200 * time.Millisecond) // the clocks agree again: the retry succeeds
	if res, err := m.Apply(ctx, ev); err != nil || res.Outcome != Won {
		t.Fatalf("retry: %v %v", res.Outcome, err)
	}
}

func TestApplyRefusesMalformedEvents(t *testing.T) {
	m := newMem(t, "b", &fakeTime{})
	good := rec("k", ts(1, 0, "a"), ts(0, 0, ""), `1`)
	cases := map[string]struct {
		ev    Event
		field string
	}{
		"An event without a sequence number is refused.": {Event{Record: good}, "seq:"},
		"An event of this region's own is refused.": {Event{Seq: 1, Record: rec("k", ts(1, 0, "b"), ts(0, 0, ""), `1`)},
			"origin:"},
		"A version issued by another region than the origin is refused.": {Event{Seq: 1, Record: func() Record { r := good; r.Origin = "c"; return r }()},
			"version:"},
		"A tombstone with a value is refused.": {Event{Seq: 1, Record: func() Record { r := good; r.Deleted = true; return r }()},
			"value:"},
		"An event without a key is refused.": {Event{Seq: 1, Record: func() Record { r := good; r.Key = ""; return r }()},
			"key:"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := m.Apply(ctx, c.ev); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("err = %v, want ErrInvalid naming %s", err, c.field)
			}
		})
	}
}

func TestPutCarriesTheTraceContext(t *testing.T) {
	m := newMem(t, "eu", &fakeTime{})
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	_, _ = m.Put(trace.ContextWithSpanContext(ctx, sc), "t", "traced", []byte(`1`))
	_, _ = m.Put(ctx, "t", "untraced", []byte(`1`))
	evs, _ := m.Since(ctx, 0, 2)
	if got := evs[0].Trace["traceparent"]; got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent = %q", got)
	}
	if evs[1].Trace != nil {
		t.Fatalf("an untraced write carries %v", evs[1].Trace)
	}
}

// Concurrent writers, appliers and readers: every write gets one outbox
// event, sequence numbers have no gaps, and versions increase with the
// sequence (the outbox is in version order). Run under -race.
func TestConcurrentUse(t *testing.T) {
	m := newMem(t, "eu", &fakeTime{})
	remote := newMem(t, "us", &fakeTime{})
	const writers, each = 4, 300
	for i := range each {
		_, _ = remote.Put(ctx, "t", fmt.Sprint(i%17), []byte(`"r"`))
	}
	remoteEvs, _ := remote.Since(ctx, 0, each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := m.Put(ctx, "t", fmt.Sprint((w*each+i)%17), []byte(`"l"`)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for _, ev := range remoteEvs {
			if _, err := m.Apply(ctx, ev); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for range each {
			_, _ = m.ScanRange(ctx, "t", "", "", 100)
			_, _ = m.Since(ctx, 0, 10)
			_ = m.Changed()
		}
	})
	wg.Wait()
	evs, err := m.Since(ctx, 0, MaxScanLimit)
	if err != nil || len(evs) != writers*each {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("gap at %d: seq %d", i, ev.Seq)
		}
		if i > 0 && !evs[i-1].Record.Version.Less(ev.Record.Version) {
			t.Fatalf("versions out of order at seq %d", ev.Seq)
		}
	}
	if seq, _ := m.AppliedSeq(ctx, "us"); seq != each {
		t.Fatalf("applied seq %d", seq)
	}
}
