package loadgen_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/loadgen/scenario"
)

// stallServer answers at once, except that every request arriving within
// [from, to) waits until to.
type stallServer struct {
	*httptest.Server
	mu       sync.Mutex
	from, to time.Time
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	arrivals []time.Time
	delay    time.Duration
}

func newStallServer(t *testing.T) *stallServer {
	s := &stallServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			m := s.maxSeen.Load()
			if n <= m || s.maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		s.mu.Lock()
		s.arrivals = append(s.arrivals, now)
		from, to, delay := s.from, s.to, s.delay
		s.mu.Unlock()
		wait := delay
		if !now.Before(from) && now.Before(to) {
			wait = to.Sub(now)
		}
		if wait > 0 {
			select {
			case <-time.After(wait):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *stallServer) stall(from, to time.Time) {
	s.mu.Lock()
	s.from, s.to = from, to
	s.mu.Unlock()
}

func httpScenario(t *testing.T, url string, conns int) []loadgen.Weighted {
	t.Helper()
	ws, closeFn, err := scenario.Build(loadgen.Mix{{Name: "http", Weight: 1}},
		scenario.Options{Target: url, HTTP: scenario.NewHTTPClient(conns), RunID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeFn() })
	return ws
}

// closedLoop is the measurement that coordinated omission spoils: workers
// that each send, wait for the answer, then send the next at the pace of
// rate/workers (at once when late), timing each request from its actual
// send.
func closedLoop(ctx context.Context, url string, rate float64, workers int, d time.Duration) *loadgen.Histogram {
	h := loadgen.NewHistogram()
	var mu sync.Mutex
	var wg sync.WaitGroup
	interval := time.Duration(float64(workers) / rate * float64(time.Second))
	deadline := time.Now().Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now()
			for i := 0; i < int(d/interval)+1 && time.Now().Before(deadline); i++ {
				if w := time.Until(next); w > 0 {
					time.Sleep(w)
				}
				sent := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				mu.Lock()
				h.Record(time.Since(sent))
				mu.Unlock()
				next = sent.Add(interval)
			}
		}()
	}
	wg.Wait()
	return h
}

// TestOpenModelMeasuresAStallThatAClosedLoopHides is the coordinated
// omission proof: a server that blocks every request for the middle second
// of a 3 s run at 200/s. The open model keeps sending on schedule and times
// each request from its intended start, so a third of its requests carry
// part of the stall and its p99 is close to the stall. A closed loop at the
// same rate, running at the same time against the same server, sends one
// request per worker into the stall and waits: its p99 stays at the normal
// latency, and only its max shows the stall.
func TestOpenModelMeasuresAStallThatAClosedLoopHides(t *testing.T) {
	const rate, stall = 200.0, time.Second
	srv := newStallServer(t)
	ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(rate, 3*time.Second),
		Scenarios: httpScenario(t, srv.URL, 400), Workers: 50, MaxWorkers: 400})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv.stall(start.Add(time.Second), start.Add(time.Second+stall))
	var closed *loadgen.Histogram
	done := make(chan struct{})
	go func() {
		defer close(done)
		closed = closedLoop(context.Background(), srv.URL, rate, 2, 3*time.Second)
	}()
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	s := ex.Summary()
	if s.Dropped != 0 || s.Errors != 0 || s.Iterations != 600 {
		t.Fatalf("open model: %d iterations, %d dropped, %d errors (%v); want 600, 0, 0", s.Iterations, s.Dropped, s.Errors, s.ErrorsByKind)
	}
	openP99 := s.Histogram.Quantile(99)
	if openP99 < stall*85/100 {
		t.Errorf("open model p99 = %v; it must include the %v stall (≥ %v)", openP99, stall, stall*85/100)
	}
	if s.Histogram.Max() < stall*9/10 {
		t.Errorf("open model max = %v; want about %v", s.Histogram.Max(), stall)
	}
	// A third of the requests fell into the stall: p50 stays low, p90 high.
	if s.Histogram.Quantile(50) > stall/10 || s.Histogram.Quantile(90) < stall/2 {
		t.Errorf("open model p50 %v, p90 %v; want p50 below %v and p90 above %v", s.Histogram.Quantile(50),
			s.Histogram.Quantile(90), stall/10, stall/2)
	}
	if closed.Max() < stall*8/10 {
		t.Fatalf("closed loop max = %v: its requests did not meet the stall, so the comparison proves nothing", closed.Max())
	}
	if p99 := closed.Quantile(99); p99 > stall/5 {
		t.Errorf("closed loop p99 = %v; coordinated omission should hide the stall (want < %v)", p99, stall/5)
	}
	t.Logf("open model: p50 %v p90 %v p99 %v max %v over %d requests; closed loop: p50 %v p99 %v max %v over %d requests",
		s.Histogram.Quantile(50), s.Histogram.Quantile(90), openP99, s.Histogram.Max(), s.Requests,
		closed.Quantile(50), closed.Quantile(99), closed.Max(), closed.Count())
}

