package location

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStreamConfig configures a RedisStream.
type RedisStreamConfig struct {
	// Addr is the Redis server's host:port. Required unless Client is set.
	Addr string
	// Client, when set, is used instead of dialling Addr; Close leaves it
	// open.
	Client redis.UniversalClient
	// Name is the stream's key; default "positions".
	Name string
	// MaxLen bounds the stream: XADD MAXLEN ~ MaxLen (Redis trims whole
	// radix-tree nodes, so the length may exceed it by up to ~100 entries).
	// Default DefaultMaxLen.
	MaxLen int64
	// ClaimAfter is the XAUTOCLAIM min-idle-time: how long a delivered
	// message may stay unacknowledged before another consumer may reclaim
	// it. Default DefaultClaimAfter.
	ClaimAfter time.Duration
	// ClaimInterval is how often a consumer runs XAUTOCLAIM; default
	// ClaimAfter/2, at least 100 ms.
	ClaimInterval time.Duration
	// Timeout bounds dialling and each command (plus the blocking time of
	// XREADGROUP); default 2 s.
	Timeout time.Duration
	// Now is the clock of the claim interval; default time.Now.
	Now func() time.Time
}

func (c *RedisStreamConfig) defaults() {
	if c.Name == "" {
		c.Name = "positions"
	}
	if c.MaxLen == 0 {
		c.MaxLen = DefaultMaxLen
	}
	if c.ClaimAfter == 0 {
		c.ClaimAfter = DefaultClaimAfter
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = max(c.ClaimAfter/2, 100*time.Millisecond)
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks the configuration after defaults are applied.
func (c RedisStreamConfig) Validate() error {
	switch {
	case c.Addr == "" && c.Client == nil:
		return errors.New("redis stream: set the Redis address (host:port)")
	case c.MaxLen < 1:
		return fmt.Errorf("redis stream max length is %d; it must be at least 1", c.MaxLen)
	case c.ClaimAfter < time.Millisecond:
		return fmt.Errorf("redis stream claim timeout is %s; XAUTOCLAIM counts milliseconds, so it must be at least 1ms", c.ClaimAfter)
	case c.ClaimInterval < 0 || c.Timeout < 0:
		return errors.New("redis stream claim interval and timeout must not be negative")
	}
	return nil
}

// RedisStream is the Stream on Redis Streams: XADD with MAXLEN ~ to
// publish, XREADGROUP and XACK for consumer groups, and XAUTOCLAIM to take
// over the pending entries of a consumer that died. Safe for concurrent
// use.
type RedisStream struct {
	cfg    RedisStreamConfig
	rdb    redis.UniversalClient
	owned  bool
	count  *redis.Script
	mu     sync.Mutex
	claims map[[2]string]*claimCursor // by group and consumer
}

type claimCursor struct {
	start string // XAUTOCLAIM cursor; "0-0" when a scan is complete
	last  time.Time
}

// countAfterScript counts the entries after an id (exclusive) and returns
// the first one's id, without sending the entries to the client.
const countAfterScript = `
local r = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
if #r == 0 then return {0, ''} end
return {#r, r[1][1]}
`

// NewRedisStream returns a stream on the Redis server at cfg.Addr. It does
// not dial: the first command does.
func NewRedisStream(cfg RedisStreamConfig) (*RedisStream, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &RedisStream{cfg: cfg, rdb: cfg.Client, count: redis.NewScript(countAfterScript), claims: make(map[[2]string]*claimCursor)}
	if s.rdb == nil {
		s.rdb = redis.NewClient(&redis.Options{
			Addr:                  cfg.Addr,
			DialTimeout:           cfg.Timeout,
			ReadTimeout:           cfg.Timeout,
			WriteTimeout:          cfg.Timeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            1,
		})
		s.owned = true
	}
	return s, nil
}

// Name implements Stream.
func (s *RedisStream) Name() string { return s.cfg.Name }

// Client returns the Redis client the stream uses.
func (s *RedisStream) Client() redis.UniversalClient { return s.rdb }

func (s *RedisStream) xaddArgs(p Position) *redis.XAddArgs {
	values := []string{
		"driver_id", p.DriverID,
		"lat", strconv.FormatFloat(p.Lat, 'f', -1, 64),
		"lng", strconv.FormatFloat(p.Lng, 'f', -1, 64),
		"ts", strconv.FormatInt(p.TS.UnixNano(), 10),
	}
	if p.TraceParent != "" {
		values = append(values, "traceparent", p.TraceParent)
	}
	return &redis.XAddArgs{Stream: s.cfg.Name, MaxLen: s.cfg.MaxLen, Approx: true, Values: values}
}

// Publish implements Stream: XADD key MAXLEN ~ n * field value ...
func (s *RedisStream) Publish(ctx context.Context, p Position) error {
	if err := s.rdb.XAdd(ctx, s.xaddArgs(p)).Err(); err != nil {
		return fmt.Errorf("publishing a position to redis stream %s: %w", s.cfg.Name, err)
	}
	return nil
}

// PublishBatch appends several positions in one pipelined round trip.
func (s *RedisStream) PublishBatch(ctx context.Context, ps []Position) error {
	if len(ps) == 1 {
		return s.Publish(ctx, ps[0])
	}
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, p := range ps {
			pipe.XAdd(ctx, s.xaddArgs(p))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publishing %d positions to redis stream %s: %w", len(ps), s.cfg.Name, err)
	}
	return nil
}

// CreateGroup implements Stream: XGROUP CREATE key group 0 MKSTREAM, where
// BUSYGROUP (the group exists) is success.
func (s *RedisStream) CreateGroup(ctx context.Context, group string) error {
	if group == "" {
		return errors.New("creating a consumer group: the group name is empty")
	}
	err := s.rdb.XGroupCreateMkStream(ctx, s.cfg.Name, group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("creating consumer group %q on redis stream %s: %w", group, s.cfg.Name, err)
	}
	return nil
}

// Read implements Stream: XAUTOCLAIM (every ClaimInterval, or at once while
// a scan of the pending list is unfinished) for messages idle longer than
// ClaimAfter, then XREADGROUP ... STREAMS key > for new ones, blocking up
// to wait only when nothing was reclaimed.
func (s *RedisStream) Read(ctx context.Context, group, consumer string, max int, wait time.Duration) ([]Message, error) {
	if max < 1 {
		return nil, nil
	}
	var out []Message
	if start, ok := s.claimDue(group, consumer); ok {
		msgs, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.cfg.Name, Group: group, Consumer: consumer,
			MinIdle: s.cfg.ClaimAfter, Start: start, Count: int64(max),
		}).Result()
		if err != nil {
			return nil, s.groupErr("reclaiming pending messages of", group, err)
		}
		s.claimDone(group, consumer, next)
		for _, m := range msgs {
			out = append(out, decodeXMessage(m, true))
		}
	}
	if len(out) == max {
		return out, nil
	}
	block := wait
	if len(out) > 0 || wait <= 0 {
		block = -1 // no BLOCK argument: answer at once
	}
	streams, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: group, Consumer: consumer, Streams: []string{s.cfg.Name, ">"},
		Count: int64(max - len(out)), Block: block,
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, s.groupErr("reading", group, err)
	}
	for _, st := range streams {
		for _, m := range st.Messages {
			out = append(out, decodeXMessage(m, false))
		}
	}
	return out, nil
}

