// Package repair is auto-repair (the seed's §4.3), off by default: a job
// on a timer that takes the verifier's open mismatches and the resumable
// sync tasks, and writes the target region back to what the source holds —
// each task from its last recorded offset, each mismatched row by the
// verifier's repair statement, re-read fresh first. Every repair is logged
// with the row before and after.
//
// The job stops itself when repairs keep failing: when the day's failure
// rate passes MaxFailureRate (15 %) over at least MinSample attempts, its
// breaker opens and no repair runs until someone resumes it by hand
// (Resume, or POST /admin/repair/resume with the admin bearer token). The
// breaker's state is the metric carpool_repair_breaker_open, for an alert.
// A new day (in Config.Location) starts the rate afresh, but does not close
// an open breaker.
package repair

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/carpoolsla/carpoolsla/exporters/verify"
)

// Defaults of Config.
const (
	DefaultInterval       = 5 * time.Minute
	DefaultMaxFailureRate = 0.15
	// DefaultMinSample: below this many attempts in a day the rate is too
	// noisy to stop on (one failure out of three is not a trend).
	DefaultMinSample = 20
	DefaultMaxPerRun = 1000
	DefaultTaskBatch = 100
)

// Mismatches is the verifier's list of open mismatches; *verify.Verifier
// satisfies it.
type Mismatches interface {
	OpenMismatches() []verify.Mismatch
	// Resolve drops a mismatch once repaired (or healed).
	Resolve(m verify.Mismatch)
}

// Reader reads rows by key; every verify.Backend satisfies it.
type Reader interface {
	Rows(ctx context.Context, t verify.Table, keys []string) (map[string]verify.Row, error)
}

// Target is the region being repaired: it reads rows and writes them back;
// the verifier's SQL and Store backends satisfy it.
type Target interface {
	Reader
	verify.Repairer
}

// Task is a resumable sync task: a stream of changes from a source whose
// position (offset) the target records as it applies them — a
// replication link. Resuming it from its last recorded offset re-applies
// what did not arrive.
type Task interface {
	// Name identifies the task in logs, such as "replication sh-a>sh-b".
	Name() string
	// Offset is the last offset recorded as applied in the target.
	Offset(ctx context.Context) (uint64, error)
	// Resume applies up to max changes after offset, in order, one Change
	// each. It stops at the first change that fails (returned with its
	// Err), so the recorded offset never passes a change not applied. An
	// error is a failure of the task as a whole (the source unreachable,
	// the offset no longer held).
	Resume(ctx context.Context, offset uint64, max int) ([]Change, error)
}

// Change is one change a Task applied (or failed to).
type Change struct {
	Offset uint64
	Table  string
	Key    string
	// Before and After are the target's row around the change (nil: no
	// row).
	Before, After verify.Row
	Err           error
}