// TestExhaustedWorkersDropIterations: with 5 workers for a server that
// takes 200 ms, 100 iterations over 1 s cannot all start; those that find no
// free worker are dropped and counted when MaxStartDelay is off (k6's
// behaviour), and the server never sees more than 5 requests at once.
func TestExhaustedWorkersDropIterations(t *testing.T) {
	srv := newStallServer(t)
	srv.delay = 200 * time.Millisecond
	m := loadgen.NewMetrics()
	ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(100, time.Second), Scenarios: httpScenario(t, srv.URL, 5),
		Workers: 2, MaxWorkers: 5, MaxStartDelay: -1, Metrics: m, RunID: "drop"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := ex.Summary()
	if s.Scheduled != 100 || s.Iterations+s.Dropped != s.Scheduled {
		t.Fatalf("scheduled %d, started %d, dropped %d; want 100 = started + dropped", s.Scheduled, s.Iterations, s.Dropped)
	}
	// 5 workers × (1 s / 200 ms) + the 5 in flight at the end.
	if s.Iterations > 35 || s.Dropped < 65 {
		t.Errorf("started %d, dropped %d; 5 workers of 200 ms fit at most ~30 of 100 iterations in 1 s", s.Iterations, s.Dropped)
	}
	if got := srv.maxSeen.Load(); got > 5 {
		t.Errorf("the server saw %d requests at once; the workers are bounded to 5", got)
	}
	if s.Errors != 0 {
		t.Errorf("errors %v", s.ErrorsByKind)
	}
	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	for name, want := range map[string]int64{
		`carpool_loadgen_dropped_iterations_total{run="drop",scenario="http"}`:   s.Dropped,
		`carpool_loadgen_iterations_total{run="drop",scenario="http"}`:           s.Iterations,
		`carpool_loadgen_scheduled_iterations_total{run="drop",scenario="http"}`: 100,
	} {
		if got := metricValue(t, buf.String(), name); got != float64(want) {
			t.Errorf("%s = %v, want %d", name, got, want)
		}
	}
}

// startLag wraps a scenario and keeps how late each iteration started.
type startLag struct {
	loadgen.Scenario
	mu   sync.Mutex
	lags []time.Duration
}

func (l *startLag) Run(ctx context.Context, it *loadgen.Iteration) error {
	d := time.Since(it.Intended)
	l.mu.Lock()
	l.lags = append(l.lags, d)
	l.mu.Unlock()
	return l.Scenario.Run(ctx, it)
}

