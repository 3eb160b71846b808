package location

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

func TestClientReconnectsAfterTheServerRestarts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	first := startServiceOn(t, Config{}, ln)
	ctx := context.Background()
	c, err := DialStreamConfig(ctx, ClientConfig{URL: first.wsURL + "?driver_id=d1", MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base := time.Now()
	_ = c.Send(Position{DriverID: "d1", Lat: 1, Lng: 1, TS: base})
	waitFor(t, 5*time.Second, "the first position", func() bool { _, ok := first.Index().Get("d1"); return ok })

	first.stop() // closes the connection with 1001 and the listener
	waitFor(t, 5*time.Second, "the client to notice", func() bool { return !c.Connected() })
	_ = c.Send(Position{DriverID: "d1", Lat: 2, Lng: 2, TS: base.Add(time.Millisecond)}) // queued while down
	waitFor(t, 5*time.Second, "failed reconnection attempts", func() bool { return c.Stats().DialErrors >= 2 })

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	second := startServiceOn(t, Config{}, ln2)
	waitFor(t, 10*time.Second, "the position queued during the outage to reach the new server", func() bool {
		p, ok := second.Index().Get("d1")
		return ok && p.Lat == 2
	})
	_ = c.Send(Position{DriverID: "d1", Lat: 3, Lng: 3, TS: base.Add(2 * time.Millisecond)})
	waitFor(t, 5*time.Second, "a position sent after reconnecting", func() bool {
		p, _ := second.Index().Get("d1")
		return p.Lat == 3
	})
	st := c.Stats()
	if st.Connects != 2 || st.Dropped != 0 || st.Sent < 3 {
		t.Fatalf("stats %+v, want 2 connects, 3 sent, none dropped", st)
	}
}

func TestClientQueueDropsTheOldest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &Client{queue: make(chan Position, 2), ctx: ctx}
	for _, id := range []string{"p1", "p2", "p3"} {
		if err := c.Send(Position{DriverID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if got := []string{(<-c.queue).DriverID, (<-c.queue).DriverID}; got[0] != "p2" || got[1] != "p3" {
		t.Fatalf("queue kept %v, want the newest two", got)
	}
	if c.Stats().Dropped != 1 {
		t.Fatalf("dropped %d", c.Stats().Dropped)
	}
	cancel()
	if err := c.Send(Position{}); err != ErrClientClosed {
		t.Fatalf("Send after close: %v", err)
	}
}

func TestClientDropsExpiredPositionsAndClosesNormally(t *testing.T) {
	ts := startService(t, Config{})
	c, err := DialStreamConfig(context.Background(), ClientConfig{URL: ts.wsURL, MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Send(Position{DriverID: "old", Lat: 1, Lng: 1, TS: time.Now().Add(-2 * time.Minute)})
	_ = c.Send(Position{DriverID: "new", Lat: 1, Lng: 1, TS: time.Now()})
	waitFor(t, 5*time.Second, "the fresh position", func() bool { _, ok := ts.Index().Get("new"); return ok })
	if st := c.Stats(); st.Expired != 1 || st.Sent != 1 {
		t.Fatalf("stats %+v, want 1 expired and 1 sent", st)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a normal close", func() bool {
		return ts.value(t, catalog.LocationConnectionsClosed.Name, map[string]string{"reason": catalog.LocationCloseNormal}) == 1
	})
}

func TestClientCountsErrorReplies(t *testing.T) {
	ts := startService(t, Config{})
	c, err := DialStream(context.Background(), ts.wsURL+"?driver_id=d1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.Send(Position{DriverID: "d1", Lat: 95, Lng: 1, TS: time.Now()})
	waitFor(t, 5*time.Second, "the error reply", func() bool { return c.Stats().Rejected == 1 })
	if st := c.Stats(); st.LastError == "" {
		t.Fatalf("stats %+v lack the server's error", st)
	}
}

func TestDialStreamFailsFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	if _, err := DialStream(ctx, "ws://"+addr+Route); err == nil {
		t.Fatal("dialling a closed port succeeded")
	}
	if _, err := DialStream(ctx, ""); err == nil {
		t.Fatal("an empty URL was accepted")
	}
}

func TestBackoffIsJitteredAndBounded(t *testing.T) {
	for attempt := range 12 {
		want := min(100*time.Millisecond<<attempt, 5*time.Second)
		for range 50 {
			d := backoff(attempt, 100*time.Millisecond, 5*time.Second)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d waits %s, want within [%s, %s]", attempt, d, want/2, want)
			}
		}
	}
}
