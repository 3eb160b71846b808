package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario is one kind of iteration: a ride flow, a quote, a driver's
// position. Run performs one iteration, each request through it.Step so
// that its latency is measured from its intended start. Run is called
// concurrently from many workers; it should return when ctx ends.
type Scenario interface {
	Name() string
	Run(ctx context.Context, it *Iteration) error
}

// Operations is implemented by scenarios that declare their operations
// (step names) up front, so their metrics exist from the start at 0.
type Operations interface {
	Operations() []string
}

// Weighted is a scenario with its weight in the mix.
type Weighted struct {
	Scenario Scenario
	Weight   int
}

// Defaults of Config.
const (
	DefaultWorkers      = 64
	DefaultMaxWorkers   = 1024
	DefaultTimeout      = 10 * time.Second
	DefaultGracefulStop = 10 * time.Second
	// DefaultMaxStartDelay is the default Config.MaxStartDelay.
	DefaultMaxStartDelay = 100 * time.Millisecond
	// maxQueued bounds the start queue whatever the rate and delay.
	maxQueued = 1 << 20
	// DefaultPreciseWindow is the default Config.PreciseWindow.
	DefaultPreciseWindow = time.Millisecond
	// PreciseMinGap is the least gap between two iterations' times for
	// which the scheduler sleeps precisely (see Config.PreciseWindow).
	PreciseMinGap = time.Millisecond
	// cancelWait bounds the wait for iterations to return once cancelled.
	cancelWait = 5 * time.Second
)

// Config configures an Executor. Zero fields take the defaults.
type Config struct {
	// Schedule is when iterations start (required).
	Schedule Schedule
	// Scenarios and their weights (at least one).
	Scenarios []Weighted
	// Workers are started before the first iteration (k6's
	// preAllocatedVUs); default DefaultWorkers.
	Workers int
	// MaxWorkers bounds the workers (k6's maxVUs): when none is free at an
	// iteration's intended time and MaxWorkers are running, the iteration
	// waits for one up to MaxStartDelay, then is dropped and counted;
	// default the larger of Workers and DefaultMaxWorkers.
	MaxWorkers int
	// MaxStartDelay is how long an iteration that finds every one of
	// MaxWorkers busy may wait, first in first out, for one to come free
	// before it is dropped. The wait is part of its first request's latency
	// (measured from the intended start), so it hides nothing; it absorbs
	// bursts (a GC pause, a slow moment of the target) that would otherwise
	// drop iterations while the generator as a whole keeps up. The schedule
	// never waits: later iterations start on time whatever is queued.
	// Default DefaultMaxStartDelay; negative drops at once, as k6's
	// arrival-rate executors do.
	MaxStartDelay time.Duration
	// Timeout bounds each step (request) of an iteration; default
	// DefaultTimeout.
	Timeout time.Duration
	// GracefulStop is how long iterations still running at the end of the
	// schedule may finish before they are cancelled (and counted as
	// interrupted); default DefaultGracefulStop.
	GracefulStop time.Duration
	// PreciseWindow is the last part of each wait for an iteration's time
	// that the scheduler sleeps on a timerfd through the runtime's poller
	// (Linux) instead of on the runtime's timers, which wake an idle process
	// up to ~1 ms late (they round sub-millisecond waits up to 1 ms). It
	// applies while iterations are at least PreciseMinGap apart (rates up to
	// 1000/s): above, iterations batch on the runtime's timers, starting up
	// to ~1 ms late, because a precise wake-up per iteration costs more CPU
	// (~20 % per request measured at 3000/s) than it gains. Default
	// DefaultPreciseWindow; negative turns it off.
	PreciseWindow time.Duration
	// Metrics, when set, receives the client-side metrics as they happen.
	Metrics *Metrics
	// RunID names the run in metrics and records; default a random id.
	RunID string
	// Target and Mix describe the run in its summary (informational).
	Target string
	Mix    Mix
}

