// Package memhistory keeps the SLA report's history in memory: the SLI
// minute rollups, the engine's breaker transitions and the drill results
// that ClickHouse's sli_minutes, sla_events and drill_results tables hold in
// production. It lets the live demo (`carpoolsla demo`) serve the report API
// and the status page with nothing but Go on the machine.
//
// A Store implements report.History with exactly the answers of
// report/chstore over the same records (a conformance test checks it against
// a real ClickHouse 18.16): every record is counted once per event id (a
// replayed minute or event replaces the one held, as ReplacingMergeTree does
// after a merge), times are whole seconds (ClickHouse's DateTime), windows
// are [From, To) cut at whole seconds, and breaker transitions come with the
// state in force at the window's start.
//
// It is also where the platform writes that history: rollup.Sink
// (WriteMinutes), engine.EventSink (Emit) and RecordDrill for drill results
// (chsink.DrillResult, the ClickHouse record, so one value can go to either
// store).
//
// The store is bounded in time and size. Retention works like
// chsink.RetentionJob, by whole UTC days: with a retention of N days the last
// N calendar days (today included) are kept, older days are dropped when a
// write notices the day has turned, and a row older than that is dropped on
// write (Stats.Expired). Breaker transitions are the exception: the last
// transitions of each region before the retention window are kept, so the
// state in force at the start of any window inside the retention stays
// right. MaxRows bounds the rows held (minutes, transitions and drills
// together): a write that would pass it stores nothing and returns an error
// wrapping ErrFull; nothing inside the retention is ever evicted to make
// room.
//
// A Store is safe for concurrent use. Reads take the lock one day of
// minutes at a time, so a month's report does not hold writers back for the
// whole read, and call the report's callback with the lock released.
package memhistory

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/rollup"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// Defaults of Config.
const (
	// DefaultRetention keeps a month to date and the whole previous month's
	// last days: 35 days.
	DefaultRetention = 35 * 24 * time.Hour
	// DefaultMaxRows is about 1.6 retentions of the shipped spec (3 regions ×
	// 8 SLOs × 1440 minutes × 35 days = 1,209,600 minute rows): at most
	// about 180 MB at the ~90 bytes a minute row measured.
	DefaultMaxRows = 2_000_000
)

// ErrFull is wrapped by the error of a write that would take the store past
// Config.MaxRows. Nothing of that write is stored.
var ErrFull = errors.New("memhistory: the store is full")

// Config configures a Store. The zero value is usable: every field has a
// default.
type Config struct {
	// Retention is how long rows are kept, in whole UTC days rounded up
	// (default 35 days, enough for a month to date; at least one day).
	Retention time.Duration
	// MaxRows bounds the rows held: SLI minutes, breaker transitions and
	// drill results together (default 2,000,000).
	MaxRows int
	// Now is the clock (default time.Now). It decides what the retention
	// drops and fills a record's zero time.
	Now func() time.Time
}

// Validate checks the fields (zero means the default).
func (c *Config) Validate() error {
	var errs []error
	if c.Retention < 0 || (c.Retention > 0 && c.Retention < 24*time.Hour) {
		errs = append(errs, fmt.Errorf("memhistory: Retention is %s; give at least one day (default %s)", c.Retention, DefaultRetention))
	}
	if c.MaxRows < 0 {
		errs = append(errs, fmt.Errorf("memhistory: MaxRows is %d; give a positive bound on the rows held, or 0 for the default %d", c.MaxRows, DefaultMaxRows))
	}
	return errors.Join(errs...)
}

// Stats are a store's counts.
type Stats struct {
	// Minutes, Events and Drills are the rows held: SLI minutes, breaker
	// transitions and drill results.
	Minutes, Events, Drills int
	// Duplicates counts written rows whose event id was held already (a
	// replay): each replaced the row held and was counted once.
	Duplicates uint64
	// Expired counts rows dropped on write because they were older than the
	// retention.
	Expired uint64
	// Trimmed counts rows the retention dropped after they were stored.
	Trimmed uint64
	// Rejected counts rows refused because the store was full (ErrFull).
	Rejected uint64
	// Ignored counts engine events of kinds other than breaker.
	Ignored uint64
}

// Store is an in-memory SLA history. It implements report.History,
// rollup.Sink and engine.EventSink.
type Store struct {
	cfg     Config
	days    int // retention in whole days
	maxRows int

	mu sync.RWMutex
	// trimmedTo is the oldest UTC day (Unix days) the last trim kept.
	trimmedTo int64
	min       minutes
	ev        events
	dr        drills
	stats     Stats
}

var (
	_ report.History   = (*Store)(nil)
	_ rollup.Sink      = (*Store)(nil)
	_ engine.EventSink = (*Store)(nil)
)

// New returns an empty store.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.MaxRows == 0 {
		cfg.MaxRows = DefaultMaxRows
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{cfg: cfg, days: chsink.RetentionDays(cfg.Retention), maxRows: cfg.MaxRows}
	s.min.init()
	s.ev.init()
	s.dr.init()
	return s, nil
}

// Stats returns the store's counts.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.stats
	st.Minutes, st.Events, st.Drills = len(s.min.ids), len(s.ev.byID), len(s.dr.byID)
	return st
}

const secondsPerDay = 86400

// unixDay is the UTC day (days since the Unix epoch) of Unix second sec.
func unixDay(sec int64) int64 {
	if sec < 0 {
		return (sec - (secondsPerDay - 1)) / secondsPerDay
	}
	return sec / secondsPerDay
}

// oldestDay is the first UTC day the retention keeps at now: the last
// s.days calendar days, today included (chsink.OldestKeptDay in UTC).
func (s *Store) oldestDay(now time.Time) int64 {
	return unixDay(now.Unix()) - int64(s.days-1)
}

// rowsLocked is the number of rows held.
func (s *Store) rowsLocked() int { return len(s.min.ids) + len(s.ev.byID) + len(s.dr.byID) }

// trimLocked drops what the retention no longer keeps, once per new oldest
// day, and returns the oldest day kept.
func (s *Store) trimLocked(now time.Time) int64 {
	oldest := s.oldestDay(now)
	if oldest <= s.trimmedTo {
		return oldest
	}
	s.trimmedTo = oldest
	s.stats.Trimmed += uint64(s.min.trim(oldest))
	s.stats.Trimmed += uint64(s.ev.trim(oldest * secondsPerDay))
	s.stats.Trimmed += uint64(s.dr.trim(oldest * secondsPerDay))
	return oldest
}

// fullLocked returns the ErrFull error for adding n new rows, or nil when
// they fit.
func (s *Store) fullLocked(n int, what string) error {
	held := s.rowsLocked()
	if held+n <= s.maxRows {
		return nil
	}
	s.stats.Rejected += uint64(n)
	return fmt.Errorf("%w: %d %s would take the %d rows held past MaxRows %d; nothing of this write was stored: raise MaxRows or shorten Retention (%d days)",
		ErrFull, n, what, held, s.maxRows, s.days)
}