// Config configures a Job.
type Config struct {
	// SourceRegion and TargetRegion label the metrics; defaults
	// verify.DefaultSourceRegion and verify.DefaultTargetRegion.
	SourceRegion, TargetRegion string
	// Mismatches are the rows to repair; with it, Source and Target are
	// required. Optional when there are Tasks.
	Mismatches Mismatches
	Source     Reader
	Target     Target
	// Tasks are resumed at every cycle, before the mismatches (a resumed
	// task may repair some of them).
	Tasks []Task
	// Interval between cycles; default DefaultInterval.
	Interval time.Duration
	// MaxFailureRate opens the breaker when the day's failed repairs over
	// attempted ones pass it; default DefaultMaxFailureRate. In (0, 1].
	MaxFailureRate float64
	// MinSample is the attempts a day needs before the rate can open the
	// breaker; default DefaultMinSample.
	MinSample int
	// MaxPerRun bounds the repairs of one cycle; default DefaultMaxPerRun.
	MaxPerRun int
	// TaskBatch is the changes one Task.Resume call applies; default
	// DefaultTaskBatch.
	TaskBatch int
	// Location is where the day starts and ends; default UTC.
	Location *time.Location
	// Now is the clock; default time.Now.
	Now func() time.Time
	// After waits between cycles; default time.After.
	After func(time.Duration) <-chan time.Time
	// AdminToken is the bearer token of the admin endpoint; empty turns
	// the endpoint off (it answers 403).
	AdminToken string
	// Logger receives every repair (with before and after values) and the
	// breaker's changes; default discards.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.SourceRegion == "" {
		c.SourceRegion = verify.DefaultSourceRegion
	}
	if c.TargetRegion == "" {
		c.TargetRegion = verify.DefaultTargetRegion
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.MaxFailureRate == 0 {
		c.MaxFailureRate = DefaultMaxFailureRate
	}
	if c.MinSample == 0 {
		c.MinSample = DefaultMinSample
	}
	if c.MaxPerRun == 0 {
		c.MaxPerRun = DefaultMaxPerRun
	}
	if c.TaskBatch == 0 {
		c.TaskBatch = DefaultTaskBatch
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration after defaults are filled in.
func (c Config) Validate() error {
	switch {
	case c.Mismatches == nil && len(c.Tasks) == 0:
		return errors.New("repair config: nothing to repair: give the verifier's mismatches, sync tasks, or both")
	case c.Mismatches != nil && (c.Source == nil || c.Target == nil):
		return errors.New("repair config: repairing mismatches needs the source to read and the target to write")
	case c.SourceRegion == c.TargetRegion:
		return fmt.Errorf("repair config: source and target region are both %q: they must differ", c.SourceRegion)
	case c.Interval <= 0:
		return fmt.Errorf("repair config: interval %v must be positive", c.Interval)
	case !(c.MaxFailureRate > 0 && c.MaxFailureRate <= 1):
		return fmt.Errorf("repair config: max failure rate %v must be in (0, 1] (0.15 is 15 %%)", c.MaxFailureRate)
	case c.MinSample < 1:
		return fmt.Errorf("repair config: min sample %d must be at least 1", c.MinSample)
	case c.MaxPerRun < 1:
		return fmt.Errorf("repair config: max per run %d must be at least 1", c.MaxPerRun)
	case c.TaskBatch < 1:
		return fmt.Errorf("repair config: task batch %d must be at least 1", c.TaskBatch)
	}
	return nil
}

// Repair is one logged repair: a mismatched row rewritten, or a task's
// change re-applied.
type Repair struct {
	At    time.Time   `json:"at"`
	Task  string      `json:"task,omitempty"`
	Table string      `json:"table"`
	Key   string      `json:"key"`
	Kind  verify.Kind `json:"kind,omitempty"`
	// Offset is the task's offset of the change.
	Offset    uint64     `json:"offset,omitempty"`
	Statement string     `json:"statement,omitempty"`
	Before    verify.Row `json:"before"`
	After     verify.Row `json:"after"`
	Err       string     `json:"error,omitempty"`
}

// Cycle is what one cycle did.
type Cycle struct {
	// Skipped: the breaker was open; nothing ran.
	Skipped bool `json:"skipped,omitempty"`
	// Repairs were attempted (Err set when one failed).
	Repairs []Repair `json:"repairs"`
	// Healed mismatches matched when re-read: resolved without a write.
	Healed int `json:"healed"`
	// Tripped: the breaker opened during this cycle.
	Tripped bool `json:"tripped,omitempty"`
}

// State is the breaker's state and the day's counts.
type State struct {
	Open      bool      `json:"open"`
	TrippedAt time.Time `json:"tripped_at,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	Day       string    `json:"day"`
	Attempts  int       `json:"attempts"`
	Failures  int       `json:"failures"`
	Rate      float64   `json:"failure_rate"`
	// MaxFailureRate and MinSample are the limits.
	MaxFailureRate float64 `json:"max_failure_rate"`
	MinSample      int     `json:"min_sample"`
}

// Job is the auto-repair job. It implements exporters.Scraper (see
// metrics.go). Its methods are safe for concurrent use; cycles do not
// overlap.
type Job struct {
	cfg   Config
	cycle sync.Mutex

	mu        sync.Mutex
	day       string
	attempts  int
	failures  int
	open      bool
	trippedAt time.Time
	reason    string
	total     struct{ ok, failed float64 }
	lastRun   time.Time
	lastErr   error
}

// New checks cfg and returns a Job with its breaker closed.
func New(cfg Config) (*Job, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Job{cfg: cfg}, nil
}

// dayOf names the day of t in the job's location.
func (j *Job) dayOf(t time.Time) string { return t.In(j.cfg.Location).Format(time.DateOnly) }

// rolloverLocked starts the day's counts afresh when the day changed.
func (j *Job) rolloverLocked(now time.Time) {
	if d := j.dayOf(now); d != j.day {
		j.day, j.attempts, j.failures = d, 0, 0
	}
}

// record counts one attempt and opens the breaker when the day's rate
// passes the limit; it reports whether it just opened.
func (j *Job) record(ok bool) (tripped bool) {
	now := j.cfg.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rolloverLocked(now)
	j.attempts++
	if ok {
		j.total.ok++
	} else {
		j.failures++
		j.total.failed++
	}
	rate := float64(j.failures) / float64(j.attempts)
	if !j.open && j.attempts >= j.cfg.MinSample && rate > j.cfg.MaxFailureRate {
		j.open, j.trippedAt = true, now
		j.reason = fmt.Sprintf("%d of %d repairs failed on %s (%.1f %% > %.1f %%)", j.failures, j.attempts, j.day,
			100*rate, 100*j.cfg.MaxFailureRate)
		j.cfg.Logger.Error("auto-repair stopped: the day's repair failure rate passed its limit; resume it by hand once the cause is fixed",
			"source_region", j.cfg.SourceRegion, "target_region", j.cfg.TargetRegion, "reason", j.reason)
		return true
	}
	return false
}

// isOpen reports whether the breaker is open.
func (j *Job) isOpen() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.open
}

// Resume closes the breaker by hand and starts the day's counts afresh
// (the failures that opened it would open it again at once). It returns
// the state after.
func (j *Job) Resume() State {
	now := j.cfg.Now()
	j.mu.Lock()
	was := j.open
	j.open, j.trippedAt, j.reason = false, time.Time{}, ""
	j.day, j.attempts, j.failures = j.dayOf(now), 0, 0
	j.mu.Unlock()
	if was {
		j.cfg.Logger.Warn("auto-repair resumed by hand", "source_region", j.cfg.SourceRegion, "target_region", j.cfg.TargetRegion)
	}
	return j.State()
}

// State returns the breaker's state and today's counts.
func (j *Job) State() State {
	now := j.cfg.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rolloverLocked(now)
	s := State{Open: j.open, TrippedAt: j.trippedAt, Reason: j.reason, Day: j.day, Attempts: j.attempts,
		Failures: j.failures, MaxFailureRate: j.cfg.MaxFailureRate, MinSample: j.cfg.MinSample}
	if j.attempts > 0 {
		s.Rate = float64(j.failures) / float64(j.attempts)
	}
	return s
}

// Run runs a cycle every Interval until ctx ends (the first after one
// Interval: the verifier needs a pass first). A failing cycle is logged
// and the next one tries again. It returns nil when ctx ends.
func (j *Job) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-j.cfg.After(j.cfg.Interval):
		}
		c, err := j.RunOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			j.cfg.Logger.Warn("auto-repair cycle failed; retrying at the next interval", "err", err.Error())
		case c.Skipped:
			j.cfg.Logger.Warn("auto-repair skipped: the breaker is open", "reason", j.State().Reason)
		default:
			j.cfg.Logger.Info("auto-repair cycle done", "repairs", len(c.Repairs), "healed", c.Healed)
		}
	}
}

// RunOnce runs one cycle: every task from its last recorded offset, then
// the open mismatches, at most MaxPerRun repairs, stopping as soon as the
// breaker opens. The error is a cycle-level failure (a backend
// unreachable), also counted as a failed attempt.
func (j *Job) RunOnce(ctx context.Context) (Cycle, error) {
	j.cycle.Lock()
	defer j.cycle.Unlock()
	c := Cycle{Repairs: []Repair{}}
	if j.isOpen() {
		c.Skipped = true
		return c, nil
	}
	var errs []error
	budget := j.cfg.MaxPerRun
	for _, t := range j.cfg.Tasks {
		if err := j.resumeTask(ctx, t, &c, &budget); err != nil {
			errs = append(errs, err)
		}
	}
	if j.cfg.Mismatches != nil {
		for _, m := range j.cfg.Mismatches.OpenMismatches() {
			if budget <= 0 || c.Tripped || ctx.Err() != nil {
				break
			}
			if err := j.repairRow(ctx, m, &c); err != nil {
				errs = append(errs, err)
			}
			budget--
		}
	}
	err := errors.Join(errs...)
	j.mu.Lock()
	j.lastRun, j.lastErr = j.cfg.Now(), err
	j.mu.Unlock()
	return c, err
}

// resumeTask applies a task's changes from its recorded offset.
func (j *Job) resumeTask(ctx context.Context, t Task, c *Cycle, budget *int) error {
	for *budget > 0 && !c.Tripped && ctx.Err() == nil {
		off, err := t.Offset(ctx)
		if err == nil {
			var changes []Change
			changes, err = t.Resume(ctx, off, min(j.cfg.TaskBatch, *budget))
			failed := false
			for _, ch := range changes {
				r := Repair{At: j.cfg.Now(), Task: t.Name(), Table: ch.Table, Key: ch.Key, Offset: ch.Offset,
					Before: ch.Before, After: ch.After}
				if ch.Err != nil {
					r.Err, failed = ch.Err.Error(), true
				}
				j.log(r)
				c.Repairs = append(c.Repairs, r)
				*budget--
				if j.record(ch.Err == nil) {
					c.Tripped = true
				}
			}
			if err == nil && (failed || len(changes) == 0) {
				return nil // caught up, or stopped at a failing change
			}
		}
		if err != nil {
			err = fmt.Errorf("resuming %s: %w", t.Name(), err)
			j.cfg.Logger.Warn("resuming a sync task failed", "task", t.Name(), "err", err.Error())
			if j.record(false) {
				c.Tripped = true
			}
			return err
		}
	}
	return nil
}

// repairRow rewrites one mismatched row from the source's current value.
func (j *Job) repairRow(ctx context.Context, m verify.Mismatch, c *Cycle) error {
	keys := []string{m.Key}
	read := func() (want, have verify.Row, err error) {
		src, err := j.cfg.Source.Rows(ctx, m.Table, keys)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s/%s in the source: %w", m.Table.Name, m.Key, err)
		}
		tgt, err := j.cfg.Target.Rows(ctx, m.Table, keys)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s/%s in the target: %w", m.Table.Name, m.Key, err)
		}
		return src[m.Key], tgt[m.Key], nil
	}
	r := Repair{At: j.cfg.Now(), Table: m.Table.Name, Key: m.Key, Kind: m.Kind}
	want, have, err := read()
	if err != nil {
		r.Err = err.Error()
		j.log(r)
		c.Repairs = append(c.Repairs, r)
		if j.record(false) {
			c.Tripped = true
		}
		return err
	}
	r.Before = have
	if sameRow(want, have) {
		j.cfg.Mismatches.Resolve(m)
		c.Healed++
		j.cfg.Logger.Info("mismatch healed before its repair: nothing written", "table", m.Table.Name, "key", m.Key, "kind", string(m.Kind))
		return nil
	}
	r.Statement = j.cfg.Target.Statement(m.Table, m.Key, have, want)
	err = j.cfg.Target.Apply(ctx, m.Table, m.Key, have, want)
	if err == nil {
		var after verify.Row
		if _, after, err = read(); err == nil {
			r.After = after
			if !sameRow(want, after) {
				err = fmt.Errorf("the target still differs from the source after %s", r.Statement)
			}
		}
	}
	if err != nil {
		r.Err = err.Error()
	} else {
		j.cfg.Mismatches.Resolve(m)
	}
	j.log(r)
	c.Repairs = append(c.Repairs, r)
	if j.record(err == nil) {
		c.Tripped = true
	}
	return nil // a failed repair is counted, not a cycle failure
}

// sameRow reports whether two rows are equal, nil meaning no row.
func sameRow(a, b verify.Row) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(b)
}

// log writes a repair with its before and after values.
func (j *Job) log(r Repair) {
	attrs := []any{"source_region", j.cfg.SourceRegion, "target_region", j.cfg.TargetRegion,
		"table", r.Table, "key", r.Key, "before", rowText(r.Before), "after", rowText(r.After)}
	if r.Task != "" {
		attrs = append(attrs, "task", r.Task, "offset", r.Offset)
	}
	if r.Kind != "" {
		attrs = append(attrs, "kind", string(r.Kind))
	}
	if r.Statement != "" {
		attrs = append(attrs, "statement", r.Statement)
	}
	if r.Err != "" {
		j.cfg.Logger.Warn("repair failed", append(attrs, "err", r.Err)...)
		return
	}
	j.cfg.Logger.Info("repair applied", attrs...)
}

// rowText renders a row as JSON (null for no row).
func rowText(r verify.Row) string {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Sprintf("%v", r)
	}
	return string(b)
}