// Validate checks the configuration; it does not fill in defaults.
func (c Config) Validate() error {
	if err := c.Schedule.Validate(); err != nil {
		return err
	}
	if len(c.Scenarios) == 0 {
		return errors.New("loadgen: no scenario; give at least one, e.g. --scenario ride")
	}
	seen := map[string]bool{}
	for i, w := range c.Scenarios {
		if w.Scenario == nil {
			return fmt.Errorf("loadgen: scenario %d is nil", i+1)
		}
		if w.Weight < 1 {
			return fmt.Errorf("loadgen: scenario %s has weight %d; weights must be at least 1", w.Scenario.Name(), w.Weight)
		}
		if seen[w.Scenario.Name()] {
			return fmt.Errorf("loadgen: scenario %s is given twice", w.Scenario.Name())
		}
		seen[w.Scenario.Name()] = true
	}
	switch {
	case c.Workers < 0:
		return fmt.Errorf("loadgen: workers is %d; it must be at least 1 (or 0 for the default %d)", c.Workers, DefaultWorkers)
	case c.MaxWorkers < 0:
		return fmt.Errorf("loadgen: max workers is %d; it must be at least 1", c.MaxWorkers)
	case c.MaxWorkers > 0 && c.Workers > c.MaxWorkers:
		return fmt.Errorf("loadgen: workers (%d) exceed max workers (%d); raise --max-workers or lower --workers", c.Workers, c.MaxWorkers)
	case c.MaxWorkers > 1_000_000:
		return fmt.Errorf("loadgen: max workers is %d; at most 1000000 are allowed", c.MaxWorkers)
	case c.Timeout < 0:
		return fmt.Errorf("loadgen: timeout is %v; it must be positive", c.Timeout)
	case c.GracefulStop < 0:
		return fmt.Errorf("loadgen: graceful stop is %v; it must not be negative", c.GracefulStop)
	case c.MaxStartDelay > time.Minute:
		return fmt.Errorf("loadgen: max start delay is %v; at most 1m is allowed (an iteration that late is better counted dropped)", c.MaxStartDelay)
	}
	return nil
}

func (c *Config) defaults() {
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
		if c.MaxWorkers > 0 && c.MaxWorkers < c.Workers {
			c.Workers = c.MaxWorkers
		}
	}
	if c.MaxWorkers == 0 {
		c.MaxWorkers = max(c.Workers, DefaultMaxWorkers)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.GracefulStop == 0 {
		c.GracefulStop = DefaultGracefulStop
	}
	switch {
	case c.MaxStartDelay == 0:
		c.MaxStartDelay = DefaultMaxStartDelay
	case c.MaxStartDelay < 0:
		c.MaxStartDelay = 0
	}
	switch {
	case c.PreciseWindow == 0:
		c.PreciseWindow = DefaultPreciseWindow
	case c.PreciseWindow < 0:
		c.PreciseWindow = 0
	}
	if c.RunID == "" {
		c.RunID = NewRunID()
	}
	if len(c.Mix) == 0 {
		for _, w := range c.Scenarios {
			c.Mix = append(c.Mix, MixEntry{Name: w.Scenario.Name(), Weight: w.Weight})
		}
	}
}

// NewRunID returns a random run id (16 hex digits).
func NewRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Executor runs an open-model load: iterations start at their scheduled
// times whatever the responses do, on a bounded pool of workers, and every
// request's latency is measured from its intended start, so a stall shows in
// the percentiles instead of silently slowing the load (no coordinated
// omission).
type Executor struct {
	cfg   Config
	scens []*scenStats
	ran   atomic.Bool
	start atomic.Int64 // unix ns; 0 before Run
	ended atomic.Int64 // unix ns of the schedule's end (or stop)
	done  atomic.Bool
	proc  atomic.Int64 // iterations processed by the scheduler (started or dropped)
	live  atomic.Int64
	busy  atomic.Int64
	idle  atomic.Int64 // workers announced free and not yet handed an iteration
	queue startQueue   // iterations waiting for a worker (MaxStartDelay)
	reqs  atomic.Int64
	errs  atomic.Int64
}

