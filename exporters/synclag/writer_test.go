package synclag

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

func TestTheWriterStampsAtOnceAndEveryInterval(t *testing.T) {
	b := newFake(nil)
	w, err := NewWriter(WriterConfig{Region: "a", Backend: b, Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	realserver.WaitFor(t, 5*time.Second, "three heartbeats", func() (bool, error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.writes >= 3, nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v on cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop within 5s of cancel")
	}
}

func TestTheWriterExposesItsStampAsWrittenAndCountsFailures(t *testing.T) {
	clk := newClock()
	b := newFake(nil)
	var logs bytes.Buffer
	w, err := NewWriter(WriterConfig{Region: "a", Backend: b, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Written: []HeartbeatReader{w}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r, w)
	if err := w.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	sc := s.scrape(t)
	if got, _ := sc.get("carpool_sync_heartbeat_written_timestamp_seconds", "region", "a"); got != float64(t0.Unix()) || sc.up() != 1 {
		t.Fatalf("written = %v, up %v", got, sc.up())
	}
	// The source goes down: the stamp stays, the scrape fails, errors count.
	b.fail(errors.New("connection refused"))
	clk.Add(time.Second)
	for range 3 {
		if err := w.Beat(ctx); err == nil {
			t.Fatal("a write to a failing backend succeeded")
		}
	}
	sc = s.scrape(t)
	if got, _ := sc.get("carpool_sync_heartbeat_written_timestamp_seconds", "region", "a"); got != float64(t0.Unix()) {
		t.Fatalf("written after failures = %v, want the last good stamp", got)
	}
	if n, _ := sc.get("carpool_sync_heartbeat_write_errors_total", "region", "a"); n != 3 || sc.up() != 0 {
		t.Fatalf("write errors %v, up %v; want 3 and 0", n, sc.up())
	}
	if c := strings.Count(logs.String(), "heartbeat write failed"); c != 1 {
		t.Fatalf("the same failure was logged %d times, want once:\n%s", c, logs.String())
	}
	promtoolCheck(t, s.text(t))
	// It recovers by itself at the next write.
	b.fail(nil)
	if err := w.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	sc = s.scrape(t)
	if got, _ := sc.get("carpool_sync_heartbeat_written_timestamp_seconds", "region", "a"); got != float64(t0.Unix()+1) || sc.up() != 1 {
		t.Fatalf("after recovery: written %v, up %v", got, sc.up())
	}
	if !strings.Contains(logs.String(), "recovered") {
		t.Fatalf("no recovery logged:\n%s", logs.String())
	}
}

func TestWriterConfigValidation(t *testing.T) {
	b := newFake(nil)
	for name, tc := range map[string]struct {
		cfg  WriterConfig
		want string
	}{
		"A writer without a region should fail.":     {WriterConfig{Backend: b}, "region is required"},
		"A writer without a backend should fail.":    {WriterConfig{Region: "a"}, "backend is required"},
		"A negative interval should fail.":           {WriterConfig{Region: "a", Backend: b, Interval: -time.Second}, "interval"},
		"A writer with region and backend is valid.": {WriterConfig{Region: "a", Backend: b}, ""},
	} {
		_, err := NewWriter(tc.cfg)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s\n got %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestOnlyRegionKeepsOneRegionsRow(t *testing.T) {
	b := newFake(map[string]time.Time{"a": t0, "b": t0.Add(time.Second)})
	got, err := OnlyRegion("a", b).Read(ctx)
	if err != nil || len(got) != 1 || !got["a"].Equal(t0) {
		t.Fatalf("got %v, %v", got, err)
	}
}
