package streamlag

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Position says which sequence of a JetStream consumer its lag counts from.
type Position string

// Positions of a JetStream consumer.
const (
	// PositionDelivered counts what was not yet delivered (num_pending),
	// as the Redis reader does: messages behind a group's last-delivered-id.
	PositionDelivered Position = "delivered"
	// PositionAckFloor counts what was not yet acknowledged (num_pending +
	// num_ack_pending), from the consumer's ack floor.
	PositionAckFloor Position = "ack_floor"
)

// NATSConfig configures a NATSReader.
type NATSConfig struct {
	// JS is the JetStream context; required. The reader does not close its
	// connection.
	JS jetstream.JetStream
	// Region is the region label of every lag read; required.
	Region string
	// Streams are the streams whose consumers are read; empty reads every
	// stream of the account.
	Streams []string
	// Position is where a consumer's lag starts; default PositionDelivered.
	Position Position
	// TableSize bounds each stream's lookup table of (sequence, time)
	// samples, one taken per scrape; default DefaultTableSize.
	TableSize int
	// MaxStreams bounds the streams read when Streams is empty; default
	// DefaultMaxStreams.
	MaxStreams int
	// Log receives warnings; default discard.
	Log *slog.Logger
}

func (c *NATSConfig) defaults() {
	if c.Position == "" {
		c.Position = PositionDelivered
	}
	if c.TableSize == 0 {
		c.TableSize = DefaultTableSize
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	c.Log = discard(c.Log)
}

// Validate checks the configuration.
func (c NATSConfig) Validate() error {
	var errs []error
	if c.JS == nil {
		errs = append(errs, errors.New("nats stream lag: no JetStream context"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("nats stream lag: region is empty; set the region label the lags are exported under"))
	}
	for _, s := range c.Streams {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, errors.New("nats stream lag: an empty stream name"))
		}
	}
	if c.Position != PositionDelivered && c.Position != PositionAckFloor {
		errs = append(errs, fmt.Errorf("nats stream lag: position %q is neither %q nor %q", c.Position, PositionDelivered, PositionAckFloor))
	}
	if c.TableSize < 2 {
		errs = append(errs, fmt.Errorf("nats stream lag: table size is %d; interpolation needs at least 2 samples", c.TableSize))
	}
	if c.MaxStreams < 1 {
		errs = append(errs, fmt.Errorf("nats stream lag: max streams is %d; it must be at least 1", c.MaxStreams))
	}
	return errors.Join(errs...)
}

// errConnectionLost ends a scrape whose NATS connection dropped.
var errConnectionLost = errors.New("the nats connection was lost during the scrape")

// NATSReader implements Reader for NATS JetStream consumers.
//
// Messages behind are the consumer's num_pending (plus num_ack_pending from
// the ack floor). Seconds behind are interpolated the way kafka-lag-exporter
// does: every scrape adds a sample (the stream's last sequence, the time of
// that message) to a bounded lookup table per stream, and a consumer at
// sequence s is now − the interpolated time at which the stream reached
// s+1, its oldest unprocessed message. The stream's first retained message
// is an exact sample in front of the table; a consumer behind it is as old
// as it. See interpolate for the edges and the error.
type NATSReader struct {
	cfg NATSConfig

	mu     sync.Mutex
	tables map[string]*seqTable // by stream name
}

// NewNATSReader returns a reader of cfg's streams.
func NewNATSReader(cfg NATSConfig) (*NATSReader, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &NATSReader{cfg: cfg, tables: map[string]*seqTable{}}, nil
}

// Read implements Reader.
func (r *NATSReader) Read(ctx context.Context, now time.Time) ([]Lag, error) {
	// A disconnected client holds requests until the scrape times out:
	// fail at once instead, and end the requests in flight when the
	// connection drops during the scrape.
	if nc := r.cfg.JS.Conn(); nc != nil {
		changed := nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
		defer nc.RemoveStatusListener(changed)
		if st := nc.Status(); st != nats.CONNECTED {
			return nil, fmt.Errorf("reading nats jetstream consumers: the connection to %s is %s", nc.ConnectedUrlRedacted(), st)
		}
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		go func() {
			select {
			case <-changed:
				cancel(errConnectionLost)
			case <-ctx.Done():
			}
		}()
	}
	names := r.cfg.Streams
	if len(names) == 0 {
		var err error
		if names, err = r.streamNames(ctx); err != nil {
			return nil, err
		}
	}
	var out []Lag
	var errs []error
	for _, name := range names {
		lags, err := r.readStream(ctx, name, now)
		out = append(out, lags...)
		if err != nil {
			if cause := context.Cause(ctx); cause == errConnectionLost {
				err = fmt.Errorf("%w: %w", err, cause)
			}
			errs = append(errs, err)
		}
	}
	r.forget(names)
	return out, errors.Join(errs...)
}

func (r *NATSReader) streamNames(ctx context.Context) ([]string, error) {
	l := r.cfg.JS.StreamNames(ctx)
	var names []string
	for n := range l.Name() { // closed by the lister at the end or on error
		if len(names) < r.cfg.MaxStreams {
			names = append(names, n)
		}
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("listing nats jetstream streams: %w", err)
	}
	if len(names) == r.cfg.MaxStreams {
		r.cfg.Log.Warn("as many streams as max streams; any others are not exported", "max_streams", r.cfg.MaxStreams)
	}
	slices.Sort(names)
	return names, nil
}

// readStream reads one stream's consumers, then the stream: read in that
// order, the stream's last sequence is at or past every consumer's.
func (r *NATSReader) readStream(ctx context.Context, name string, now time.Time) ([]Lag, error) {
	s, err := r.cfg.JS.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading nats jetstream stream %s: %w", name, err)
	}
	var infos []*jetstream.ConsumerInfo
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		infos = append(infos, ci)
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("listing the consumers of nats jetstream stream %s: %w", name, err)
	}
	si, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading nats jetstream stream %s: %w", name, err)
	}
	st := si.State

	r.mu.Lock()
	defer r.mu.Unlock()
	tbl := r.tables[name]
	if tbl == nil {
		tbl = newSeqTable(r.cfg.TableSize)
		r.tables[name] = tbl
	}
	if st.LastSeq > 0 && !st.LastTime.IsZero() {
		tbl.add(st.LastSeq, st.LastTime)
	}
	anchor := point{seq: st.FirstSeq, t: st.FirstTime}
	if st.Msgs == 0 {
		anchor = point{}
	}
	out := make([]Lag, 0, len(infos))
	for _, ci := range infos {
		l := Lag{Region: r.cfg.Region, Stream: name, Group: ci.Name}
		pos := ci.Delivered.Stream
		l.Messages = int64(ci.NumPending)
		if r.cfg.Position == PositionAckFloor {
			pos = ci.AckFloor.Stream
			l.Messages += int64(ci.NumAckPending)
		}
		if l.Messages > 0 {
			next := max(pos+1, st.FirstSeq) // behind the first retained: as old as it
			if t, ok := tbl.timeOf(next, anchor, now); ok {
				l.Oldest = t
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// forget drops the tables of streams no longer read.
func (r *NATSReader) forget(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range r.tables {
		if !keep[name] {
			delete(r.tables, name)
		}
	}
}
