package hlc

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// DefaultMaxOffset is the default bound on how far a remote timestamp may
// run ahead of the local physical clock. It follows CockroachDB's default
// maximum clock offset: hosts kept by NTP agree within tens of
// milliseconds, so 500 ms leaves room for a slow sync while still refusing
// a clock that is plainly wrong (an injected skew of a second or more).
const DefaultMaxOffset = 500 * time.Millisecond

// Config configures a Clock.
type Config struct {
	// Region names the clock's region; it is the tie-breaker of every
	// timestamp the clock issues. Required.
	Region string
	// Now is the physical clock; default time.Now. Pass a region's
	// faults.Injector.Clock so that injected skew moves the HLC.
	Now func() time.Time
	// MaxOffset bounds how far ahead of the physical clock a remote
	// timestamp's wall time may be before Update refuses it; default
	// DefaultMaxOffset. Millisecond resolution.
	MaxOffset time.Duration
	// Registerer receives carpool_hlc_remote_rejected_total; nil keeps the
	// counter unregistered (Rejected still counts).
	Registerer prometheus.Registerer
}

func (c *Config) defaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxOffset == 0 {
		c.MaxOffset = DefaultMaxOffset
	}
}

// Validate checks the configuration after defaults are filled in.
func (c Config) Validate() error {
	if c.Region == "" {
		return errors.New("hlc config: region is required")
	}
	if c.MaxOffset < time.Millisecond {
		return fmt.Errorf("hlc config: max offset is %v; it must be at least 1ms", c.MaxOffset)
	}
	return nil
}

// ErrRemoteAhead matches (with errors.Is) every *RemoteAheadError.
var ErrRemoteAhead = errors.New("remote HLC timestamp too far ahead of the local clock")

// RemoteAheadError is returned by Update when a remote timestamp is further
// ahead of the local physical clock than the maximum offset. The clock is
// left unchanged.
type RemoteAheadError struct {
	Remote     Timestamp
	PhysicalMS int64 // the local physical clock when the timestamp was refused
	MaxOffset  time.Duration
}

// Error implements error.
func (e *RemoteAheadError) Error() string {
	return fmt.Sprintf("refusing remote HLC timestamp %s: it is %dms ahead of the local physical clock, more than the maximum offset %v (check the clocks of region %q)",
		e.Remote, e.Remote.WallMS-e.PhysicalMS, e.MaxOffset, e.Remote.Region)
}

// Is makes errors.Is(err, ErrRemoteAhead) true.
func (e *RemoteAheadError) Is(target error) bool { return target == ErrRemoteAhead }

// Clock is one region's hybrid logical clock. It is safe for concurrent
// use.
type Clock struct {
	region      string
	now         func() time.Time
	maxOffset   time.Duration
	maxOffsetMS int64
	rejected    prometheus.Counter
	nRejected   atomic.Uint64

	mu   sync.Mutex
	last Timestamp // without region
}

// New returns a clock configured by cfg.
func New(cfg Config) (*Clock, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	vec := telemetry.NewCounterVec(catalog.HLCRemoteRejected)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(vec); err != nil {
			are := &prometheus.AlreadyRegisteredError{}
			if !errors.As(err, are) {
				return nil, fmt.Errorf("registering %s: %w", catalog.HLCRemoteRejected.Name, err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("registering %s: another collector of a different kind holds the name", catalog.HLCRemoteRejected.Name)
			}
			vec = existing // several regions in one registry share the family
		}
	}
	return &Clock{
		region:      cfg.Region,
		now:         cfg.Now,
		maxOffset:   cfg.MaxOffset,
		maxOffsetMS: cfg.MaxOffset.Milliseconds(),
		rejected:    vec.WithLabelValues(cfg.Region),
	}, nil
}

// Region returns the region whose timestamps the clock issues.
func (c *Clock) Region() string { return c.region }

// MaxOffset returns the configured maximum offset.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Rejected returns how many remote timestamps Update has refused.
func (c *Clock) Rejected() uint64 { return c.nRejected.Load() }

// Now returns the timestamp of a local or send event: greater than every
// timestamp the clock issued or merged before. When the physical clock is
// ahead of the last reading it is taken with a zero logical counter;
// otherwise (the physical clock stalled or went back) the logical counter
// advances.
func (c *Clock) Now() Timestamp {
	pt := c.now().UnixMilli()
	c.mu.Lock()
	if pt > c.last.WallMS {
		c.last = Timestamp{WallMS: pt}
	} else {
		c.last = next(c.last.WallMS, uint64(c.last.Logical)+1)
	}
	ts := c.last
	c.mu.Unlock()
	ts.Region = c.region
	return ts
}

// Update merges the timestamp of a received event and returns the
// timestamp of the receive event: greater than both remote and every
// timestamp the clock issued or merged before. A remote timestamp whose
// wall time is more than the maximum offset ahead of the local physical
// clock is refused with a *RemoteAheadError (counted in
// carpool_hlc_remote_rejected_total) and the clock is left unchanged.
func (c *Clock) Update(remote Timestamp) (Timestamp, error) {
	pt := c.now().UnixMilli()
	if remote.WallMS > pt+c.maxOffsetMS {
		c.nRejected.Add(1)
		c.rejected.Inc()
		return Timestamp{}, &RemoteAheadError{Remote: remote, PhysicalMS: pt, MaxOffset: c.maxOffset}
	}
	c.mu.Lock()
	old := c.last
	wall := max(old.WallMS, remote.WallMS, pt)
	switch {
	case wall == old.WallMS && wall == remote.WallMS:
		c.last = next(wall, uint64(max(old.Logical, remote.Logical))+1)
	case wall == old.WallMS:
		c.last = next(wall, uint64(old.Logical)+1)
	case wall == remote.WallMS:
		c.last = next(wall, uint64(remote.Logical)+1)
	default:
		c.last = Timestamp{WallMS: wall}
	}
	ts := c.last
	c.mu.Unlock()
	ts.Region = c.region
	return ts, nil
}

// Last returns the newest timestamp the clock issued or merged (the zero
// timestamp before the first event) without advancing it.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	ts := c.last
	c.mu.Unlock()
	if !ts.IsZero() {
		ts.Region = c.region
	}
	return ts
}

// next builds the timestamp (wall, logical), carrying a logical counter
// that overflows 32 bits into the next millisecond. Reaching that needs
// four billion events within one millisecond of physical time; the carry
// keeps timestamps strictly increasing even then.
func next(wall int64, logical uint64) Timestamp {
	if logical > math.MaxUint32 {
		return Timestamp{WallMS: wall + 1}
	}
	return Timestamp{WallMS: wall, Logical: uint32(logical)}
}
