package location

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// benchPublishConsume measures positions per second from Publish (or
// PublishBatch in batches of batch) to a consumer that reads and
// acknowledges them, both running at once.
func benchPublishConsume(b *testing.B, s Stream, batch int) {
	ctx := context.Background()
	if err := s.CreateGroup(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	ps := make([]Position, batch)
	for i := range ps {
		ps[i] = Position{DriverID: fmt.Sprintf("driver-%04d", i), Lat: 52.52, Lng: 13.405, TS: time.Now(),
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	}
	consumed := make(chan error, 1)
	b.ResetTimer()
	go func() {
		got := 0
		for got < b.N {
			msgs, err := s.Read(ctx, "bench", "c", 256, 100*time.Millisecond)
			if err != nil {
				consumed <- err
				return
			}
			if err := s.Ack(ctx, "bench", msgIDs(msgs)...); err != nil {
				consumed <- err
				return
			}
			got += len(msgs)
		}
		consumed <- nil
	}()
	bp, _ := s.(batchPublisher)
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		var err error
		if n > 1 && bp != nil {
			err = bp.PublishBatch(ctx, ps[:n])
		} else {
			err = s.Publish(ctx, ps[0])
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := <-consumed; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "positions/s")
}

func BenchmarkPublishConsume(b *testing.B) {
	b.Run("mem", func(b *testing.B) {
		s, _ := NewMemStream(MemStreamConfig{MaxLen: max(b.N, 1024)}) // no trimming: the consumer must see every position
		benchPublishConsume(b, s, 1)
	})
	b.Run("mem-batch64", func(b *testing.B) {
		s, _ := NewMemStream(MemStreamConfig{MaxLen: max(b.N, 1024)})
		benchPublishConsume(b, s, 64)
	})
	srv := realserver.StartRedis(b)
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("redis-batch%d", batch), func(b *testing.B) {
			s, err := NewRedisStream(RedisStreamConfig{Addr: srv.Addr, Name: fmt.Sprintf("bench-%d-%d", batch, b.N), MaxLen: int64(max(b.N, 1024))})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchPublishConsume(b, s, batch)
		})
	}
}

// BenchmarkServerToIndex measures positions per second end to end: one
// Client per driver over WebSocket on 127.0.0.1, the server's publish
// queue, the in-process stream, the consumer group and the index.
func BenchmarkServerToIndex(b *testing.B) {
	ts := startService(b, Config{StreamMaxLen: 1 << 20, Server: ServerConfig{PublishQueue: 1 << 16, MaxPositionAge: -1}})
	ctx := context.Background()
	const drivers = 8
	clients := make([]*Client, drivers)
	for d := range clients {
		c, err := DialStreamConfig(ctx, ClientConfig{URL: fmt.Sprintf("%s?driver_id=d%d", ts.wsURL, d), QueueSize: 1 << 16, MaxAge: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[d] = c
	}
	base := time.Now()
	b.ResetTimer()
	for i := range b.N {
		c := clients[i%drivers]
		for c.Queued() > 1<<15 { // keep the clients' queues from dropping
			time.Sleep(50 * time.Microsecond)
		}
		_ = c.Send(Position{DriverID: fmt.Sprintf("d%d", i%drivers), Lat: 1, Lng: 1, TS: base.Add(time.Duration(i) * time.Microsecond)})
	}
	waitFor(b, 60*time.Second, "every position to be consumed", func() bool {
		return valueOf(ts.consumer.m.consumed) >= float64(b.N)
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "positions/s")
}
