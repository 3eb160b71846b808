package streamlag

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// GroupLagger is a stream that measures its consumer groups' lag itself,
// such as the location service's streams (location.Stream: MemStream and
// RedisStream).
type GroupLagger interface {
	// Name is the stream's name, the stream label.
	Name() string
	// Lag returns how many messages group has not been delivered yet and
	// when the oldest of them was added (zero when none).
	Lag(ctx context.Context, group string) (messages int64, oldest time.Time, err error)
}

// GroupReader implements Reader over a GroupLagger: it exports the lag of
// the given groups of one region's stream. For a region's location
// service: NewGroupReader(region, svc.Stream(), svc.Group()).
type GroupReader struct {
	region string
	stream GroupLagger
	groups []string
}

// NewGroupReader returns a reader of groups of stream, labelled region.
func NewGroupReader(region string, stream GroupLagger, groups ...string) (*GroupReader, error) {
	switch {
	case region == "":
		return nil, errors.New("stream lag: region is empty; set the region label the lags are exported under")
	case stream == nil:
		return nil, errors.New("stream lag: no stream")
	case len(groups) == 0:
		return nil, fmt.Errorf("stream lag: no consumer group given for stream %s", stream.Name())
	}
	return &GroupReader{region: region, stream: stream, groups: groups}, nil
}

// Read implements Reader.
func (g *GroupReader) Read(ctx context.Context, _ time.Time) ([]Lag, error) {
	out := make([]Lag, 0, len(g.groups))
	var errs []error
	for _, group := range g.groups {
		n, oldest, err := g.stream.Lag(ctx, group)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the lag of group %s of stream %s in region %s: %w", group, g.stream.Name(), g.region, err))
			continue
		}
		out = append(out, Lag{Region: g.region, Stream: g.stream.Name(), Group: group, Messages: n, Oldest: oldest})
	}
	return out, errors.Join(errs...)
}
