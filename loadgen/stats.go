package loadgen

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// scenStats accumulates one scenario's results during a run.
type scenStats struct {
	name     string
	weight   int
	scenario Scenario
	m        *scenMetrics // nil without Metrics

	scheduled, iterations, dropped, interrupted atomic.Int64

	mu     sync.RWMutex // guards ops (the map) and events
	ops    map[string]*opStats
	events map[string]int64
}

// opStats accumulates one operation's requests.
type opStats struct {
	mu     sync.Mutex
	hist   *Histogram
	reqs   int64
	errs   int64
	kinds  map[string]int64
	m      *opMetrics
	parent *scenStats
}

func newScenStats(w Weighted, m *Metrics, run string) *scenStats {
	sc := &scenStats{name: w.Scenario.Name(), weight: w.Weight, scenario: w.Scenario, ops: map[string]*opStats{}, events: map[string]int64{}}
	if m != nil {
		sc.m = m.scenario(run, sc.name)
	}
	if ops, ok := w.Scenario.(Operations); ok {
		for _, op := range ops.Operations() {
			sc.op(op)
		}
	}
	return sc
}

func (sc *scenStats) schedule() {
	sc.scheduled.Add(1)
	if sc.m != nil {
		sc.m.scheduled.Inc()
	}
}

func (sc *scenStats) drop() {
	sc.dropped.Add(1)
	if sc.m != nil {
		sc.m.dropped.Inc()
	}
}

func (sc *scenStats) begin() {
	sc.iterations.Add(1)
	if sc.m != nil {
		sc.m.iterations.Inc()
	}
}

func (sc *scenStats) event(name string) {
	sc.mu.Lock()
	sc.events[name]++
	sc.mu.Unlock()
}

// op returns the stats of an operation, creating them on first use.
func (sc *scenStats) op(name string) *opStats {
	sc.mu.RLock()
	o := sc.ops[name]
	sc.mu.RUnlock()
	if o != nil {
		return o
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if o = sc.ops[name]; o == nil {
		o = &opStats{hist: NewHistogram(), kinds: map[string]int64{}, parent: sc}
		if sc.m != nil {
			o.m = sc.m.op(name)
		}
		sc.ops[name] = o
	}
	return o
}

func (sc *scenStats) record(op string, d time.Duration, err error) {
	o := sc.op(op)
	kind := ""
	if err != nil {
		kind = Kind(err)
	}
	o.mu.Lock()
	o.hist.Record(d)
	o.reqs++
	if err != nil {
		o.errs++
		o.kinds[kind]++
	}
	o.mu.Unlock()
	if o.m != nil {
		o.m.observe(d, err != nil)
		if err != nil {
			sc.m.errorKind(kind).Inc()
		}
	}
}

// mergeInto adds every operation's latencies to h.
func (sc *scenStats) mergeInto(h *Histogram) {
	sc.mu.RLock()
	ops := slices.Collect(maps.Values(sc.ops))
	sc.mu.RUnlock()
	for _, o := range ops {
		o.mu.Lock()
		h.Merge(o.hist)
		o.mu.Unlock()
	}
}

// snapshot returns the stats of each operation and the events.
func (sc *scenStats) snapshot() (map[string]*Stats, map[string]int64) {
	sc.mu.RLock()
	ops := maps.Clone(sc.ops)
	events := maps.Clone(sc.events)
	sc.mu.RUnlock()
	out := map[string]*Stats{}
	for name, o := range ops {
		o.mu.Lock()
		s := &Stats{Requests: o.reqs, Errors: o.errs, ErrorsByKind: maps.Clone(o.kinds), Histogram: o.hist.Clone()}
		o.mu.Unlock()
		s.finish()
		out[name] = s
	}
	return out, events
}