// New builds an executor.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	e := &Executor{cfg: cfg}
	e.queue.limit = queueLimit(cfg)
	for _, w := range cfg.Scenarios {
		e.scens = append(e.scens, newScenStats(w, cfg.Metrics, cfg.RunID))
	}
	if cfg.Metrics != nil {
		cfg.Metrics.bindWorkers(cfg.RunID, func() float64 { return float64(e.live.Load()) }, func() float64 { return float64(e.busy.Load()) })
	}
	return e, nil
}

// Config returns the executor's configuration with defaults filled in.
func (e *Executor) Config() Config { return e.cfg }

// job is one iteration handed to a worker.
type job struct {
	n        int64
	intended time.Time
	sc       int
}

// Run runs the schedule once: it returns when every iteration has been
// started or dropped and the running ones have finished (or been
// interrupted after GracefulStop). Cancelling ctx stops the schedule and
// interrupts the running iterations at once. Run returns nil unless it was
// called twice or iterations ignored cancellation; the results are in
// Summary.
func (e *Executor) Run(ctx context.Context) error {
	if !e.ran.CompareAndSwap(false, true) {
		return errors.New("loadgen: an executor runs once; build a new one")
	}
	iterCtx, cancelIters := context.WithCancel(ctx)
	defer cancelIters()
	work := make(chan job)
	var wg sync.WaitGroup
	live := 0
	spawn := func(first *job) {
		live++
		e.live.Store(int64(live))
		wg.Add(1)
		go e.worker(iterCtx, work, first, &wg)
	}
	for range e.cfg.Workers {
		spawn(nil)
	}
	// Let the preallocated workers reach their receive, so that the first
	// iterations find them free (bounded: at most a second).
	for ready := time.Now().Add(time.Second); e.idle.Load() < int64(e.cfg.Workers) && time.Now().Before(ready); {
		runtime.Gosched()
	}
	weights := make([]int, len(e.cfg.Scenarios))
	for i, w := range e.cfg.Scenarios {
		weights[i] = w.Weight
	}
	pick := newSWRR(weights)
	cur := e.cfg.Schedule.cursor()
	total := e.cfg.Schedule.Total()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	precise := newPreciseTimer()
	defer precise.close()
	done := ctx.Done()
	start := time.Now()
	e.start.Store(start.UnixNano())
	last := -PreciseMinGap // the previous iteration's offset
schedule:
	for i := int64(0); i < total; i++ {
		off, ok := cur.at(i)
		if !ok {
			break
		}
		due := start.Add(off)
		gap := off - last
		last = off
		if wait := time.Until(due); wait > 0 {
			window := e.cfg.PreciseWindow
			if gap < PreciseMinGap {
				window = 0
			}
			if sleep := wait - window; sleep > 0 {
				timer.Reset(sleep)
				select {
				case <-timer.C:
				case <-done:
					timer.Stop()
					break schedule
				}
			}
			if rest := time.Until(due); rest > 0 {
				precise.sleep(rest)
			}
		} else {
			select {
			case <-done:
				break schedule
			default:
			}
		}
		s := pick.next()
		sc := e.scens[s]
		sc.schedule()
		e.proc.Add(1)
		j := job{n: i, intended: due, sc: s}
		// Queued iterations go first, to the workers free now.
		e.handQueued(iterCtx, work)
		// A worker announces itself idle just before it receives, and each
		// announcement is claimed by one send, so this send finds a worker
		// at (or about to reach) its receive and does not block.
		if claim(&e.idle) {
			work <- j
			continue
		}
		if live < e.cfg.MaxWorkers {
			spawn(&j)
			continue
		}
		if e.cfg.MaxStartDelay > 0 && e.queue.push(j) {
			// A worker may have come free between the claim and the push.
			e.handQueued(iterCtx, work)
			continue
		}
		sc.drop()
	}
	e.ended.Store(time.Now().UnixNano())
	// The workers take what is still queued before they return.
	close(work)

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	grace := time.NewTimer(e.cfg.GracefulStop)
	defer grace.Stop()
	select {
	case <-finished:
	case <-done:
	case <-grace.C:
	}
	cancelIters()
	select {
	case <-finished:
	case <-time.After(cancelWait):
		n := e.busy.Load()
		e.done.Store(true)
		return fmt.Errorf("loadgen: %d iterations did not return within %v of being cancelled", n, cancelWait)
	}
	e.done.Store(true)
	return nil
}