// Iterations that find every worker busy wait, oldest first, up to
// MaxStartDelay for one, and are dropped past it: 5 workers of 200 ms at
// 100/s start about 25 a second whatever the delay, the waiting ones start
// late and their latency says so, none starts later than the delay, and the
// schedule itself never waits.
func TestBusyWorkersQueueIterationsUpToMaxStartDelay(t *testing.T) {
	srv := newStallServer(t)
	srv.delay = 200 * time.Millisecond
	const delay = 300 * time.Millisecond
	lag := &startLag{Scenario: httpScenario(t, srv.URL, 5)[0].Scenario}
	ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(100, time.Second),
		Scenarios: []loadgen.Weighted{{Scenario: lag, Weight: 1}}, Workers: 5, MaxWorkers: 5, MaxStartDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := ex.Summary()
	if s.Scheduled != 100 || s.Iterations+s.Dropped != s.Scheduled || s.Iterations != int64(len(lag.lags)) {
		t.Fatalf("scheduled %d, started %d (%d seen), dropped %d; want 100 = started + dropped", s.Scheduled, s.Iterations, len(lag.lags), s.Dropped)
	}
	if s.Dropped < 55 || s.Iterations > 45 {
		t.Errorf("started %d, dropped %d; 5 workers of 200 ms fit ~25 iterations in 1 s, ~40 with the queue's tail", s.Iterations, s.Dropped)
	}
	if got := srv.maxSeen.Load(); got > 5 {
		t.Errorf("the server saw %d requests at once; the workers are bounded to 5", got)
	}
	var waited int
	for _, d := range lag.lags {
		// The check is made just before the start: allow scheduling slack.
		if d > delay+100*time.Millisecond {
			t.Errorf("an iteration started %v after its time; the most is %v", d, delay)
		}
		if d > 50*time.Millisecond {
			waited++
		}
	}
	if waited < 10 {
		t.Errorf("only %d iterations waited for a worker; with every worker busy most should have", waited)
	}
	// Their wait is in their latency: the median request took its 200 ms
	// plus a wait.
	if p50 := s.Histogram.Quantile(50); p50 < 250*time.Millisecond {
		t.Errorf("p50 %v; queued iterations' latency must include their wait for a worker", p50)
	}
}

// A short stall of the target with few workers: with the default
// MaxStartDelay the iterations that arrive during it wait and none is
// dropped; with it off they are dropped.
func TestMaxStartDelayAbsorbsABurst(t *testing.T) {
	for _, tc := range []struct {
		delay   time.Duration
		dropped bool
	}{{0, false}, {-1, true}} {
		srv := newStallServer(t)
		ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(200, 600*time.Millisecond), Scenarios: httpScenario(t, srv.URL, 4),
			Workers: 4, MaxWorkers: 4, MaxStartDelay: tc.delay})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		srv.stall(now.Add(200*time.Millisecond), now.Add(240*time.Millisecond))
		if err := ex.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := ex.Summary()
		if got := s.Dropped > 0; got != tc.dropped {
			t.Errorf("MaxStartDelay %v: %d of %d dropped; want dropped: %v", tc.delay, s.Dropped, s.Scheduled, tc.dropped)
		}
		if s.Iterations+s.Dropped != s.Scheduled {
			t.Errorf("MaxStartDelay %v: started %d + dropped %d != scheduled %d", tc.delay, s.Iterations, s.Dropped, s.Scheduled)
		}
	}
}

