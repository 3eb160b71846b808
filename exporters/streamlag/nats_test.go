package streamlag

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

type natsFixture struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

func newNATSFixture(t *testing.T, url string) *natsFixture {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "POSITIONS", Subjects: []string{"positions.>"}})
	if err != nil {
		t.Fatal(err)
	}
	return &natsFixture{js: js, stream: s}
}

func (f *natsFixture) publish(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if _, err := f.js.Publish(context.Background(), "positions.sh-a", fmt.Appendf(nil, "p%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *natsFixture) consumer(t *testing.T, name string) jetstream.Consumer {
	t.Helper()
	c, err := f.stream.CreateOrUpdateConsumer(context.Background(), jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// consume fetches n messages and acknowledges them when ack is set.
func consume(t *testing.T, c jetstream.Consumer, n int, ack bool) {
	t.Helper()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		got++
		if ack {
			if err := m.DoubleAck(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got != n {
		t.Fatalf("fetched %d messages, want %d (%v)", got, n, batch.Error())
	}
}

// msgTime is the server's timestamp of message seq.
func (f *natsFixture) msgTime(t *testing.T, seq uint64) time.Time {
	t.Helper()
	m, err := f.stream.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	return m.Time
}

func newNATSScraper(t *testing.T, url string, clock *fakeClock, cfg NATSConfig) *Scraper {
	t.Helper()
	nc, err := dialNATS(url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.JS = js
	if cfg.Region == "" {
		cfg.Region = "sh-a"
	}
	r, err := NewNATSReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Readers: []Reader{r}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func lagOf(t *testing.T, out, stream, group string) (float64, float64) {
	t.Helper()
	ms, ss := lagSeries("sh-a", stream, group)
	m, ok1 := value(out, ms)
	s, ok2 := value(out, ss)
	if !ok1 || !ok2 {
		t.Fatalf("no lag of %s/%s:\n%s", stream, group, out)
	}
	return m, s
}

// TestNATSStreamLag runs the JetStream reader against a real nats-server.
func TestNATSStreamLag(t *testing.T) {
	srv := realserver.StartNATS(t)
	f := newNATSFixture(t, srv.URL)
	clock := &fakeClock{}

	t.Run("N produced and M consumed is N−M behind, as old as message M+1.", func(t *testing.T) {
		c := f.consumer(t, "dispatch")
		reg := registry(t, newNATSScraper(t, srv.URL, clock, NATSConfig{Streams: []string{"POSITIONS"}}))
		clock.Set(time.Now())
		out := scrape(t, reg)
		wantUp(t, out, 1)
		wantLag(t, out, "sh-a", "POSITIONS", "dispatch", 0, 0)

		f.publish(t, 10)
		consume(t, c, 4, true)
		clock.Set(time.Now().Add(time.Minute))
		out = scrape(t, reg)
		promtoolCheck(t, out)
		m, s := lagOf(t, out, "POSITIONS", "dispatch")
		// Message 5 lies between the first retained message (an exact
		// sample) and the last (sampled by this scrape): the interpolation
		// is off by at most the time between them.
		truth := clock.Now().Sub(f.msgTime(t, 5)).Seconds()
		bound := f.msgTime(t, 10).Sub(f.msgTime(t, 1)).Seconds() + 0.001
		if m != 6 || s < truth-bound || s > truth+bound {
			t.Fatalf("messages %v seconds %v, want 6 and %v ± %v", m, s, truth, bound)
		}
		t.Logf("seconds %.6f, truth %.6f (error %.6f s, bound %.6f s)", s, truth, s-truth, bound)

		consume(t, c, 6, true)
		wantLag(t, scrape(t, reg), "sh-a", "POSITIONS", "dispatch", 0, 0)
	})

	t.Run("From the ack floor, delivered but unacknowledged messages count.", func(t *testing.T) {
		c := f.consumer(t, "slow")
		consume(t, c, 3, false) // 10 in the stream, 3 delivered, none acked
		delivered := registry(t, newNATSScraper(t, srv.URL, clock, NATSConfig{Streams: []string{"POSITIONS"}}))
		ackFloor := registry(t, newNATSScraper(t, srv.URL, clock, NATSConfig{Streams: []string{"POSITIONS"}, Position: PositionAckFloor}))
		if m, _ := lagOf(t, scrape(t, delivered), "POSITIONS", "slow"); m != 7 {
			t.Fatalf("delivered: %v messages, want 7", m)
		}
		// The oldest unacknowledged is the first message, an exact sample.
		wantLag(t, scrape(t, ackFloor), "sh-a", "POSITIONS", "slow", 10, clock.Now().Sub(f.msgTime(t, 1)).Seconds())
	})

	t.Run("Every stream is read when none is named.", func(t *testing.T) {
		if _, err := f.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "RIDES", Subjects: []string{"rides.>"}}); err != nil {
			t.Fatal(err)
		}
		other, _ := f.js.Stream(context.Background(), "RIDES")
		if _, err := other.CreateOrUpdateConsumer(context.Background(), jetstream.ConsumerConfig{Durable: "billing"}); err != nil {
			t.Fatal(err)
		}
		out := scrape(t, registry(t, newNATSScraper(t, srv.URL, clock, NATSConfig{})))
		wantLag(t, out, "sh-a", "RIDES", "billing", 0, 0)
		lagOf(t, out, "POSITIONS", "dispatch")
	})

	t.Run("A missing stream is a scrape error.", func(t *testing.T) {
		out := scrape(t, registry(t, newNATSScraper(t, srv.URL, clock, NATSConfig{Streams: []string{"POSITIONS", "NOPE"}})))
		wantUp(t, out, 0)
		lagOf(t, out, "POSITIONS", "dispatch")
	})

	t.Run("A server that goes down is up 0 at once and recovers by itself.", func(t *testing.T) {
		p := startProxy(t, srv.Addr)
		reg := registry(t, newNATSScraper(t, "nats://"+p.addr, clock, NATSConfig{Streams: []string{"POSITIONS"}}))
		wantUp(t, scrape(t, reg), 1)
		p.down()
		// The first scrape after the drop fails at once: a request in
		// flight ends when the connection's status changes, not at the
		// scrape timeout.
		began := time.Now()
		out := scrape(t, reg)
		wantUp(t, out, 0)
		if took := time.Since(began); took > time.Second {
			t.Fatalf("a scrape with the server down took %s; it must fail at once", took)
		}
		began = time.Now()
		out = scrape(t, reg)
		wantUp(t, out, 0)
		if took := time.Since(began); took > time.Second {
			t.Fatalf("a scrape while reconnecting took %s; it must fail at once", took)
		}
		if strings.Contains(out, "carpool_stream_lag_messages{") {
			t.Fatalf("lags exported while the server was down:\n%s", out)
		}
		p.up()
		realserver.WaitFor(t, 10*time.Second, "the exporter to recover", func() (bool, error) {
			v, _ := value(scrape(t, reg), `carpool_exporter_up{exporter="streamlag"}`)
			return v == 1, nil
		})
		wantLag(t, scrape(t, reg), "sh-a", "POSITIONS", "dispatch", 0, 0)
	})
}

// TestNATSInterpolationBetweenScrapes checks the interpolation against a
// real server's timestamps: with samples taken by two scrapes, a consumer
// stuck between them gets a time within the two samples' window.
func TestNATSInterpolationBetweenScrapes(t *testing.T) {
	srv := realserver.StartNATS(t)
	f := newNATSFixture(t, srv.URL)
	c := f.consumer(t, "g")
	clock := &fakeClock{now: time.Now()}
	reg := registry(t, newNATSScraper(t, srv.URL, clock, NATSConfig{Streams: []string{"POSITIONS"}}))
	f.publish(t, 20)
	scrape(t, reg) // sample at 20
	f.publish(t, 20)
	consume(t, c, 25, true)
	clock.Set(time.Now().Add(time.Minute))
	_, s := lagOf(t, scrape(t, reg), "POSITIONS", "g") // sample at 40
	est := clock.Now().Add(-seconds(s))
	lo, hi := f.msgTime(t, 20), f.msgTime(t, 40)
	if est.Before(lo.Add(-time.Millisecond)) || est.After(hi.Add(time.Millisecond)) {
		t.Fatalf("message 26 estimated at %v, outside the samples' window [%v, %v]", est, lo, hi)
	}
	t.Logf("message 26: estimated %v, actual %v, window %v", est.Sub(lo), f.msgTime(t, 26).Sub(lo), hi.Sub(lo))
}