func (e *Executor) worker(ctx context.Context, work <-chan job, first *job, wg *sync.WaitGroup) {
	defer wg.Done()
	if first != nil {
		e.do(ctx, *first)
	}
	for {
		if j, ok := e.nextQueued(ctx); ok {
			e.do(ctx, j)
			continue
		}
		e.idle.Add(1)
		// An iteration queued between the look and the announcement: take
		// the announcement back and go for it, unless the scheduler has
		// already claimed it (then it sends that iteration, or a newer one,
		// on work).
		if e.queue.len() > 0 && claim(&e.idle) {
			continue
		}
		j, ok := <-work
		if !ok {
			for {
				j, ok := e.nextQueued(ctx)
				if !ok {
					return
				}
				e.do(ctx, j)
			}
		}
		e.do(ctx, j)
	}
}

// handQueued gives queued iterations, oldest first, to the workers that
// have announced themselves free.
func (e *Executor) handQueued(ctx context.Context, work chan<- job) {
	for e.queue.len() > 0 && claim(&e.idle) {
		j, ok := e.nextQueued(ctx)
		if !ok {
			e.idle.Add(1) // a worker took it first: the announcement stands
			return
		}
		work <- j
	}
}

// nextQueued pops the oldest queued iteration still within MaxStartDelay of
// its intended time, dropping (and counting) those past it, and all of them
// once ctx has ended.
func (e *Executor) nextQueued(ctx context.Context) (job, bool) {
	for {
		j, ok := e.queue.pop()
		if !ok {
			return job{}, false
		}
		if ctx.Err() != nil || time.Since(j.intended) > e.cfg.MaxStartDelay {
			e.scens[j.sc].drop()
			continue
		}
		return j, true
	}
}

// claim takes one unit of n if there is one.
func claim(n *atomic.Int64) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// startQueue is the bounded FIFO of iterations waiting for a worker. The
// scheduler pushes; the scheduler and the workers pop.
type startQueue struct {
	mu    sync.Mutex
	jobs  []job
	head  int
	n     atomic.Int64
	limit int
}

// queueLimit bounds the queue at what the schedule's peak rate brings in
// MaxStartDelay, at least MaxWorkers, at most maxQueued.
func queueLimit(c Config) int {
	peak := c.Schedule.StartRate
	for _, st := range c.Schedule.Stages {
		peak = max(peak, st.Target)
	}
	return min(maxQueued, max(c.MaxWorkers, int(peak*c.MaxStartDelay.Seconds())+1))
}

func (q *startQueue) len() int64 { return q.n.Load() }

func (q *startQueue) push(j job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.jobs)-q.head >= q.limit {
		return false
	}
	if q.head > 0 && q.head == len(q.jobs) {
		q.jobs, q.head = q.jobs[:0], 0
	}
	q.jobs = append(q.jobs, j)
	q.n.Add(1)
	return true
}

func (q *startQueue) pop() (job, bool) {
	if q.n.Load() == 0 {
		return job{}, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.jobs) {
		return job{}, false
	}
	j := q.jobs[q.head]
	q.head++
	q.n.Add(-1)
	if q.head == len(q.jobs) {
		q.jobs, q.head = q.jobs[:0], 0
	}
	return j, true
}

func (e *Executor) do(ctx context.Context, j job) {
	e.busy.Add(1)
	defer e.busy.Add(-1)
	sc := e.scens[j.sc]
	sc.begin()
	it := &Iteration{N: j.n, Intended: j.intended, next: j.intended, e: e, sc: sc}
	_ = sc.scenario.Run(ctx, it)
	if it.interrupted {
		sc.interrupted.Add(1)
	}
}