func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no series %s in\n%s", series, text)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRampingScheduleHitsItsTargets ramps 0→200/s over 1 s, holds 200/s
// for 1 s and ramps down to 0 over 1 s, and counts the requests the server
// received in each stage. Each count must be the schedule's integral over
// the stage, within the iterations the schedule puts in a 50 ms window
// around each stage boundary (the timing jitter allowed).
func TestRampingScheduleHitsItsTargets(t *testing.T) {
	srv := newStallServer(t)
	sched := loadgen.Schedule{StartRate: 0, Stages: []loadgen.Stage{
		{Target: 200, Duration: time.Second}, {Target: 200, Duration: time.Second}, {Target: 0, Duration: time.Second}}}
	ex, err := loadgen.New(loadgen.Config{Schedule: sched, Scenarios: httpScenario(t, srv.URL, 100), Workers: 20, MaxWorkers: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := ex.Summary()
	if s.Iterations != sched.Total() || s.Dropped != 0 || s.Errors != 0 {
		t.Fatalf("started %d of %d, dropped %d, errors %d", s.Iterations, sched.Total(), s.Dropped, s.Errors)
	}
	const jitter = 50 * time.Millisecond
	srv.mu.Lock()
	arrivals := append([]time.Time(nil), srv.arrivals...)
	srv.mu.Unlock()
	var from time.Duration
	for i, st := range sched.Stages {
		to := from + st.Duration
		got := 0
		for _, a := range arrivals {
			off := a.Sub(s.StartedAt)
			if off >= from && (off < to || (i == len(sched.Stages)-1 && off < to+jitter)) {
				got++
			}
		}
		want := sched.CountBy(to) - sched.CountBy(from)
		tol := sched.CountBy(from+jitter) - sched.CountBy(from-jitter) + sched.CountBy(to+jitter) - sched.CountBy(to-jitter) + 1
		if float64(got) < want-tol || float64(got) > want+tol {
			t.Errorf("stage %d (%v→%v/s over %v): the server got %d requests, the schedule says %.0f ± %.0f", i+1,
				sched.RateAt(from), st.Target, st.Duration, got, want, tol)
		}
		from = to
	}
	if d := s.DurationSeconds; d < 3 || d > 3.2 {
		t.Errorf("duration %.2fs, want the schedule's 3s", d)
	}
	if s.TargetRate != 400.0/3 || s.AchievedRate < 0.99*s.TargetRate {
		t.Errorf("target %.2f/s achieved %.2f/s; want 133.33 and at least 99%% of it", s.TargetRate, s.AchievedRate)
	}
}

// TestCancelStopsTheScheduleAndInterruptsIterations: cancelling the run's
// context stops scheduling at once, cancels the running iterations (counted
// as interrupted, not as errors), and Run returns promptly.
func TestCancelStopsTheScheduleAndInterruptsIterations(t *testing.T) {
	srv := newStallServer(t)
	srv.delay = time.Hour // every request hangs until cancelled
	ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(50, time.Minute), Scenarios: httpScenario(t, srv.URL, 100),
		Workers: 10, MaxWorkers: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := ex.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("Run took %v after a 300ms cancel", took)
	}
	s := ex.Summary()
	if s.Iterations < 5 || s.Interrupted != s.Iterations || s.Requests != 0 || s.Errors != 0 {
		t.Errorf("started %d, interrupted %d, requests %d, errors %d; want every started iteration interrupted and none recorded",
			s.Iterations, s.Interrupted, s.Requests, s.Errors)
	}
	if s.DurationSeconds > 1 {
		t.Errorf("duration %.2fs; the run was stopped at 0.3s", s.DurationSeconds)
	}
}

// TestGracefulStopBoundsTheEnd: iterations still running GracefulStop after
// the schedule's end are interrupted.
func TestGracefulStopBoundsTheEnd(t *testing.T) {
	srv := newStallServer(t)
	srv.delay = 2 * time.Second
	ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(20, 500*time.Millisecond), Scenarios: httpScenario(t, srv.URL, 20),
		Workers: 20, GracefulStop: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 1500*time.Millisecond {
		t.Errorf("Run took %v; the schedule is 0.5s and the graceful stop 0.1s", took)
	}
	if s := ex.Summary(); s.Interrupted != 10 || s.Requests != 0 {
		t.Errorf("interrupted %d, requests %d; want all 10 iterations interrupted", s.Interrupted, s.Requests)
	}
}

func TestConfigValidation(t *testing.T) {
	ws := []loadgen.Weighted{{Scenario: scenario.NewHTTP(scenario.Options{Target: "http://127.0.0.1:1", RunID: "x"}), Weight: 1}}
	ok := loadgen.Constant(1, time.Second)
	cases := map[string]struct {
		cfg  loadgen.Config
		want string
	}{
		"A config without a schedule is refused.":         {loadgen.Config{Scenarios: ws}, "no stages"},
		"A config without a scenario is refused.":         {loadgen.Config{Schedule: ok}, "no scenario"},
		"Workers above max workers are refused.":          {loadgen.Config{Schedule: ok, Scenarios: ws, Workers: 10, MaxWorkers: 5}, "exceed max workers"},
		"A zero weight is refused.":                       {loadgen.Config{Schedule: ok, Scenarios: []loadgen.Weighted{{Scenario: ws[0].Scenario}}}, "weight 0"},
		"A negative timeout is refused.":                  {loadgen.Config{Schedule: ok, Scenarios: ws, Timeout: -1}, "timeout"},
		"A schedule with too many iterations is refused.": {loadgen.Config{Schedule: loadgen.Constant(1e6, 24*time.Hour), Scenarios: ws}, "at most"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadgen.New(c.cfg)
			if err == nil || !regexp.MustCompile(regexp.QuoteMeta(c.want)).MatchString(err.Error()) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
