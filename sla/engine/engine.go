// Package engine is the SLA engine: every tick it reads the signals (SLO
// attainment, latency, health measurements), computes the composite SLA and
// the health score per region, decides each region's circuit breaker and
// route weight, and acts: it exposes the results as metrics, records an
// event for every state change and pushes the route table to the gateways.
//
// The decisions are made by Core, a deterministic state machine stepped on
// (now, Signals) with no clock and no goroutines of its own; Engine is the
// loop around it, with the adapters (Reader, Actuator, EventSink) injected.
// docs/engine.md has the formulas and the breaker's state machine.
package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Reader reads one tick's signals as of at. The signals package implements
// it over PromQL.
type Reader interface {
	Read(ctx context.Context, at time.Time) (Signals, error)
}

// Actuator applies a route table: the actuate package pushes it to every
// region's gateway. Apply gets the whole table; a table whose version the
// gateways already hold is harmless to apply again.
type Actuator interface {
	Apply(ctx context.Context, t RouteTable) error
}

// EventSink records decision events (a log line now, ClickHouse later).
type EventSink interface {
	Emit(ctx context.Context, events []Event) error
}

// DefaultResendEvery is how many ticks may pass without a change before the
// engine applies the same route table again (so that a restarted gateway
// catches up without waiting for a change).
const DefaultResendEvery = 12

// Config configures an Engine.
type Config struct {
	// Spec is the parsed SLA spec (required): regions, services, health,
	// breaker, routing weights and the engine's interval and bounds.
	Spec *spec.Spec
	// Reader reads the signals each tick (required).
	Reader Reader
	// Actuator applies the route table; nil decides without acting.
	Actuator Actuator
	// Sink records the events; nil writes one log line per event (NewLogSink).
	Sink EventSink
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Log receives the loop's own messages; nil discards them.
	Log *slog.Logger
	// Registerer gets the engine's metrics; nil registers none.
	Registerer prometheus.Registerer
	// ResendEvery is how many ticks without a change pass before the same
	// route table is applied again; 0 means DefaultResendEvery.
	ResendEvery int
	// StateFile, when set, keeps the breakers across restarts: New restores
	// them from it (see Core.Restore) and every tick that changes a breaker
	// rewrites it atomically. An unreadable file is logged and ignored.
	StateFile string
	// StateMaxAge is how old a state file may be and still be restored;
	// 0 means DefaultStateMaxAge, negative any age.
	StateMaxAge time.Duration
}

// Validate checks the configuration; every message names the field and
// what to do.
func (c Config) Validate() error {
	if c.Spec == nil {
		return errors.New("engine: Config.Spec is nil; load the spec with spec.Load and pass it")
	}
	if c.Reader == nil {
		return errors.New("engine: Config.Reader is nil; pass a Reader (signals.New reads them with PromQL)")
	}
	if c.ResendEvery < 0 {
		return fmt.Errorf("engine: Config.ResendEvery is %d; give a positive number of ticks, or 0 for the default %d", c.ResendEvery, DefaultResendEvery)
	}
	if c.Spec.Engine.Interval <= 0 {
		return fmt.Errorf("engine: spec engine.interval is %s; give a positive duration such as 5s", c.Spec.Engine.Interval)
	}
	return checkSpec(c.Spec)
}

// Engine runs the SLA engine's loop around a Core. Its methods are safe for
// concurrent use; Tick and Run must not run concurrently with each other.
type Engine struct {
	cfg     Config
	core    *Core
	metrics *metrics

	tickMu sync.Mutex // serialises Tick

	mu         sync.Mutex // guards the fields below
	last       Decision
	decided    bool
	version    int64
	ticks      int64
	readErrors int64
	// pushed is the table last applied successfully (Version set), and
	// sinceApply the ticks since an Apply was last attempted.
	pushed     RouteTable
	pushedOK   bool
	sinceApply int
	// saved is the breakers last written to StateFile (JSON), restored the
	// notes of the restore at New.
	saved    []byte
	restored []string
}

// New validates cfg and builds an Engine; it registers the metrics on
// cfg.Registerer.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Sink == nil {
		cfg.Sink = NewLogSink(cfg.Log)
	}
	if cfg.ResendEvery == 0 {
		cfg.ResendEvery = DefaultResendEvery
	}
	if cfg.StateMaxAge == 0 {
		cfg.StateMaxAge = DefaultStateMaxAge
	}
	core, err := NewCore(cfg.Spec)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, cfg.Spec)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, core: core, metrics: m}
	if cfg.StateFile != "" {
		e.restore()
	}
	return e, nil
}

// restore sets the breakers from StateFile. Availability comes first: a
// file that cannot be used is logged, and the engine starts with every
// breaker closed (and overwrites it at its first tick).
func (e *Engine) restore() {
	path, log := e.cfg.StateFile, e.cfg.Log
	st, ok, err := loadState(path)
	switch {
	case err != nil:
		log.Error("engine state file unusable; starting with every breaker closed", "file", path, "err", err)
		return
	case !ok:
		log.Info("no engine state file yet; starting with every breaker closed", "file", path)
		return
	}
	maxAge := e.cfg.StateMaxAge
	if age := e.cfg.Now().Sub(st.SavedAt); maxAge > 0 && age > maxAge {
		log.Warn("engine state file too old to trust; starting with every breaker closed", "file", path, "saved_at", st.SavedAt, "age", age.Round(time.Second), "max_age", maxAge)
		return
	}
	notes, err := e.core.Restore(st)
	if err != nil {
		log.Error("engine state file unusable; starting with every breaker closed", "file", path, "err", err)
		return
	}
	e.restored = notes
	log.Info("breakers restored from the engine state file", "file", path, "saved_at", st.SavedAt, "notes", notes)
}