// claimDue reports whether consumer should run XAUTOCLAIM now and from
// which cursor.
func (s *RedisStream) claimDue(group, consumer string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.claims[[2]string{group, consumer}]
	if !ok {
		return "0-0", true
	}
	if c.start != "0-0" || s.cfg.Now().Sub(c.last) >= s.cfg.ClaimInterval {
		return c.start, true
	}
	return "", false
}

func (s *RedisStream) claimDone(group, consumer, next string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if next == "" {
		next = "0-0"
	}
	s.claims[[2]string{group, consumer}] = &claimCursor{start: next, last: s.cfg.Now()}
}

func (s *RedisStream) groupErr(what, group string, err error) error {
	if strings.HasPrefix(err.Error(), "NOGROUP") {
		return fmt.Errorf("%s group %q of redis stream %s: %w", what, group, s.cfg.Name, ErrUnknownGroup)
	}
	return fmt.Errorf("%s group %q of redis stream %s: %w", what, group, s.cfg.Name, err)
}

// decodeXMessage turns a stream entry into a Message; a malformed entry
// gets Err.
func decodeXMessage(m redis.XMessage, redelivered bool) Message {
	msg := Message{ID: m.ID, Redelivered: redelivered}
	if id, ok := parseStreamID(m.ID); ok {
		msg.Added = time.UnixMilli(int64(id.ms))
	}
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	var err error
	p := Position{DriverID: str("driver_id"), TraceParent: str("traceparent")}
	if p.Lat, err = strconv.ParseFloat(str("lat"), 64); err != nil {
		msg.Err = fmt.Errorf("entry %s: lat: %w", m.ID, err)
		return msg
	}
	if p.Lng, err = strconv.ParseFloat(str("lng"), 64); err != nil {
		msg.Err = fmt.Errorf("entry %s: lng: %w", m.ID, err)
		return msg
	}
	ns, err := strconv.ParseInt(str("ts"), 10, 64)
	if err != nil {
		msg.Err = fmt.Errorf("entry %s: ts: %w", m.ID, err)
		return msg
	}
	p.TS = time.Unix(0, ns)
	if p.DriverID == "" {
		msg.Err = fmt.Errorf("entry %s: no driver_id", m.ID)
		return msg
	}
	msg.Position = p
	return msg
}

