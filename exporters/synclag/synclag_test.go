package synclag

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

var expositions = map[string]Exposition{"VictoriaMetrics/metrics": ExposeVM, "client_golang": ExposeClientGolang}

func TestReaderReportsNowMinusTheAppliedStampPerPair(t *testing.T) {
	for name, exp := range expositions {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			// Region b holds a's stamp from 1.5 s ago, c's from 4 s ago and
			// its own (written) stamp; region c holds a's from 0.25 s ago.
			b := newFake(map[string]time.Time{"a": t0.Add(-1500 * time.Millisecond), "c": t0.Add(-4 * time.Second), "b": t0})
			c := newFake(map[string]time.Time{"a": t0.Add(-250 * time.Millisecond)})
			r, err := New(Config{Targets: []Target{{Region: "b", Applied: b}, {Region: "c", Applied: c}}, Now: clk.Now, Exposition: exp})
			if err != nil {
				t.Fatal(err)
			}
			s := serve(t, r)
			sc := s.scrape(t)
			for _, tc := range []struct {
				src, dst string
				lag      float64
			}{{"a", "b", 1.5}, {"c", "b", 4}, {"a", "c", 0.25}} {
				if got, ok := sc.lag(tc.src, tc.dst); !ok || !near(got, tc.lag, 1e-9) {
					t.Errorf("lag %s→%s = %v (present %v), want %v", tc.src, tc.dst, got, ok, tc.lag)
				}
				want := float64(t0.UnixMicro())/1e6 - tc.lag
				if got, ok := sc.get("carpool_sync_heartbeat_applied_timestamp_seconds", "source_region", tc.src, "target_region", tc.dst); !ok || !near(got, want, 1e-6) {
					t.Errorf("applied %s→%s = %v, want %v", tc.src, tc.dst, got, want)
				}
			}
			if n := sc.count("carpool_sync_lag_seconds"); n != 3 {
				t.Errorf("%d lag series, want 3 (a region's own row is no pair)", n)
			}
			if got, ok := sc.get("carpool_sync_heartbeat_written_timestamp_seconds", "region", "b"); !ok || got != float64(t0.Unix()) {
				t.Errorf("written{b} = %v (present %v), want %v", got, ok, t0.Unix())
			}
			if sc.up() != 1 {
				t.Errorf("up = %v", sc.up())
			}
			promtoolCheck(t, s.text(t))
		})
	}
}

func TestLagKeepsGrowingWhileNoNewHeartbeatIsApplied(t *testing.T) {
	for name, exp := range expositions {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			b := newFake(map[string]time.Time{"a": t0})
			r, err := New(Config{Targets: []Target{{Region: "b", Applied: b}}, Now: clk.Now, Exposition: exp})
			if err != nil {
				t.Fatal(err)
			}
			s := serve(t, r)
			for want := 0.0; want <= 30; want += 7.5 {
				if got, _ := s.scrape(t).lag("a", "b"); got != want {
					t.Fatalf("lag = %v, want %v", got, want)
				}
				clk.Add(7500 * time.Millisecond)
			}
			// Replication resumes: the newest stamp lands and lag falls back.
			_ = b.Write(ctx, "a", clk.Now().Add(-200*time.Millisecond))
			if got, _ := s.scrape(t).lag("a", "b"); !near(got, 0.2, 1e-9) {
				t.Fatalf("lag after catch-up = %v, want 0.2", got)
			}
		})
	}
}

func TestAnExpectedSourceWithoutAHeartbeatReportsTheLagSinceStart(t *testing.T) {
	clk := newClock()
	b := newFake(nil)
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: b, Sources: []string{"a"}}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r)
	clk.Add(12 * time.Second)
	sc := s.scrape(t)
	if got, ok := sc.lag("a", "b"); !ok || got != 12 {
		t.Fatalf("lag of a never-synced pair = %v (present %v), want 12", got, ok)
	}
	if _, ok := sc.get("carpool_sync_heartbeat_applied_timestamp_seconds", "source_region", "a", "target_region", "b"); ok {
		t.Fatal("an applied timestamp is exposed for a pair with no heartbeat")
	}
	promtoolCheck(t, s.text(t))
}

func TestASourceClockAheadOfTheReaderGivesLagZeroNotNegative(t *testing.T) {
	clk := newClock()
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: newFake(map[string]time.Time{"a": t0.Add(3 * time.Second)})}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := serve(t, r).scrape(t).lag("a", "b"); got != 0 {
		t.Fatalf("lag = %v, want 0", got)
	}
}

func TestAFailingBackendShowsAsDownKeepsTheOthersAndRecovers(t *testing.T) {
	for name, exp := range expositions {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			b := newFake(map[string]time.Time{"a": t0})
			c := newFake(map[string]time.Time{"a": t0})
			r, err := New(Config{Targets: []Target{{Region: "b", Applied: b}, {Region: "c", Applied: c}}, Now: clk.Now, Exposition: exp})
			if err != nil {
				t.Fatal(err)
			}
			s := serve(t, r)
			b.fail(errors.New("dial tcp 127.0.0.1:3306: connection refused"))
			sc := s.scrape(t)
			if sc.up() != 0 {
				t.Fatalf("up = %v with b's backend down", sc.up())
			}
			if v, _ := sc.get("carpool_exporter_scrape_errors_total", "exporter", Name); v != 1 {
				t.Fatalf("scrape errors = %v, want 1", v)
			}
			if _, ok := sc.lag("a", "b"); ok {
				t.Fatal("a lag is reported for the target whose backend is down")
			}
			if _, ok := sc.lag("a", "c"); !ok {
				t.Fatal("the healthy target's lag is missing")
			}
			promtoolCheck(t, s.text(t))
			b.fail(nil)
			sc = s.scrape(t)
			if _, ok := sc.lag("a", "b"); !ok || sc.up() != 1 {
				t.Fatalf("after recovery: up %v, lag a→b present %v", sc.up(), ok)
			}
		})
	}
}

