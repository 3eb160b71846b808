// Package ids issues ride ids in the seed's snowflake layout:
//
//	bit 63..60  0 (unused, so ids are positive int64s)
//	bit 59..18  42-bit time: milliseconds since Epoch (2026-01-01T00:00:00Z), good until 2165
//	bit 17..12  6-bit node: 0..63, one per id generator in the whole fleet
//	bit 11..0   12-bit sequence: 0..4095 within one millisecond of one node
//
// A Generator is monotonic (every id it issues is greater than the one
// before), and two generators with different nodes never issue the same id.
// NodeID derives a node from a region index and an instance, so that ids are
// unique across regions as well.
//
// When the clock goes backwards, a Generator waits for it to catch up if the
// rollback is at most Config.MaxWait, and otherwise refuses with a
// *ClockRollbackError until the clock has passed the last id's time again;
// both outcomes are counted. When a millisecond's 4096 sequence numbers are
// used up, it waits for the next millisecond.
//
// NextID (and Next, its int64 form) is lock-free: the generator's state is
// one atomic word holding the last id's time and sequence, advanced by
// compare-and-swap.
package ids

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Layout of an id.
const (
	TimeBits = 42
	NodeBits = 6
	SeqBits  = 12

	MaxNode = 1<<NodeBits - 1 // 63
	MaxSeq  = 1<<SeqBits - 1  // 4095
	maxTime = 1<<TimeBits - 1

	nodeShift = SeqBits
	timeShift = SeqBits + NodeBits
)

// How NodeID splits the 6 node bits: 3 for the region, 3 for the instance
// within the region, so up to 8 regions of up to 8 generators each.
const (
	RegionBits   = 3
	InstanceBits = NodeBits - RegionBits
	MaxRegions   = 1 << RegionBits
	MaxInstances = 1 << InstanceBits
)

// Epoch is time zero of the ids' 42-bit millisecond clock.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var epochMs = Epoch.UnixMilli()

// DefaultMaxWait is the largest clock rollback a Generator waits out. NTP
// slews far less than this; a step larger than it (a manual clock change, a
// VM resumed from a snapshot, injected skew being cleared) is refused rather
// than added to every ride request's latency.
const DefaultMaxWait = 10 * time.Millisecond

// ID is a ride id.
type ID int64

// Time returns the millisecond the id was issued in.
func (id ID) Time() time.Time { return time.UnixMilli(epochMs + int64(id)>>timeShift).UTC() }

// Node returns the node of the generator that issued the id.
func (id ID) Node() int { return int(id>>nodeShift) & MaxNode }

// Seq returns the id's sequence number within its millisecond and node.
func (id ID) Seq() int { return int(id) & MaxSeq }

// String returns the id in decimal.
func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

// Parse reads an id written by ID.String.
func Parse(s string) (ID, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n>>(TimeBits+NodeBits+SeqBits) != 0 {
		return 0, fmt.Errorf("parsing ride id %q: want a positive decimal snowflake id", s)
	}
	return ID(n), nil
}

// Make assembles an id from its parts; it is the inverse of Time, Node and
// Seq for times from Epoch on.
func Make(t time.Time, node, seq int) (ID, error) {
	ms := t.UnixMilli() - epochMs
	switch {
	case ms < 0 || ms > maxTime:
		return 0, fmt.Errorf("making an id: time %s is outside the id clock's range [%s, +%d ms]", t.UTC().Format(time.RFC3339Nano), Epoch.Format(time.RFC3339), int64(maxTime))
	case node < 0 || node > MaxNode:
		return 0, fmt.Errorf("making an id: node %d is outside [0, %d]", node, MaxNode)
	case seq < 0 || seq > MaxSeq:
		return 0, fmt.Errorf("making an id: sequence %d is outside [0, %d]", seq, MaxSeq)
	}
	return ID(ms<<timeShift | int64(node)<<nodeShift | int64(seq)), nil
}

// NodeID returns the node of instance (0..7) in the region at regionIndex
// (0..7, the region's position in the spec's region list). It fails when
// either is out of range: the 6 node bits cannot hold more.
func NodeID(regionIndex, instance int) (int, error) {
	if regionIndex < 0 || regionIndex >= MaxRegions {
		return 0, fmt.Errorf("deriving an id node: region index %d is outside [0, %d]; the id layout has room for %d regions", regionIndex, MaxRegions-1, MaxRegions)
	}
	if instance < 0 || instance >= MaxInstances {
		return 0, fmt.Errorf("deriving an id node: instance %d is outside [0, %d]; the id layout has room for %d generators per region", instance, MaxInstances-1, MaxInstances)
	}
	return regionIndex<<InstanceBits | instance, nil
}

// ClockRollbackError is returned by Next when the clock is further behind
// the last issued id than Config.MaxWait. Retry after Behind, or use
// another node.
type ClockRollbackError struct {
	Behind  time.Duration // how far the clock is behind the last id's time
	MaxWait time.Duration
}

func (e *ClockRollbackError) Error() string {
	return fmt.Sprintf("issuing a ride id: the clock went back %s, more than the %s the generator waits out; ids resume once the clock passes the last id's time", e.Behind, e.MaxWait)
}

// ErrClockOutOfRange is returned by Next when the clock is before Epoch or
// beyond the 42-bit millisecond range.
var ErrClockOutOfRange = errors.New("issuing a ride id: the clock is outside the id layout's range (2026-01-01 to 2165)")

