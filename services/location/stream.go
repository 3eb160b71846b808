package location

import (
	"context"
	"errors"
	"time"
)

// Stream is an append-only log of positions read by consumer groups, with
// Redis Streams semantics: every group has its own offset; a message read
// by one consumer of a group is pending until acknowledged; a pending
// message left unacknowledged past the claim timeout (its consumer died) is
// delivered again to another consumer of the group. The stream is bounded:
// the oldest entries are trimmed whatever the groups have read, so a slow
// group loses messages rather than blocking publishers.
//
// MemStream (in process, the default) and RedisStream implement it.
type Stream interface {
	// Name is the stream's name (the Redis key), the stream label of its
	// metrics.
	Name() string
	// Publish appends a position.
	Publish(ctx context.Context, p Position) error
	// CreateGroup creates a consumer group that starts at the oldest
	// retained entry; it is a no-op when the group exists.
	CreateGroup(ctx context.Context, group string) error
	// Read returns up to max messages for consumer in group: first pending
	// messages of the group idle longer than the claim timeout (their
	// Redelivered is true), then new ones. When there are none it waits up
	// to wait for new messages and returns an empty slice on timeout.
	Read(ctx context.Context, group, consumer string, max int, wait time.Duration) ([]Message, error)
	// Ack acknowledges messages of group by id; unknown ids are ignored.
	Ack(ctx context.Context, group string, ids ...string) error
	// Lag returns how many retained messages group has not yet been
	// delivered, and when the oldest of them was added (zero when none).
	// It is what carpool_stream_lag_messages and _seconds export.
	Lag(ctx context.Context, group string) (messages int64, oldest time.Time, err error)
	// Close releases the stream's resources.
	Close() error
}

// batchPublisher is implemented by streams that append many positions in
// one round trip; the server's publish workers use it when present.
type batchPublisher interface {
	PublishBatch(ctx context.Context, ps []Position) error
}

// Message is one stream entry delivered to a consumer.
type Message struct {
	// ID is the entry's id within the stream, what Ack takes.
	ID string
	// Position is the entry's payload.
	Position Position
	// Added is when the entry was appended (zero when unknown).
	Added time.Time
	// Redelivered is true when the message was reclaimed from a consumer
	// that left it unacknowledged past the claim timeout.
	Redelivered bool
	// Err is set when the entry could not be decoded (written by a foreign
	// producer); the consumer acknowledges and drops it.
	Err error
}

// Errors returned by streams.
var (
	// ErrUnknownGroup: the consumer group does not exist; call CreateGroup.
	ErrUnknownGroup = errors.New("unknown consumer group")
	// ErrStreamClosed: the stream was closed.
	ErrStreamClosed = errors.New("stream closed")
)

// Defaults shared by both stream implementations.
const (
	// DefaultMaxLen bounds a stream's length (entries).
	DefaultMaxLen = 10000
	// DefaultClaimAfter is how long a delivered message may stay
	// unacknowledged before another consumer may reclaim it.
	DefaultClaimAfter = 5 * time.Second
)