func TestTheSetReadsTheBackendsItselfWhenServedWithoutTheCollector(t *testing.T) {
	clk := newClock()
	b := newFake(map[string]time.Time{"a": t0})
	var logs bytes.Buffer
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: b}}, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	clk.Add(2 * time.Second)
	r.Set().WritePrometheus(&out)
	if got, _ := parse(t, out.String()).lag("a", "b"); got != 2 {
		t.Fatalf("lag from the set alone = %v, want 2\n%s", got, out.String())
	}
	_ = b.Write(ctx, "a", clk.Now())
	clk.Add(time.Second)
	out.Reset()
	r.Set().WritePrometheus(&out)
	if got, _ := parse(t, out.String()).lag("a", "b"); got != 1 {
		t.Fatalf("lag = %v, want 1 (fresh read)", got)
	}
	b.fail(errors.New("connection refused"))
	out.Reset()
	r.Set().WritePrometheus(&out)
	if !strings.Contains(logs.String(), "connection refused") {
		t.Fatalf("the set's own failed read was not logged: %q", logs.String())
	}
}

func TestAPendingReadingIsRenderedOnceAndOnlyWhileFresh(t *testing.T) {
	clk := newClock()
	b := newFake(map[string]time.Time{"a": t0})
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: b}}, Now: clk.Now, SnapshotMaxAge: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	render := func() float64 {
		t.Helper()
		var out bytes.Buffer
		r.Set().WritePrometheus(&out)
		v, _ := parse(t, out.String()).lag("a", "b")
		return v
	}
	// A collection reads a → t0; then the backend moves on.
	if err := r.Scrape(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_ = b.Write(ctx, "a", t0.Add(10*time.Second))
	clk.Add(11 * time.Second / 10) // older than SnapshotMaxAge: read again
	if got := render(); got != 0 { // the stale reading would give 1.1
		t.Fatalf("stale reading rendered: lag %v, want 0 (a fresh read of the stamp at +10 s)", got)
	}
	clk.Add(10 * time.Second)
	if err := r.Scrape(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_ = b.Write(ctx, "a", clk.Now())
	// Fresh pending reading: rendered, with the lag at render time.
	clk.Add(500 * time.Millisecond)
	if got := render(); !near(got, 1.6, 1e-9) {
		t.Fatalf("lag from the pending reading = %v, want 1.6", got)
	}
	// Rendered once: the next render reads again (stamp at now-0.5 s).
	if got := render(); !near(got, 0.5, 1e-9) {
		t.Fatalf("lag after the pending reading was used = %v, want 0.5", got)
	}
}

func TestLabelValuesAreEscapedInTheTextFormat(t *testing.T) {
	clk := newClock()
	odd := "we\"ird\\re\ngion"
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: newFake(map[string]time.Time{odd: t0})}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r)
	if _, ok := s.scrape(t).lag(odd, "b"); !ok {
		t.Fatalf("the odd region's series is missing:\n%s", s.text(t))
	}
}

func TestConfigValidation(t *testing.T) {
	b := newFake(nil)
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"A config without targets or written readers should fail.": {Config{}, "no targets"},
		"A target without a region should fail.":                   {Config{Targets: []Target{{Applied: b}}}, "region is required"},
		"A target without an applied reader should fail.":          {Config{Targets: []Target{{Region: "b"}}}, "applied reader is required"},
		"A target listed twice should fail.":                       {Config{Targets: []Target{{Region: "b", Applied: b}, {Region: "b", Applied: b}}}, "listed twice"},
		"A target expecting itself as a source should fail.":       {Config{Targets: []Target{{Region: "b", Applied: b, Sources: []string{"b"}}}}, "must be another"},
		"A nil written reader should fail.":                        {Config{Written: []HeartbeatReader{nil}}, "written[0] is nil"},
		"An unknown exposition should fail.":                       {Config{Targets: []Target{{Region: "b", Applied: b}}, Exposition: 7}, "exposition"},
		"A negative snapshot age should fail.":                     {Config{Targets: []Target{{Region: "b", Applied: b}}, SnapshotMaxAge: -1}, "must not be negative"},
		"A valid config should pass.":                              {Config{Targets: []Target{{Region: "b", Applied: b, Sources: []string{"a"}}}}, ""},
	} {
		_, err := New(tc.cfg)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s\n got %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestPairsFollowSourcesThatAppearAndDisappear(t *testing.T) {
	clk := newClock()
	b := newFake(map[string]time.Time{"c": t0, "a": t0})
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: b, Sources: []string{"x", "a"}}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r)
	sources := func() string {
		t.Helper()
		var got []string
		for _, m := range s.scrape(t)["carpool_sync_lag_seconds"].GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "source_region" {
					got = append(got, lp.GetValue())
				}
			}
		}
		return strings.Join(got, " ")
	}
	f := func(want string) {
		t.Helper()
		for range 2 { // the second scrape reuses the first one's order
			if got := sources(); got != want {
				t.Fatalf("sources %q, want %q", got, want)
			}
		}
	}
	f("a c x")
	_ = b.Write(ctx, "d", t0) // a new region
	f("a c d x")
	_ = b.Write(ctx, "x", t0) // the expected source arrives: same set
	f("a c d x")
	b.mu.Lock()
	delete(b.rows, "c") // a region goes, another comes: same count
	b.rows["e"] = t0
	b.mu.Unlock()
	f("a d e x")
	_ = b.Write(ctx, "b", t0) // the target's own row is no pair
	f("a d e x")
}
