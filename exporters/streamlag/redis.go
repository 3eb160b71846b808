package streamlag

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of RedisConfig.
const (
	// DefaultCountLimit bounds how many entries a scrape counts on the
	// server for one group when Redis cannot tell the group's lag.
	DefaultCountLimit = 100000
	// DefaultMaxStreams bounds how many streams the patterns may match.
	DefaultMaxStreams = 1000
)

// RedisConfig configures a RedisReader.
type RedisConfig struct {
	// Client is the Redis client; required. The reader does not close it.
	Client redis.UniversalClient
	// Region is the region label of every lag read; required.
	Region string
	// Streams are stream keys or glob patterns (with *, ? or [); a pattern
	// is resolved on every scrape with SCAN MATCH pattern TYPE stream. At
	// least one. A named stream that does not exist is a scrape error.
	Streams []string
	// CountLimit bounds the entries counted on the server for one group
	// whose lag Redis cannot tell; past it the lag reported is the limit (a
	// lower bound) and a warning is logged. Default DefaultCountLimit.
	CountLimit int64
	// MaxStreams bounds the streams the patterns may match; the rest are
	// left out and a warning is logged. Default DefaultMaxStreams.
	MaxStreams int
	// AlwaysCount counts every lagging group's entries on the server
	// (bounded by CountLimit) instead of trusting XINFO's lag when it looks
	// consistent: exact even after trimming overtook a group, at O(lag)
	// server work per group per scrape.
	AlwaysCount bool
	// Log receives warnings; default discard.
	Log *slog.Logger
}

func (c *RedisConfig) defaults() {
	if c.CountLimit == 0 {
		c.CountLimit = DefaultCountLimit
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	c.Log = discard(c.Log)
}

// Validate checks the configuration.
func (c RedisConfig) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("redis stream lag: no client"))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("redis stream lag: region is empty; set the region label the lags are exported under"))
	}
	if len(c.Streams) == 0 {
		errs = append(errs, errors.New("redis stream lag: no stream given; name stream keys or glob patterns (e.g. positions:*)"))
	}
	for _, s := range c.Streams {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, errors.New("redis stream lag: an empty stream name"))
		}
	}
	if c.CountLimit < 1 {
		errs = append(errs, fmt.Errorf("redis stream lag: count limit is %d; it must be at least 1", c.CountLimit))
	}
	if c.MaxStreams < 1 {
		errs = append(errs, fmt.Errorf("redis stream lag: max streams is %d; it must be at least 1", c.MaxStreams))
	}
	return errors.Join(errs...)
}

// RedisReader implements Reader for Redis Streams consumer groups.
//
// Messages behind come from XINFO GROUPS `lag` when Redis can tell it and
// it is consistent with the stream. It is nil after an XDEL past the
// group's position or for a group created at an explicit id without
// ENTRIESREAD, and Redis 7.0 keeps counting entries trimmed before the
// group read them; in those cases the entries after the group's
// last-delivered-id are counted on the server (bounded by CountLimit). When
// trimming has overtaken the group, every retained entry is undelivered.
//
// Seconds behind come from the millisecond part of the id of the first
// entry after last-delivered-id (XRANGE key (id + COUNT 1): the time Redis
// added the oldest undelivered entry, for streams with generated ids.
type RedisReader struct {
	cfg   RedisConfig
	count *redis.Script

	mu     sync.Mutex
	warned map[string]bool // warnings logged once per cause
}

// countAfterScript counts up to ARGV[2] entries after an id (exclusive) and
// returns the count and the first one's id, without sending the entries.
const countAfterScript = `
local r = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
if #r == 0 then return {0, ''} end
return {#r, r[1][1]}
`

// NewRedisReader returns a reader of cfg's streams.
func NewRedisReader(cfg RedisConfig) (*RedisReader, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RedisReader{cfg: cfg, count: redis.NewScript(countAfterScript), warned: map[string]bool{}}, nil
}