// Ack implements Stream: XACK.
func (s *RedisStream) Ack(ctx context.Context, group string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.rdb.XAck(ctx, s.cfg.Name, group, ids...).Err(); err != nil {
		return s.groupErr("acknowledging messages in", group, err)
	}
	return nil
}

// Lag implements Stream from XINFO GROUPS and XINFO STREAM. It returns the
// group's lag field when Redis can tell it and it is consistent with the
// stream; otherwise it counts the entries after the group's
// last-delivered-id on the server. The lag field is nil after an XDEL past
// the group's position or for a group created at an explicit id, and Redis
// 7.0 overstates it for good once trimming has overtaken the group (the
// trimmed entries stay counted): both are corrected here.
func (s *RedisStream) Lag(ctx context.Context, group string) (int64, time.Time, error) {
	var groupsCmd *redis.XInfoGroupsCmd
	var streamCmd *redis.XInfoStreamCmd
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		groupsCmd = pipe.XInfoGroups(ctx, s.cfg.Name)
		streamCmd = pipe.XInfoStream(ctx, s.cfg.Name)
		return nil
	})
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0, time.Time{}, fmt.Errorf("measuring the lag of group %q: redis stream %s does not exist: %w", group, s.cfg.Name, ErrUnknownGroup)
		}
		return 0, time.Time{}, fmt.Errorf("measuring the lag of group %q of redis stream %s: %w", group, s.cfg.Name, err)
	}
	var g *redis.XInfoGroup
	for i, gr := range groupsCmd.Val() {
		if gr.Name == group {
			g = &groupsCmd.Val()[i]
		}
	}
	if g == nil {
		return 0, time.Time{}, fmt.Errorf("measuring the lag of group %q of redis stream %s: %w", group, s.cfg.Name, ErrUnknownGroup)
	}
	info := streamCmd.Val()
	if info.Length == 0 {
		return 0, time.Time{}, nil
	}
	delivered, _ := parseStreamID(g.LastDeliveredID)
	first, _ := parseStreamID(info.FirstEntry.ID)
	last, _ := parseStreamID(info.LastGeneratedID)
	switch {
	case delivered.less(first):
		// Trimming overtook the group: every retained entry is undelivered.
		return info.Length, time.UnixMilli(int64(first.ms)), nil
	case !delivered.less(last):
		return 0, time.Time{}, nil
	case g.Lag >= 0 && g.Lag <= info.Length:
		if g.Lag == 0 {
			return 0, time.Time{}, nil
		}
		msgs, err := s.rdb.XRangeN(ctx, s.cfg.Name, "("+g.LastDeliveredID, "+", 1).Result()
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("finding the oldest undelivered entry of group %q of redis stream %s: %w", group, s.cfg.Name, err)
		}
		if len(msgs) == 0 {
			return 0, time.Time{}, nil
		}
		id, _ := parseStreamID(msgs[0].ID)
		return g.Lag, time.UnixMilli(int64(id.ms)), nil
	default:
		res, err := s.count.Run(ctx, s.rdb, []string{s.cfg.Name}, g.LastDeliveredID, info.Length).Slice()
		if err == nil && len(res) != 2 {
			err = fmt.Errorf("the script answered %d values, not 2", len(res))
		}
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("counting the undelivered entries of group %q of redis stream %s: %w", group, s.cfg.Name, err)
		}
		n, _ := res[0].(int64)
		idStr, _ := res[1].(string)
		if n == 0 {
			return 0, time.Time{}, nil
		}
		id, _ := parseStreamID(idStr)
		return n, time.UnixMilli(int64(id.ms)), nil
	}
}

// Close implements Stream; it closes the Redis client when the stream
// created it.
func (s *RedisStream) Close() error {
	if s.owned {
		return s.rdb.Close()
	}
	return nil
}

// streamID is a Redis stream entry id, <ms>-<seq>.
type streamID struct{ ms, seq uint64 }

func (a streamID) less(b streamID) bool { return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq) }

func parseStreamID(s string) (streamID, bool) {
	msStr, seqStr, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(msStr, 10, 64)
	seq, err2 := strconv.ParseUint(seqStr, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}
