package location

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

type testConsumer struct {
	*Consumer
	stream *MemStream
	index  *Index
	m      *Metrics
	done   chan error
}

func startConsumer(t *testing.T, in *faults.Injector) *testConsumer {
	t.Helper()
	stream, err := NewMemStream(MemStreamConfig{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	index, err := NewIndex(IndexConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(prometheus.NewRegistry(), "eu", "s", DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConsumer(ConsumerConfig{Region: "eu", Name: "c1", Block: 20 * time.Millisecond, PausePoll: 5 * time.Millisecond,
		Faults: in, Logger: quietLogger(), Metrics: m}, stream, index)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testConsumer{Consumer: c, stream: stream, index: index, m: m, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { tc.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-tc.done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not stop within 5 s of cancel")
		}
	})
	return tc
}

func TestConsumerPauseFaultLetsLagGrow(t *testing.T) {
	in := &faults.Injector{}
	tc := startConsumer(t, in)
	ctx := context.Background()
	now := time.Now()
	if err := tc.stream.Publish(ctx, Position{DriverID: "d0", Lat: 1, Lng: 1, TS: now}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the first position to be consumed", func() bool { _, ok := tc.index.Get("d0"); return ok })

	_ = in.Update(func(s *faults.State) { s.ConsumerPaused = true })
	p0 := tc.paused.Load()
	waitFor(t, 5*time.Second, "the loop to notice the pause", func() bool { return tc.paused.Load() >= p0+2 })
	for i := 1; i <= 5; i++ {
		_ = tc.stream.Publish(ctx, Position{DriverID: "d1", Lat: 1, Lng: float64(i), TS: now.Add(time.Duration(i) * time.Millisecond)})
	}
	p1 := tc.paused.Load()
	waitFor(t, 5*time.Second, "more paused polls", func() bool { return tc.paused.Load() >= p1+3 })
	if n, oldest := mustLag(t, tc.stream, DefaultGroup); n != 5 || oldest.IsZero() {
		t.Fatalf("lag while paused = %d (oldest %v), want 5", n, oldest)
	}
	if _, ok := tc.index.Get("d1"); ok {
		t.Fatal("a paused consumer applied a position")
	}

	in.Clear()
	waitFor(t, 5*time.Second, "the backlog to be consumed", func() bool {
		p, ok := tc.index.Get("d1")
		n, _ := mustLag(t, tc.stream, DefaultGroup)
		return ok && p.Lng == 5 && n == 0
	})
	if v := valueOf(tc.m.consumed); v != 6 {
		t.Fatalf("consumed = %v, want 6", v)
	}
	if tc.stream.Pending(DefaultGroup) != 0 {
		t.Fatal("consumed messages were not acknowledged")
	}
}

func TestConsumerRegionDownPausesToo(t *testing.T) {
	in := &faults.Injector{}
	_ = in.Update(func(s *faults.State) { s.Down = true })
	tc := startConsumer(t, in)
	_ = tc.stream.CreateGroup(context.Background(), DefaultGroup)
	_ = tc.stream.Publish(context.Background(), Position{DriverID: "d", TS: time.Now()})
	waitFor(t, 5*time.Second, "paused polls", func() bool { return tc.paused.Load() >= 3 })
	if n, _ := mustLag(t, tc.stream, DefaultGroup); n != 1 {
		t.Fatalf("lag %d, want 1 while the region is down", n)
	}
}

// scriptedStream is a groupReader that returns one scripted batch.
type scriptedStream struct {
	batch  []Message
	acked  chan []string
	ackErr error
}

func (s *scriptedStream) CreateGroup(context.Context, string) error { return nil }

func (s *scriptedStream) Read(ctx context.Context, _, _ string, _ int, wait time.Duration) ([]Message, error) {
	if b := s.batch; b != nil {
		s.batch = nil
		return b, nil
	}
	sleep(ctx, wait)
	return nil, nil
}

func (s *scriptedStream) Ack(_ context.Context, _ string, ids ...string) error {
	s.acked <- ids
	return s.ackErr
}

func TestConsumerHandlesBadEntriesAndAckFailures(t *testing.T) {
	tests := map[string]struct {
		ackErr       error
		wantConsumed float64
	}{
		"An undecodable entry is acknowledged and dropped with the good ones.": {nil, 1},
		"A failed acknowledgement is not counted as consumed.":                 {errors.New("redis down"), 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := &scriptedStream{acked: make(chan []string, 1), ackErr: tc.ackErr, batch: []Message{
				{ID: "1-0", Err: errors.New("no lat")},
				{ID: "2-0", Position: Position{DriverID: "d", Lat: 1, Lng: 1, TS: time.Now()}, Redelivered: true},
			}}
			index, _ := NewIndex(IndexConfig{})
			m, _ := NewMetrics(nil, "eu", "s", "g")
			c, err := NewConsumer(ConsumerConfig{Region: "eu", Block: 10 * time.Millisecond, Logger: quietLogger(), Metrics: m}, s, index)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			var acked []string
			select {
			case acked = <-s.acked:
			case <-time.After(5 * time.Second):
				t.Fatal("nothing acknowledged")
			}
			cancel()
			<-done
			if len(acked) != 2 {
				t.Fatalf("acknowledged %v, want both entries", acked)
			}
			if _, ok := index.Get("d"); !ok {
				t.Fatal("the good entry did not reach the index")
			}
			if v := valueOf(m.consumed); v != tc.wantConsumed {
				t.Fatalf("consumed = %v, want %v", v, tc.wantConsumed)
			}
			if v := valueOf(m.redelivered); v != tc.wantConsumed {
				t.Fatalf("redelivered = %v, want %v", v, tc.wantConsumed)
			}
		})
	}
}

func TestConsumerStopsWhenTheStreamCloses(t *testing.T) {
	stream, _ := NewMemStream(MemStreamConfig{})
	index, _ := NewIndex(IndexConfig{})
	c, err := NewConsumer(ConsumerConfig{Region: "eu", Block: time.Minute, Logger: quietLogger()}, stream, index)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	waitFor(t, 5*time.Second, "the consumer to wait for messages", func() bool {
		stream.mu.Lock()
		defer stream.mu.Unlock()
		return stream.waiters == 1
	})
	_ = stream.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStreamClosed) {
			t.Fatalf("Run returned %v, want ErrStreamClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the stream closed")
	}
}