// isPattern reports whether a stream name is a SCAN glob pattern.
func isPattern(s string) bool { return strings.ContainsAny(s, "*?[") }

// streams resolves the configured names and patterns into stream keys.
func (r *RedisReader) streams(ctx context.Context) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(k string) bool {
		if seen[k] {
			return true
		}
		if len(out) >= r.cfg.MaxStreams {
			r.warnOnce("max-streams", "more streams match than max streams; the rest are not exported", "max_streams", r.cfg.MaxStreams)
			return false
		}
		seen[k] = true
		out = append(out, k)
		return true
	}
	for _, s := range r.cfg.Streams {
		if !isPattern(s) {
			add(s)
			continue
		}
		var cursor uint64
		// Bounded: SCAN ends when the cursor returns to 0; the iteration cap
		// guards against a server that never does.
		for range 100000 {
			keys, next, err := r.cfg.Client.ScanType(ctx, cursor, s, 1000, "stream").Result()
			if err != nil {
				return out, fmt.Errorf("scanning redis for streams matching %q: %w", s, err)
			}
			full := false
			for _, k := range keys {
				if !add(k) {
					full = true
					break
				}
			}
			cursor = next
			if cursor == 0 || full {
				break
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Read implements Reader.
func (r *RedisReader) Read(ctx context.Context, _ time.Time) ([]Lag, error) {
	keys, err := r.streams(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	type info struct {
		groups *redis.XInfoGroupsCmd
		stream *redis.XInfoStreamCmd
	}
	infos := make([]info, len(keys))
	pipe := r.cfg.Client.Pipeline()
	for i, k := range keys {
		infos[i] = info{groups: pipe.XInfoGroups(ctx, k), stream: pipe.XInfoStream(ctx, k)}
	}
	if _, err := pipe.Exec(ctx); err != nil && !isReply(err) {
		return nil, fmt.Errorf("reading XINFO of %d redis streams: %w", len(keys), err)
	}

	// Second round: the oldest undelivered entry of each lagging group, and
	// a server-side count where Redis cannot tell the lag.
	type pending struct {
		lag    Lag
		oldest *redis.XMessageSliceCmd // the first entry after last-delivered-id
		count  *redis.Cmd              // countAfterScript
	}
	var out []Lag
	var todo []pending
	var errs []error
	pipe = r.cfg.Client.Pipeline()
	for i, k := range keys {
		gs, gErr := infos[i].groups.Result()
		st, sErr := infos[i].stream.Result()
		if err := errors.Join(gErr, sErr); err != nil {
			if isNoSuchKey(err) {
				err = errors.New("the stream does not exist")
			}
			errs = append(errs, fmt.Errorf("reading redis stream %s: %w", k, err))
			continue
		}
		for _, g := range gs {
			l := Lag{Region: r.cfg.Region, Stream: k, Group: g.Name}
			m, how := groupLag(st, g)
			if how == lagFromRedis && r.cfg.AlwaysCount {
				how = lagCount
			}
			switch how {
			case lagNone:
				out = append(out, l)
			case lagFromFirst:
				l.Messages = m
				l.Oldest = idTime(st.FirstEntry.ID)
				out = append(out, l)
			case lagFromRedis:
				l.Messages = m
				todo = append(todo, pending{lag: l, oldest: pipe.XRangeN(ctx, k, "("+g.LastDeliveredID, "+", 1)})
			case lagCount:
				todo = append(todo, pending{lag: l, count: r.count.Eval(ctx, pipe, []string{k}, g.LastDeliveredID, r.cfg.CountLimit)})
			}
		}
	}
	if len(todo) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !isReply(err) {
			return out, errors.Join(append(errs, fmt.Errorf("reading the oldest undelivered entries of %d redis consumer groups: %w", len(todo), err))...)
		}
	}
	for _, p := range todo {
		l := p.lag
		switch {
		case p.oldest != nil:
			msgs, err := p.oldest.Result()
			if err != nil {
				errs = append(errs, fmt.Errorf("finding the oldest undelivered entry of group %s of redis stream %s: %w", l.Group, l.Stream, err))
				continue
			}
			if len(msgs) == 0 { // delivered meanwhile
				l.Messages = 0
			} else {
				l.Oldest = idTime(msgs[0].ID)
			}
		default:
			res, err := p.count.Slice()
			if err == nil && len(res) != 2 {
				err = fmt.Errorf("the count script answered %d values, not 2", len(res))
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("counting the undelivered entries of group %s of redis stream %s: %w", l.Group, l.Stream, err))
				continue
			}
			n, _ := res[0].(int64)
			first, _ := res[1].(string)
			l.Messages = n
			if n > 0 {
				l.Oldest = idTime(first)
			}
			if n >= r.cfg.CountLimit {
				r.warnOnce("count-limit/"+l.Stream+"/"+l.Group, "the group is further behind than the count limit; its lag is exported as the limit (a lower bound)",
					"stream", l.Stream, "group", l.Group, "count_limit", r.cfg.CountLimit)
			}
		}
		out = append(out, l)
	}
	return out, errors.Join(errs...)
}

func (r *RedisReader) warnOnce(key, msg string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.warned[key] {
		return
	}
	r.warned[key] = true
	r.cfg.Log.Warn(msg, args...)
}

// How a group's lag is found.
const (
	lagNone      = iota // nothing undelivered
	lagFromFirst        // trimming overtook the group: every retained entry
	lagFromRedis        // XINFO's lag is consistent: use it, look up the oldest
	lagCount            // Redis cannot tell: count on the server
)

// groupLag decides from XINFO STREAM and XINFO GROUPS how to find a group's
// lag, and returns the messages when they are known already.
func groupLag(st *redis.XInfoStream, g redis.XInfoGroup) (int64, int) {
	if st.Length == 0 {
		return 0, lagNone
	}
	delivered, _ := parseID(g.LastDeliveredID)
	first, _ := parseID(st.FirstEntry.ID)
	last, _ := parseID(st.LastGeneratedID)
	switch {
	case delivered.less(first):
		return st.Length, lagFromFirst
	case !delivered.less(last):
		return 0, lagNone
	// Redis's lag is entries-added − entries-read. It is nil (-1) when
	// Redis cannot tell; it is too high when trimming removed entries the
	// group never read, which shows while those outnumber the retained
	// entries the group has read (entries-read < entries removed) or push
	// the lag past the stream's length. Redis 6 has no lag field (0 here,
	// which the case above rules out as the truth).
	case g.Lag > 0 && g.Lag <= st.Length && (st.EntriesAdded == 0 || g.EntriesRead >= st.EntriesAdded-st.Length):
		return g.Lag, lagFromRedis
	default:
		return 0, lagCount
	}
}

// isReply reports whether err is an error reply of the server to one
// command (reported for that stream) rather than a failed connection (the
// whole scrape fails).
func isReply(err error) bool {
	_, ok := errors.AsType[redis.Error](err)
	return ok
}

// isNoSuchKey reports whether err is Redis's answer for XINFO on a key that
// does not exist.
func isNoSuchKey(err error) bool { return err != nil && strings.Contains(err.Error(), "no such key") }

// streamID is a Redis stream entry id, <ms>-<seq>.
type streamID struct{ ms, seq uint64 }

func (a streamID) less(b streamID) bool { return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq) }

func parseID(s string) (streamID, bool) {
	msStr, seqStr, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(msStr, 10, 64)
	seq, err2 := strconv.ParseUint(seqStr, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

// idTime is the time in a generated stream id (its millisecond part); zero
// for an id that does not parse.
func idTime(id string) time.Time {
	sid, ok := parseID(id)
	if !ok {
		return time.Time{}
	}
	return time.UnixMilli(int64(sid.ms))
}