// Iteration is one scheduled run of a scenario, handed to Scenario.Run.
type Iteration struct {
	// N is the iteration's number in the run, from 0.
	N int64
	// Intended is when the schedule meant it to start.
	Intended time.Time

	next        time.Time
	e           *Executor
	sc          *scenStats
	interrupted bool
}

// Step runs one request of the iteration, named op, under the executor's
// per-request timeout, and records its latency and outcome. The first
// step's latency runs from the iteration's intended start (so time spent
// waiting for a worker, a connection or a stalled server counts); each later
// step's from the end of the previous one (or of a Pause). An error is
// classified with Kind. When ctx ends (the run was stopped) the step is not
// recorded and the iteration counts as interrupted. Step returns fn's error.
func (it *Iteration) Step(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	sctx, cancel := context.WithTimeout(ctx, it.e.cfg.Timeout)
	err := fn(sctx)
	cancel()
	end := time.Now()
	if err != nil && ctx.Err() != nil {
		it.interrupted = true
		return err
	}
	it.e.record(it.sc, op, end.Sub(it.next), err)
	it.next = end
	return err
}

// Pause waits d (think time between steps); the next step is measured from
// the pause's end. It returns ctx's error when ctx ends first.
func (it *Iteration) Pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		it.next = time.Now()
		return nil
	case <-ctx.Done():
		it.interrupted = true
		return ctx.Err()
	}
}

// Event counts a named outcome that is not an error (a ride no driver took,
// a stale read retried), shown in the summary beside the scenario.
func (it *Iteration) Event(name string) { it.sc.event(name) }

func (e *Executor) record(sc *scenStats, op string, d time.Duration, err error) {
	e.reqs.Add(1)
	if err != nil {
		e.errs.Add(1)
	}
	sc.record(op, d, err)
}

// Progress is a live view of a run.
type Progress struct {
	Elapsed, Duration time.Duration
	// Scheduled iterations are those whose time has come (started or
	// dropped).
	Scheduled, Started, Dropped, Interrupted int64
	Requests, Errors                         int64
	Workers, Busy                            int64
	// TargetRate is the schedule's rate now; AchievedRate the mean rate of
	// started iterations so far.
	TargetRate, AchievedRate float64
	// P99 is the 99th percentile of request latency so far.
	P99  time.Duration
	Done bool
}

// Progress returns a snapshot of the run (safe during Run).
func (e *Executor) Progress() Progress {
	p := Progress{Duration: e.cfg.Schedule.Duration(), Requests: e.reqs.Load(), Errors: e.errs.Load(),
		Workers: e.live.Load(), Busy: e.busy.Load(), Scheduled: e.proc.Load(), Done: e.done.Load()}
	p.Elapsed = e.elapsed()
	h := NewHistogram()
	for _, sc := range e.scens {
		p.Started += sc.iterations.Load()
		p.Dropped += sc.dropped.Load()
		p.Interrupted += sc.interrupted.Load()
		sc.mergeInto(h)
	}
	p.TargetRate = e.cfg.Schedule.RateAt(p.Elapsed)
	if p.Elapsed > 0 {
		p.AchievedRate = float64(p.Started) / p.Elapsed.Seconds()
	}
	p.P99 = h.Quantile(99)
	return p
}

// elapsed is the run's length so far: from the start to now, or to the
// schedule's end once it ended. A run that kept to its schedule lasts the
// schedule (the scheduler ends at the last iteration's time, up to 1/rate
// before the end); one that fell behind lasts longer.
func (e *Executor) elapsed() time.Duration {
	start := e.start.Load()
	if start == 0 {
		return 0
	}
	end := e.ended.Load()
	if end == 0 {
		return time.Since(time.Unix(0, start))
	}
	d := time.Duration(end - start)
	if sd := e.cfg.Schedule.Duration(); e.proc.Load() == e.cfg.Schedule.Total() && d < sd {
		d = sd
	}
	return d
}