// Restored says what New restored from StateFile, a line per region that
// was not closed or could not be restored (empty when nothing was).
func (e *Engine) Restored() []string { return slices.Clone(e.restored) }

// persist rewrites StateFile when a breaker changed.
func (e *Engine) persist(now time.Time) error {
	st := e.core.Snapshot(now)
	regions, err := json.Marshal(st.Regions)
	if err != nil {
		return err
	}
	if bytes.Equal(regions, e.saved) {
		return nil
	}
	if err := saveState(e.cfg.StateFile, st); err != nil {
		return fmt.Errorf("saving the breakers to %s: %w", e.cfg.StateFile, err)
	}
	e.saved = regions
	return nil
}

// Tick runs one tick: read the signals, decide, expose the metrics, emit
// the events and apply the route table when it changed (or every
// ResendEvery ticks). A failed read decides on absent signals (the breakers
// hold, then go stale), so Tick still returns the decision along with the
// error (unless ctx is done: then nothing is decided). Emit and Apply
// errors are returned too; none of them stops Run.
func (e *Engine) Tick(ctx context.Context) (Decision, error) {
	e.tickMu.Lock()
	defer e.tickMu.Unlock()
	start := time.Now()
	now := e.cfg.Now()

	var errs []error
	sig, err := e.cfg.Reader.Read(ctx, now)
	if err != nil && ctx.Err() != nil {
		// Cancelled: the read says nothing about the regions, so the core
		// does not step on it.
		return Decision{}, fmt.Errorf("reading the signals: %w", ctx.Err())
	}
	readFailed := err != nil
	if readFailed {
		errs = append(errs, fmt.Errorf("reading the signals: %w", err))
		sig = Signals{At: now}
	}
	d := e.core.Step(now, sig)
	if e.cfg.StateFile != "" {
		if err := e.persist(now); err != nil {
			errs = append(errs, err)
		}
	}

	e.mu.Lock()
	if !e.decided || !sameRoutes(d.Table, e.last.Table) {
		e.version = nextVersion(e.version, now)
	}
	d.Table.Version = e.version
	e.last, e.decided = d, true
	e.ticks++
	if readFailed {
		e.readErrors++
	}
	apply := e.cfg.Actuator != nil && (!e.pushedOK || e.pushed.Version != d.Table.Version || e.sinceApply+1 >= e.cfg.ResendEvery)
	if apply {
		e.sinceApply = 0
	} else {
		e.sinceApply++
	}
	e.mu.Unlock()

	e.metrics.observe(d, e.cfg.Spec)

	if len(d.Events) > 0 {
		e.metrics.countEvents(d.Events)
		if err := e.cfg.Sink.Emit(ctx, d.Events); err != nil {
			e.metrics.emit(false)
			errs = append(errs, fmt.Errorf("emitting %d events: %w", len(d.Events), err))
		} else {
			e.metrics.emit(true)
		}
	}
	if apply {
		if err := e.cfg.Actuator.Apply(ctx, d.Table); err != nil {
			e.metrics.push(false)
			errs = append(errs, fmt.Errorf("applying route table version %d: %w", d.Table.Version, err))
			e.mu.Lock()
			e.pushedOK = false
			e.mu.Unlock()
		} else {
			e.metrics.push(true)
			e.mu.Lock()
			e.pushed, e.pushedOK = d.Table, true
			e.mu.Unlock()
		}
	}
	e.metrics.tick(!readFailed, now, time.Since(start))
	return d, errors.Join(errs...)
}

// nextVersion numbers a new route table: the clock in milliseconds, so that
// versions keep growing across restarts, and at least one more than the
// last, so that they grow when the clock does not.
func nextVersion(last int64, now time.Time) int64 {
	return max(last+1, now.UnixMilli())
}

// sameRoutes reports whether two tables route the same way (versions aside).
func sameRoutes(a, b RouteTable) bool {
	if len(a.Regions) != len(b.Regions) {
		return false
	}
	for name, x := range a.Regions {
		y, ok := b.Regions[name]
		if !ok || x != y {
			return false
		}
	}
	return true
}

// Run ticks every spec engine.interval, the first time at once, until ctx
// is done; it then returns nil. A tick's errors are logged and the loop
// goes on.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(time.Duration(e.cfg.Spec.Engine.Interval))
	defer t.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		d, err := e.Tick(ctx)
		if err != nil && ctx.Err() == nil {
			e.cfg.Log.Warn("engine tick", "err", err, "version", d.Table.Version)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Status returns the latest decision with the route table's version; before
// the first tick it has no regions.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Status{Decision: e.last, Version: e.version, Ticks: e.ticks, ReadErrors: e.readErrors}
}

// Table returns the latest route table (what the gateways should apply);
// before the first tick it has version 0 and no regions.
func (e *Engine) Table() RouteTable {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last.Table
}

// Handler serves the engine's API:
//
//	GET /api/v1/status   the latest Status as JSON
//	GET /api/v1/routing  the latest RouteTable as JSON (the gateways' pull
//	                     fallback); 503 before the first tick
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.Status())
	})
	mux.HandleFunc("GET /api/v1/routing", func(w http.ResponseWriter, _ *http.Request) {
		t := e.Table()
		if len(t.Regions) == 0 {
			http.Error(w, "no route table yet: the engine has not ticked", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
	return mux
}

// writeJSON writes v as JSON, without HTML escaping so that reasons such
// as "p99 0.512s > 0.300s" read as they are.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encoding the response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
