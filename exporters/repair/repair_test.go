package repair

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/exporters/verify"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/services/hlc"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var day1 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func at(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- day1
	return ch
}

// newStores returns two region stores whose clocks read one shared
// physical clock that ticks a millisecond at every reading, so that the
// writes' order is their order in the test.
func newStores(t *testing.T) (src, tgt *store.Memory) {
	t.Helper()
	var mu sync.Mutex
	wall := day1
	tick := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		wall = wall.Add(time.Millisecond)
		return wall
	}
	mk := func(region string) *store.Memory {
		clk, err := hlc.New(hlc.Config{Region: region, Now: tick})
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.NewMemory(store.Config{Region: region, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return mk("sh-a"), mk("sh-b")
}

func put(t *testing.T, s *store.Memory, key, doc string) {
	t.Helper()
	if _, err := s.Put(context.Background(), "rides", key, []byte(doc)); err != nil {
		t.Fatal(err)
	}
}

// pair builds two stores holding n rides, a verifier over them, and a
// repair job working from its mismatches.
func pair(t *testing.T, n int, target verify.Backend, mod func(*Config)) (src, tgt *store.Memory, v *verify.Verifier, j *Job, logs *bytes.Buffer) {
	t.Helper()
	src, tgt = newStores(t)
	for i := range n {
		doc := fmt.Sprintf(`{"id":%d}`, i)
		put(t, src, fmt.Sprintf("r%04d", i), doc)
		put(t, tgt, fmt.Sprintf("r%04d", i), doc)
	}
	srcB := verify.NewStore(src, src)
	var tgtB verify.Backend = verify.NewStore(tgt, tgt)
	if target != nil {
		tgtB = target
	}
	var err error
	v, err = verify.New(verify.Config{Source: srcB, Target: tgtB, SourceRegion: "sh-a", TargetRegion: "sh-b",
		Tables: []verify.Table{{Name: "rides"}}, ChunkSize: 50, LeafRows: 4, After: at})
	if err != nil {
		t.Fatal(err)
	}
	logs = &bytes.Buffer{}
	cfg := Config{SourceRegion: "sh-a", TargetRegion: "sh-b", Mismatches: v, Source: srcB, Target: tgtB.(Target),
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), Now: (&clock{t: day1}).now, After: at}
	if mod != nil {
		mod(&cfg)
	}
	if j, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return src, tgt, v, j, logs
}

func TestConfigValidation(t *testing.T) {
	b := verify.NewStore(nil, nil)
	v, err := verify.New(verify.Config{Source: b, Target: b, Tables: []verify.Table{{Name: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	ok := Config{Mismatches: v, Source: b, Target: b}
	tests := map[string]struct {
		mod  func(*Config)
		want string
	}{
		"Mismatches with both backends are valid.":          {func(*Config) {}, ""},
		"Nothing to repair is an error.":                    {func(c *Config) { c.Mismatches = nil }, "nothing to repair"},
		"Mismatches without a target is an error.":          {func(c *Config) { c.Target = nil }, "target to write"},
		"A failure rate above 1 is an error.":               {func(c *Config) { c.MaxFailureRate = 15 }, "(0, 1]"},
		"A negative failure rate is an error.":              {func(c *Config) { c.MaxFailureRate = -0.1 }, "(0, 1]"},
		"A negative min sample is an error.":                {func(c *Config) { c.MinSample = -1 }, "min sample"},
		"A negative interval is an error.":                  {func(c *Config) { c.Interval = -time.Minute }, "interval"},
		"The same region on both sides is an error.":        {func(c *Config) { c.SourceRegion, c.TargetRegion = "a", "a" }, "must differ"},
		"Tasks alone, without mismatches, are enough work.": {func(c *Config) { c.Mismatches, c.Tasks = nil, []Task{&StoreSync{}} }, ""},
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
	j, _ := New(ok)
	if s := j.State(); s.MaxFailureRate != 0.15 || s.MinSample != 20 || j.cfg.Interval != 5*time.Minute {
		t.Errorf("defaults: %+v, interval %v; want 15 %%, 20 attempts, 5m", s, j.cfg.Interval)
	}
}

func TestRepairsAreAppliedLoggedAndReverifyClean(t *testing.T) {
	src, tgt, v, j, logs := pair(t, 200, nil, nil)
	ctx := context.Background()
	if _, err := tgt.Delete(ctx, "rides", "r0010"); err != nil { // missing
		t.Fatal(err)
	}
	put(t, tgt, "r0020", `{"id":-20}`)  // differ
	put(t, tgt, "x-extra", `{"id":-1}`) // extra
	put(t, tgt, "r0030", `{"id":-30}`)  // differ, but heals before the repair
	rep, err := v.Verify(ctx)
	if err != nil || len(rep.Mismatches()) != 4 {
		t.Fatalf("verify: %v, %d mismatches", err, len(rep.Mismatches()))
	}
	put(t, tgt, "r0030", `{"id":30}`)
	put(t, src, "r0020", `{"id":20,"v":2}`) // the source moved on: the repair writes its current value

	c, err := j.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Repairs) != 3 || c.Healed != 1 {
		t.Fatalf("repairs %+v, healed %d; want 3 and 1", c.Repairs, c.Healed)
	}
	for _, r := range c.Repairs {
		if r.Err != "" {
			t.Errorf("repair of %s failed: %s", r.Key, r.Err)
		}
	}
	if got := len(v.OpenMismatches()); got != 0 {
		t.Errorf("%d mismatches still open after the repairs", got)
	}
	rep, err = v.Verify(ctx)
	if err != nil || len(rep.Mismatches()) != 0 {
		t.Fatalf("re-verify after the repairs: %v, %+v", err, rep.Mismatches())
	}
	// Every repair is logged with its before and after values.
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["msg"] == "repair applied" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d repair lines logged, want 3:\n%s", len(lines), logs)
	}
	byKey := map[string]map[string]any{}
	for _, l := range lines {
		byKey[l["key"].(string)] = l
	}
	if l := byKey["r0020"]; l["before"] != `["{\"id\":-20}"]` || l["after"] != `["{\"id\":20,\"v\":2}"]` ||
		l["statement"] != `PUT rides/r0020 {"id":20,"v":2}` || l["kind"] != "differ" {
		t.Errorf("the log of r0020: %v", l)
	}
	if l := byKey["x-extra"]; l["before"] != `["{\"id\":-1}"]` || l["after"] != "null" || l["statement"] != "DELETE rides/x-extra" {
		t.Errorf("the log of x-extra: %v", l)
	}
	if l := byKey["r0010"]; l["before"] != "null" || l["after"] != `["{\"id\":10}"]` {
		t.Errorf("the log of r0010: %v", l)
	}
}

// failingTarget is a store target whose every nth Apply fails.
type failingTarget struct {
	*verify.Store
	mu    sync.Mutex
	n     int
	every int // 0: never fail
}

func (f *failingTarget) Apply(ctx context.Context, t verify.Table, key string, have, want verify.Row) error {
	f.mu.Lock()
	f.n++
	fail := f.every > 0 && f.n%f.every == 0
	f.mu.Unlock()
	if fail {
		return errors.New("lock wait timeout exceeded")
	}
	return f.Store.Apply(ctx, t, key, have, want)
}

func (f *failingTarget) setEvery(n int) {
	f.mu.Lock()
	f.every = n
	f.mu.Unlock()
}

// corrupt makes n rows of the target differ and has the verifier find
// them.
func corrupt(t *testing.T, tgt *store.Memory, v *verify.Verifier, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		put(t, tgt, fmt.Sprintf("r%04d", i), `{"bad":true}`)
	}
	if _, err := v.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTheBreakerTripsAboveTheDaysFailureRateAndStaysOpenUntilResumed(t *testing.T) {
	ft := &failingTarget{every: 5} // 20 % fail
	clk := &clock{t: day1}
	_, tgt, v, j, _ := pair(t, 300, ft, func(c *Config) { c.Now = clk.now })
	ft.Store = verify.NewStore(tgt, tgt)
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(j, time.Second, nil))
	ctx := context.Background()

	corrupt(t, tgt, v, 0, 40)
	c, err := j.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// It trips at the first attempt past the minimum sample where the rate
	// is above 15 %: the 20th attempt, with 4 failures (20 %).
	if !c.Tripped || len(c.Repairs) != 20 {
		t.Fatalf("tripped %v after %d repairs; want tripped at the 20th", c.Tripped, len(c.Repairs))
	}
	s := j.State()
	if !s.Open || s.Attempts != 20 || s.Failures != 4 || !strings.Contains(s.Reason, "4 of 20") {
		t.Fatalf("state %+v", s)
	}
	if got := gather(t, reg, "carpool_repair_breaker_open"); got != 1 {
		t.Errorf("carpool_repair_breaker_open = %v, want 1", got)
	}
	// Open: the next cycles repair nothing, even once the failures stop.
	ft.setEvery(0)
	if c, _ := j.RunOnce(ctx); !c.Skipped || len(c.Repairs) != 0 {
		t.Fatalf("a cycle with the breaker open: %+v", c)
	}
	// A new day starts the rate afresh but does not close the breaker.
	clk.set(day1.Add(24 * time.Hour))
	if s := j.State(); !s.Open || s.Attempts != 0 || s.Rate != 0 || s.Day != "2026-11-26" {
		t.Fatalf("the next day: %+v", s)
	}
	if got := gather(t, reg, "carpool_repair_failure_ratio"); got != 0 {
		t.Errorf("the failure ratio on a new day = %v, want 0", got)
	}
	if c, _ := j.RunOnce(ctx); !c.Skipped {
		t.Fatal("the breaker closed by itself at the day's rollover")
	}
	// Resumed by hand: the rest is repaired.
	if s := j.Resume(); s.Open || s.Attempts != 0 {
		t.Fatalf("after Resume: %+v", s)
	}
	c, err = j.RunOnce(ctx)
	if err != nil || c.Skipped || c.Tripped {
		t.Fatalf("after Resume: %+v, %v", c, err)
	}
	if rep, err := v.Verify(ctx); err != nil || len(rep.Mismatches()) != 0 {
		t.Fatalf("re-verify: %v, %d mismatches", err, len(rep.Mismatches()))
	}
	if got := gather(t, reg, "carpool_repair_breaker_open"); got != 0 {
		t.Errorf("carpool_repair_breaker_open = %v after Resume, want 0", got)
	}
	if got := gather(t, reg, "carpool_repair_attempts_total", "outcome", "error"); got != 4 {
		t.Errorf("failed attempts = %v, want 4", got)
	}
}

func TestTheBreakerRespectsTheRateAndTheMinimumSample(t *testing.T) {
	tests := map[string]struct {
		every, rows, minSample int
		rate                   float64
		wantOpen               bool
	}{
		"10 % failures stay under 15 %.":                   {every: 10, rows: 60, minSample: 20, rate: 0.15},
		"Every repair failing, below the minimum sample.":  {every: 1, rows: 10, minSample: 20, rate: 0.15},
		"Every repair failing, at the minimum sample.":     {every: 1, rows: 20, minSample: 20, rate: 0.15, wantOpen: true},
		"20 % failures trip a 15 % breaker.":               {every: 5, rows: 40, minSample: 20, rate: 0.15, wantOpen: true},
		"20 % failures do not trip a 25 % breaker.":        {every: 5, rows: 60, minSample: 20, rate: 0.25},
		"Exactly the limit does not trip (it must pass).":  {every: 4, rows: 40, minSample: 4, rate: 0.25},
		"A minimum sample of one trips at once when over.": {every: 1, rows: 5, minSample: 1, rate: 0.5, wantOpen: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ft := &failingTarget{every: tc.every}
			_, tgt, v, j, _ := pair(t, 100, ft, func(c *Config) { c.MinSample, c.MaxFailureRate = tc.minSample, tc.rate })
			ft.Store = verify.NewStore(tgt, tgt)
			corrupt(t, tgt, v, 0, tc.rows)
			if _, err := j.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if s := j.State(); s.Open != tc.wantOpen {
				t.Fatalf("open %v, want %v (%+v)", s.Open, tc.wantOpen, s)
			}
		})
	}
}

func TestADayRolloverResetsTheRate(t *testing.T) {
	ft := &failingTarget{every: 1}
	clk := &clock{t: time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)}
	_, tgt, v, j, _ := pair(t, 100, ft, func(c *Config) { c.Now = clk.now })
	ft.Store = verify.NewStore(tgt, tgt)
	ctx := context.Background()
	// Late on day 1: 19 attempts, 3 failing — below the minimum sample.
	corrupt(t, tgt, v, 0, 16)
	ft.setEvery(0)
	j.RunOnce(ctx)
	ft.setEvery(1)
	corrupt(t, tgt, v, 50, 3)
	j.RunOnce(ctx)
	if s := j.State(); s.Attempts != 19 || s.Failures != 3 || s.Open {
		t.Fatalf("day 1: %+v", s)
	}
	// Past midnight the count starts again: one more failure would have
	// made 20 attempts at 20 % on day 1; on day 2 it is 1 attempt.
	clk.set(time.Date(2026, 11, 26, 0, 1, 0, 0, time.UTC))
	j.RunOnce(ctx)
	if s := j.State(); s.Open || s.Day != "2026-11-26" || s.Attempts != 3 || s.Failures != 3 {
		t.Fatalf("day 2: %+v", s)
	}
	// In another time zone the day ends elsewhere: 23:30 UTC is already
	// the next day in UTC+8.
	shanghai := time.FixedZone("UTC+8", 8*3600)
	j2, err := New(Config{Mismatches: v, Source: ft, Target: ft, Location: shanghai, Now: func() time.Time { return day1.Add(14*time.Hour + 30*time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if s := j2.State(); s.Day != "2026-11-26" {
		t.Errorf("the day in UTC+8 at 23:30 UTC is %s, want 2026-11-26", s.Day)
	}
}

func TestASyncTaskResumesFromTheLastRecordedOffset(t *testing.T) {
	src, tgt := newStores(t)
	ctx := context.Background()
	put(t, tgt, "k7", `{"v":"target's own, older"}`)
	for i := range 10 {
		put(t, src, fmt.Sprintf("k%d", i), fmt.Sprintf(`{"v":%d}`, i))
	}
	// Replication applied the first 4 events, then stopped.
	evs, err := src.Since(ctx, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if _, err := tgt.Apply(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	task, err := NewStoreSync(src, tgt)
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	j, err := New(Config{SourceRegion: "sh-a", TargetRegion: "sh-b", Tasks: []Task{task}, TaskBatch: 4,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c, err := j.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Repairs) != 6 || c.Repairs[0].Offset != 5 || c.Repairs[5].Offset != 10 {
		t.Fatalf("repairs %+v; want offsets 5..10", c.Repairs)
	}
	if off, _ := task.Offset(ctx); off != 10 {
		t.Errorf("offset after resuming: %d, want 10", off)
	}
	if r := c.Repairs[3]; r.Key != "k7" || r.Before == nil || *r.Before[0] != `{"v":"target's own, older"}` || *r.After[0] != `{"v":7}` {
		t.Errorf("the repair of k7: %+v", r)
	}
	for i := range 10 {
		rec, ok, _ := tgt.Get(ctx, "rides", fmt.Sprintf("k%d", i))
		if !ok || string(rec.Value) != fmt.Sprintf(`{"v":%d}`, i) {
			t.Errorf("k%d in the target: %s", i, rec.Value)
		}
	}
	if !strings.Contains(logs.String(), `"task":"replication sh-a>sh-b"`) || !strings.Contains(logs.String(), `"offset":10`) {
		t.Errorf("the task's repairs are not logged with task and offset:\n%s", logs)
	}
	// Caught up: the next cycle applies nothing.
	if c, _ := j.RunOnce(ctx); len(c.Repairs) != 0 {
		t.Errorf("a second cycle re-applied %d changes", len(c.Repairs))
	}
	// A truncated outbox is a failed attempt, not a crash.
	src.Truncate(10)
	tgt2, err := store.NewMemory(store.Config{Region: "bj-a"}) // never written: the outbox read fails first
	if err != nil {
		t.Fatal(err)
	}
	task2, _ := NewStoreSync(src, tgt2)
	j2, _ := New(Config{SourceRegion: "sh-a", TargetRegion: "bj-a", Tasks: []Task{task2}})
	if _, err := j2.RunOnce(ctx); !errors.Is(err, store.ErrTruncated) {
		t.Errorf("resuming past a truncated outbox: %v, want ErrTruncated", err)
	}
	if s := j2.State(); s.Failures != 1 {
		t.Errorf("the failed resume counted %d failures, want 1", s.Failures)
	}
}

func TestTheAdminEndpointResumesWithTheBearerToken(t *testing.T) {
	ft := &failingTarget{every: 1}
	_, tgt, v, j, _ := pair(t, 50, ft, func(c *Config) { c.MinSample, c.AdminToken = 1, "s3cret" })
	ft.Store = verify.NewStore(tgt, tgt)
	corrupt(t, tgt, v, 0, 2)
	j.RunOnce(context.Background())
	if !j.State().Open {
		t.Fatal("the breaker did not trip")
	}
	srv := httptest.NewServer(j.Handler())
	defer srv.Close()
	do := func(method, path, token string) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	f := func(method, path, token string, want int) {
		t.Helper()
		if got := do(method, path, token); got != want {
			t.Errorf("%s %s with token %q: %d, want %d", method, path, token, got, want)
		}
	}
	f("POST", ResumePath, "", http.StatusUnauthorized)
	f("POST", ResumePath, "wrong", http.StatusUnauthorized)
	f("GET", ResumePath, "s3cret", http.StatusMethodNotAllowed)
	f("GET", StatusPath, "s3cret", http.StatusOK)
	if !j.State().Open {
		t.Fatal("a refused call closed the breaker")
	}
	s, err := ResumeRemote(context.Background(), nil, srv.URL, "s3cret")
	if err != nil || s.Open {
		t.Fatalf("ResumeRemote: %+v, %v", s, err)
	}
	if j.State().Open {
		t.Error("the breaker is still open after the resume call")
	}
	if _, err := ResumeRemote(context.Background(), nil, srv.URL, "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("ResumeRemote with a wrong token: %v", err)
	}
	// Without a token configured the API is off.
	j2, _ := New(Config{Mismatches: v, Source: ft, Target: ft})
	rec := httptest.NewRecorder()
	j2.Handler().ServeHTTP(rec, httptest.NewRequest("POST", ResumePath, nil))
	if rec.Code != http.StatusForbidden {
		t.Errorf("no token configured: %d, want 403", rec.Code)
	}
}

func TestRunRepairsOnTheTimerAndStopsOnCancel(t *testing.T) {
	_, tgt, v, _, _ := pair(t, 50, nil, nil)
	corrupt(t, tgt, v, 0, 3)
	ticks := make(chan time.Time)
	j, err := New(Config{Mismatches: v, Source: v.Source(), Target: v.Target().(Target),
		After: func(time.Duration) <-chan time.Time { return ticks }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	ticks <- time.Now() // the first cycle
	ticks <- time.Now() // the second: the first has finished
	if got := len(v.OpenMismatches()); got != 0 {
		t.Errorf("%d mismatches open after a cycle", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop on cancel")
	}
}

func TestMetricsPassPromtool(t *testing.T) {
	promtool := realserver.Binary(t, "promtool")
	ft := &failingTarget{every: 2}
	_, tgt, v, j, _ := pair(t, 50, ft, func(c *Config) { c.MinSample = 2 })
	ft.Store = verify.NewStore(tgt, tgt)
	corrupt(t, tgt, v, 0, 4)
	j.RunOnce(context.Background())
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(j, time.Second, nil))
	rec := httptest.NewRecorder()
	exporters.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.Bytes()
	for _, want := range []string{
		`carpool_repair_breaker_open{source_region="sh-a",target_region="sh-b"} 1`,
		`carpool_repair_attempts_total{outcome="error",source_region="sh-a",target_region="sh-b"} 1`,
		`carpool_repair_failure_ratio{source_region="sh-a",target_region="sh-b"} 0.5`,
		`carpool_repair_last_run_timestamp_seconds{source_region="sh-a",target_region="sh-b"}`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("the scrape lacks %s:\n%s", want, body)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, body)
	}
}

func TestFlags(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--source-dsn", "mysql://root@127.0.0.1:1/db", "--target-dsn", "mysql://root@127.0.0.1:2/db", "--table", "rides"}
	tests := map[string]struct {
		args    []string
		want    string
		withJob bool
	}{
		"Repair is off by default.":                         {nil, "", false},
		"Enabled with a token file builds the job.":         {[]string{"--repair-enabled", "--repair-admin-token-file", token}, "", true},
		"Enabled without a token file is an error.":         {[]string{"--repair-enabled"}, "--repair-admin-token-file", false},
		"An empty token file is an error.":                  {[]string{"--repair-enabled", "--repair-admin-token-file", empty}, "empty", false},
		"A missing token file is an error.":                 {[]string{"--repair-enabled", "--repair-admin-token-file", "/nonexistent"}, "--repair-admin-token-file", false},
		"A failure rate given in percent is an error.":      {[]string{"--repair-max-failure-rate", "15"}, "--repair-max-failure-rate", false},
		"A zero repair interval is an error.":               {[]string{"--repair-interval", "0s"}, "--repair-interval", false},
		"A zero min sample is an error.":                    {[]string{"--repair-min-sample", "0"}, "--repair-min-sample", false},
		"The verifier's flags are still checked.":           {[]string{"--chunk-size", "1"}, "--chunk-size", false},
		"A repair interval and a failure rate can be given": {[]string{"--repair-interval", "1m", "--repair-max-failure-rate", "0.05"}, "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var f Flags
			fs := pflag.NewFlagSet("verify", pflag.ContinueOnError)
			f.Register(fs)
			if err := fs.Parse(append(append([]string{}, base...), tc.args...)); err != nil {
				t.Fatal(err)
			}
			e, err := f.Build(nil)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer e.Verify.Close()
			if (e.Job != nil) != tc.withJob || (e.Admin != nil) != tc.withJob {
				t.Errorf("job %v, admin %v; want both %v", e.Job != nil, e.Admin != nil, tc.withJob)
			}
			if tc.withJob && len(e.Collectors) != 2 {
				t.Errorf("%d collectors, want the verifier's and the job's", len(e.Collectors))
			}
		})
	}
}

// gather returns the value of the one series of name whose labels include
// the given pairs.
func gather(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var vals []float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			if m.Gauge != nil {
				vals = append(vals, m.GetGauge().GetValue())
			} else if m.Counter != nil {
				vals = append(vals, m.GetCounter().GetValue())
			}
		}
	}
	if len(vals) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labels, len(vals))
	}
	return vals[0]
}

func TestRepairsOnMariaDB(t *testing.T) {
	t.Parallel()
	setup := "CREATE DATABASE carpool; CREATE TABLE carpool.rides (id INT PRIMARY KEY, driver VARCHAR(32), fare DECIMAL(8,2)); " +
		"INSERT INTO carpool.rides SELECT seq, CONCAT('d', seq), seq FROM carpool.seq_1_to_500"
	src := realserver.StartMariaDB(t, realserver.MariaDBOptions{})
	tgt := realserver.StartMariaDB(t, realserver.MariaDBOptions{})
	src.Query(t, setup)
	tgt.Query(t, setup)
	tgt.Query(t, "DELETE FROM carpool.rides WHERE id = 7; UPDATE carpool.rides SET driver = NULL WHERE id = 8; "+
		"INSERT INTO carpool.rides VALUES (900, 'ghost', 1)")
	open := func(m *realserver.MariaDB) *verify.SQL {
		s, err := verify.OpenSQL(verify.SQLConfig{DSN: "mysql://root@" + m.Addr + "/carpool"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	source, target := open(src), open(tgt)
	v, err := verify.New(verify.Config{Source: source, Target: target, SourceRegion: "sh-a", TargetRegion: "sh-b",
		Tables: []verify.Table{{Name: "rides"}}, ChunkSize: 100, After: at})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if rep, err := v.Verify(ctx); err != nil || len(rep.Mismatches()) != 3 {
		t.Fatalf("verify: %v, %+v", err, rep.Mismatches())
	}
	logs := &bytes.Buffer{}
	j, err := New(Config{SourceRegion: "sh-a", TargetRegion: "sh-b", Mismatches: v, Source: source, Target: target,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c, err := j.RunOnce(ctx)
	if err != nil || len(c.Repairs) != 3 {
		t.Fatalf("repairs %+v, %v", c.Repairs, err)
	}
	for _, r := range c.Repairs {
		if r.Err != "" {
			t.Errorf("%s: %s", r.Key, r.Err)
		}
	}
	if rep, err := v.Verify(ctx); err != nil || len(rep.Mismatches()) != 0 {
		t.Fatalf("re-verify: %v, %+v", err, rep.Mismatches())
	}
	for _, want := range []string{
		`"key":"8","before":"[\"8\",null,\"8.00\"]","after":"[\"8\",\"d8\",\"8.00\"]","kind":"differ","statement":"UPDATE ` + "`rides`" + ` SET ` + "`driver`" + ` = 'd8' WHERE ` + "`id`" + ` = 8"`,
		`"statement":"DELETE FROM ` + "`rides`" + ` WHERE ` + "`id`" + ` = 900"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}
}
