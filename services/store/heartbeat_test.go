package store

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHeartbeatConfigValidation(t *testing.T) {
	m := newMem(t, "eu", &fakeTime{})
	cases := map[string]struct {
		cfg  HeartbeatConfig
		want string
	}{
		"A writer without a store is refused.":     {HeartbeatConfig{Region: "eu"}, "store is required"},
		"A writer without a region is refused.":    {HeartbeatConfig{Store: m}, "region is required"},
		"A negative interval is refused.":          {HeartbeatConfig{Store: m, Region: "eu", Interval: -time.Second}, "must be positive"},
		"A store and a region are enough.":         {HeartbeatConfig{Store: m, Region: "eu"}, ""},
		"An explicit interval and clock are kept.": {HeartbeatConfig{Store: m, Region: "eu", Interval: time.Minute, Now: time.Now}, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewHeartbeatWriter(c.cfg)
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestBeatWritesTheRegionsClock(t *testing.T) {
	ft := &fakeTime{}
	ft.ms.Store(1_764_028_800_123)
	m := newMem(t, "eu", ft)
	w, err := NewHeartbeatWriter(HeartbeatConfig{Store: m, Region: "eu", Now: ft.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := ReadHeartbeat(ctx, m, "eu"); ok {
		t.Fatal("a heartbeat before the first beat")
	}
	if _, err := w.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	ft.add(time.Second)
	if _, err := w.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	hb, rec, ok, err := ReadHeartbeat(ctx, m, "eu")
	if err != nil || !ok || hb.Region != "eu" || !hb.Written.Equal(time.UnixMilli(1_764_028_801_123)) {
		t.Fatalf("heartbeat = %+v %v %v", hb, ok, err)
	}
	if rec.Table != HeartbeatTable || rec.Key != "eu" {
		t.Fatalf("record = %+v", rec)
	}
	if hw, _ := m.HighWater(ctx); hw != 2 {
		t.Fatalf("each beat is an outbox event: hw %d", hw)
	}
}

func TestReadHeartbeatRejectsAGarbledRow(t *testing.T) {
	m := newMem(t, "eu", &fakeTime{})
	_, _ = m.Put(ctx, HeartbeatTable, "us", []byte(`[1,2]`))
	if _, _, ok, err := ReadHeartbeat(ctx, m, "us"); ok || err == nil {
		t.Fatalf("ok %v err %v", ok, err)
	}
}

// failingPutter fails every write and counts them.
type failingPutter struct{ calls atomic.Int64 }

func (f *failingPutter) Put(context.Context, string, string, []byte) (Record, error) {
	f.calls.Add(1)
	return Record{}, errors.New("disk on fire")
}

func TestRunBeatsUntilCancelledAndSurvivesFailures(t *testing.T) {
	cases := map[string]struct {
		store func(t *testing.T) (Putter, func() int64)
	}{
		"A healthy store receives a beat per interval.": {func(t *testing.T) (Putter, func() int64) {
			m := newMem(t, "eu", &fakeTime{})
			return m, func() int64 { hw, _ := m.HighWater(ctx); return int64(hw) }
		}},
		"A failing store is retried on schedule.": {func(t *testing.T) (Putter, func() int64) {
			f := &failingPutter{}
			return f, f.calls.Load
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p, count := c.store(t)
			w, err := NewHeartbeatWriter(HeartbeatConfig{Store: p, Region: "eu", Interval: 2 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- w.Run(rctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for count() < 3 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // polling with a deadline, not timing
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run = %v", err)
			}
			if count() < 3 {
				t.Fatalf("only %d beats within the deadline", count())
			}
		})
	}
}