// Config configures a Generator.
type Config struct {
	// Region labels the generator's metrics and logs.
	Region string
	// Node is the generator's node, 0..63; see NodeID. Two generators that
	// run at the same time must have different nodes.
	Node int
	// MaxWait is the largest clock rollback waited out (default
	// DefaultMaxWait); a larger one is refused. Negative means refuse every
	// rollback.
	MaxWait time.Duration
	// Now is the clock (default time.Now). Pass a faults.Injector's Clock
	// to let drills skew it.
	Now func() time.Time
	// Sleep waits for d (default: sleeps, then spins for the last
	// millisecond, so that a new millisecond is picked up at once). Tests
	// pass one that advances their fake clock.
	Sleep func(d time.Duration)
}

func (c *Config) defaults() {
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = spinSleep
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Node < 0 || c.Node > MaxNode {
		return fmt.Errorf("ids config: node %d is outside [0, %d]", c.Node, MaxNode)
	}
	return nil
}

// Generator issues ids for one node. It is safe for concurrent use.
type Generator struct {
	// state is the last id issued without its node bits:
	// (ms since Epoch) << SeqBits | seq. Zero before the first id.
	state atomic.Int64

	node    int64
	maxWait time.Duration
	now     func() time.Time
	sleep   func(time.Duration)
	log     *slog.Logger
	lastLog atomic.Int64 // unix nanoseconds of the last refusal logged

	waited, refused, exhausted prometheus.Counter
}

// New returns a generator for cfg.Node. It registers its metrics with reg
// (nil: unregistered); several generators may share one registry.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Generator, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rollbacks := telemetry.NewCounterVec(catalog.IDClockRollbacks)
	exhausted := telemetry.NewCounterVec(catalog.IDSequenceExhausted)
	if reg != nil {
		var err error
		if rollbacks, err = register(reg, rollbacks); err != nil {
			return nil, err
		}
		if exhausted, err = register(reg, exhausted); err != nil {
			return nil, err
		}
	}
	return &Generator{
		node:      int64(cfg.Node),
		maxWait:   cfg.MaxWait,
		now:       cfg.Now,
		sleep:     cfg.Sleep,
		log:       log.With("region", cfg.Region, "service", "ids", "node", cfg.Node),
		waited:    rollbacks.WithLabelValues(cfg.Region, catalog.IDRollbackWaited),
		refused:   rollbacks.WithLabelValues(cfg.Region, catalog.IDRollbackRefused),
		exhausted: exhausted.WithLabelValues(cfg.Region),
	}, nil
}

// register registers c, or returns the equal collector registered before.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("registering the id metrics: %w", err)
	}
	return c, nil
}

// Node returns the generator's node.
func (g *Generator) Node() int { return int(g.node) }

// Next issues the next id as an int64 (the order service's IDs interface);
// see NextID.
func (g *Generator) Next() (int64, error) {
	id, err := g.NextID()
	return int64(id), err
}

// NextID issues the next id. It waits out a clock rollback of at most
// MaxWait and the end of a millisecond whose sequence is used up; it returns
// a *ClockRollbackError for a larger rollback and ErrClockOutOfRange for a
// clock outside the layout's range.
func (g *Generator) NextID() (ID, error) {
	waited := false
	for {
		// Load the state before reading the clock: read the other way
		// round, a goroutine paused between the two would take another's
		// newer id for a clock rollback.
		last := g.state.Load()
		lastMs := last >> SeqBits
		now := g.now()
		ms := now.UnixMilli() - epochMs
		if ms < 0 || ms > maxTime {
			return 0, ErrClockOutOfRange
		}
		var next int64
		switch {
		case ms > lastMs:
			next = ms << SeqBits
		case ms == lastMs && last&MaxSeq < MaxSeq:
			next = last + 1
		case ms == lastMs:
			// Sequence used up: wait for the next millisecond.
			g.exhausted.Inc()
			g.sleep(time.UnixMilli(epochMs + ms + 1).Sub(now))
			continue
		default:
			// The clock is behind the last id: wait it out or refuse.
			behind := time.UnixMilli(epochMs + lastMs).Sub(now)
			if behind > g.maxWait {
				g.refused.Inc()
				g.logRefusal(now, behind)
				return 0, &ClockRollbackError{Behind: behind, MaxWait: max(g.maxWait, 0)}
			}
			if !waited {
				waited = true
				g.waited.Inc()
			}
			g.sleep(behind)
			continue
		}
		if g.state.CompareAndSwap(last, next) {
			return ID(next>>SeqBits<<timeShift | g.node<<nodeShift | next&MaxSeq), nil
		}
	}
}

// logRefusal logs a refusal at most once a second.
func (g *Generator) logRefusal(now time.Time, behind time.Duration) {
	prev := g.lastLog.Load()
	if now.UnixNano()-prev < int64(time.Second) && now.UnixNano() >= prev {
		return
	}
	if g.lastLog.CompareAndSwap(prev, now.UnixNano()) {
		g.log.Warn("refusing ride ids: the clock went back beyond the wait bound", "behind", behind, "max_wait", g.maxWait)
	}
}

// spinSleep sleeps for d, handing its last millisecond to a spin that
// yields the processor, because timers on most kernels wake up late by
// tens of microseconds to a millisecond, and a millisecond lost is 4096 ids.
func spinSleep(d time.Duration) {
	deadline := time.Now().Add(d)
	if d > 2*time.Millisecond {
		time.Sleep(d - time.Millisecond)
	}
	for time.Now().Before(deadline) {
		runtime.Gosched()
	}
}
