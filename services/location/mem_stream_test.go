package location

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func newTestMemStream(t *testing.T, clk *fakeClock, maxLen int) *MemStream {
	t.Helper()
	s, err := NewMemStream(MemStreamConfig{Name: "test", MaxLen: maxLen, ClaimAfter: 5 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func publishN(t *testing.T, s Stream, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Publish(context.Background(), Position{DriverID: fmt.Sprintf("d%d", i), Lat: 1, Lng: 2, TS: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
}

func drivers(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Position.DriverID
	}
	return out
}

func msgIDs(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func mustRead(t *testing.T, s Stream, group, consumer string, max int) []Message {
	t.Helper()
	msgs, err := s.Read(context.Background(), group, consumer, max, 0)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func mustLag(t *testing.T, s Stream, group string) (int64, time.Time) {
	t.Helper()
	n, oldest, err := s.Lag(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	return n, oldest
}

func TestMemStreamGroupsHaveTheirOwnOffsets(t *testing.T) {
	clk := newFakeClock()
	s := newTestMemStream(t, clk, 100)
	ctx := context.Background()
	for _, g := range []string{"a", "b"} {
		if err := s.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	publishN(t, s, 0, 3)
	if got := drivers(mustRead(t, s, "a", "a1", 2)); !slices.Equal(got, []string{"d0", "d1"}) {
		t.Fatalf("a read %v", got)
	}
	if got := drivers(mustRead(t, s, "b", "b1", 10)); !slices.Equal(got, []string{"d0", "d1", "d2"}) {
		t.Fatalf("b read %v", got)
	}
	// Another consumer of a gets what a has not delivered yet.
	if got := drivers(mustRead(t, s, "a", "a2", 10)); !slices.Equal(got, []string{"d2"}) {
		t.Fatalf("a2 read %v", got)
	}
	if n, _ := mustLag(t, s, "a"); n != 0 {
		t.Fatalf("lag of a = %d", n)
	}
	// Creating a group again keeps its offset.
	if err := s.CreateGroup(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, s, "a", "a1", 10); len(got) != 0 {
		t.Fatalf("a re-read %v after CreateGroup", drivers(got))
	}
}

func TestMemStreamRedelivery(t *testing.T) {
	clk := newFakeClock()
	s := newTestMemStream(t, clk, 100)
	ctx := context.Background()
	_ = s.CreateGroup(ctx, "g")
	publishN(t, s, 0, 4)
	first := mustRead(t, s, "g", "dead", 3) // d0..d2, never acknowledged: the consumer died
	if err := s.Ack(ctx, "g", first[0].ID); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		want    []string
		redeliv bool
		ack     bool
	}{
		{"Before the claim timeout another consumer gets only new messages.", 0, []string{"d3"}, false, true},
		{"Still before the timeout nothing is handed over.", 4 * time.Second, []string{}, false, false},
		{"After the timeout the unacknowledged messages are redelivered, oldest first.", time.Second, []string{"d1", "d2"}, true, false},
		{"Once reclaimed they are not handed over again at once.", 0, []string{}, false, false},
		{"Unacknowledged again past the timeout, they come back once more.", 5 * time.Second, []string{"d1", "d2"}, true, false},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		got := mustRead(t, s, "g", "alive", 10)
		if !slices.Equal(drivers(got), st.want) {
			t.Fatalf("%s got %v, want %v", st.name, drivers(got), st.want)
		}
		for _, m := range got {
			if m.Redelivered != st.redeliv {
				t.Fatalf("%s %s redelivered = %v", st.name, m.Position.DriverID, m.Redelivered)
			}
		}
		if st.ack {
			if err := s.Ack(ctx, "g", msgIDs(got)...); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.Pending("g") != 2 {
		t.Fatalf("pending = %d, want 2", s.Pending("g"))
	}
	if err := s.Ack(ctx, "g", "2", "3", "4", "99"); err != nil {
		t.Fatal(err)
	}
	if s.Pending("g") != 0 {
		t.Fatalf("pending after ack = %d", s.Pending("g"))
	}
	clk.Advance(time.Hour)
	if got := mustRead(t, s, "g", "alive", 10); len(got) != 0 {
		t.Fatalf("acknowledged messages came back: %v", drivers(got))
	}
}

func TestMemStreamTrimsAndLags(t *testing.T) {
	clk := newFakeClock()
	s := newTestMemStream(t, clk, 3)
	ctx := context.Background()
	_ = s.CreateGroup(ctx, "g")
	if n, oldest := mustLag(t, s, "g"); n != 0 || !oldest.IsZero() {
		t.Fatalf("empty stream lag %d %v", n, oldest)
	}
	publishN(t, s, 0, 1)
	clk.Advance(time.Second)
	publishN(t, s, 1, 1)
	pending := mustRead(t, s, "g", "c", 1) // d0 delivered, not acknowledged
	if n, oldest := mustLag(t, s, "g"); n != 1 || !oldest.Equal(clk.Now()) {
		t.Fatalf("lag %d oldest %v, want 1 at %v", n, oldest, clk.Now())
	}
	for i := 2; i < 6; i++ {
		clk.Advance(time.Second)
		publishN(t, s, i, 1)
	}
	// The ring holds d3..d5; the group had delivered d0 only.
	if s.Len() != 3 {
		t.Fatalf("len %d", s.Len())
	}
	if n, oldest := mustLag(t, s, "g"); n != 3 || !oldest.Equal(clk.Now().Add(-2*time.Second)) {
		t.Fatalf("lag %d oldest %v, want 3 retained messages from 2 s ago", n, oldest)
	}
	clk.Advance(time.Minute)
	got := mustRead(t, s, "g", "c2", 10)
	if !slices.Equal(drivers(got), []string{"d3", "d4", "d5"}) {
		t.Fatalf("after trimming read %v; the trimmed pending %s must be dropped", drivers(got), pending[0].ID)
	}
	if s.Pending("g") != 3 {
		t.Fatalf("pending %d: the trimmed entry must leave the pending list", s.Pending("g"))
	}
}

func TestMemStreamReadWaits(t *testing.T) {
	s := newTestMemStream(t, newFakeClock(), 10)
	ctx := context.Background()
	_ = s.CreateGroup(ctx, "g")

	type result struct {
		msgs []Message
		err  error
	}
	res := make(chan result, 1)
	go func() {
		msgs, err := s.Read(ctx, "g", "c", 10, 10*time.Second)
		res <- result{msgs, err}
	}()
	waitFor(t, 5*time.Second, "the reader to wait", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.waiters == 1
	})
	publishN(t, s, 0, 1)
	select {
	case r := <-res:
		if r.err != nil || len(r.msgs) != 1 {
			t.Fatalf("read %v %v", r.msgs, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a publish did not wake the waiting reader")
	}

	start := time.Now()
	if msgs, err := s.Read(ctx, "g", "c", 10, 20*time.Millisecond); err != nil || len(msgs) != 0 {
		t.Fatalf("an idle read returned %v %v", msgs, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("an idle read did not time out")
	}

	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := s.Read(cctx, "g", "c", 10, time.Minute)
		res <- result{err: err}
	}()
	cancel()
	if r := <-res; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("a cancelled read returned %v", r.err)
	}

	go func() {
		_, err := s.Read(ctx, "g", "c", 10, time.Minute)
		res <- result{err: err}
	}()
	waitFor(t, 5*time.Second, "the reader to wait", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.waiters == 1
	})
	_ = s.Close()
	if r := <-res; !errors.Is(r.err, ErrStreamClosed) {
		t.Fatalf("a read on a closed stream returned %v", r.err)
	}
	if err := s.Publish(ctx, Position{}); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("publishing on a closed stream returned %v", err)
	}
}

func TestMemStreamUnknownGroup(t *testing.T) {
	s := newTestMemStream(t, newFakeClock(), 10)
	ctx := context.Background()
	if _, err := s.Read(ctx, "nope", "c", 1, 0); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("read: %v", err)
	}
	if err := s.Ack(ctx, "nope", "1"); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("ack: %v", err)
	}
	if _, _, err := s.Lag(ctx, "nope"); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("lag: %v", err)
	}
	if err := s.CreateGroup(ctx, ""); err == nil {
		t.Error("an empty group name was accepted")
	}
}

// TestMemStreamConcurrentConsumersSeeEveryMessageOnce: two consumers of one
// group racing with a publisher together receive each message exactly once.
func TestMemStreamConcurrentConsumersSeeEveryMessageOnce(t *testing.T) {
	s := newTestMemStream(t, newFakeClock(), 10000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.CreateGroup(ctx, "g")
	const n = 3000
	seen := make(chan string, n)
	for c := range 2 {
		go func() {
			for ctx.Err() == nil {
				msgs, err := s.Read(ctx, "g", fmt.Sprintf("c%d", c), 50, 10*time.Millisecond)
				if err != nil {
					return
				}
				for _, m := range msgs {
					seen <- m.ID
				}
				_ = s.Ack(ctx, "g", msgIDs(msgs)...)
			}
		}()
	}
	go func() {
		for i := range n {
			_ = s.Publish(ctx, Position{DriverID: fmt.Sprintf("d%d", i), TS: time.Unix(int64(i), 0)})
		}
	}()
	got := map[string]bool{}
	for len(got) < n {
		select {
		case id := <-seen:
			if got[id] {
				t.Fatalf("message %s delivered twice", id)
			}
			got[id] = true
		case <-ctx.Done():
			t.Fatalf("only %d of %d messages delivered", len(got), n)
		}
	}
}
