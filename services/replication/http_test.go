package replication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// serve starts region r's outbox handler on 127.0.0.1.
func serve(t *testing.T, r *region, mutate func(*HandlerConfig)) *httptest.Server {
	t.Helper()
	cfg := HandlerConfig{Outbox: r.store, Faults: r.faults}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewOutboxHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(OutboxPath, h)
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

func httpSource(t *testing.T, url string) *HTTPSource {
	t.Helper()
	s, err := NewHTTPSource(HTTPSourceConfig{BaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Two regions replicate over HTTP on 127.0.0.1: every write arrives byte
// for byte (HTML-special and line-separator characters included), the
// write's trace continues in the target, a region that goes down (its
// server drops connections) is retried and caught up once it is back.
func TestHTTPTransport(t *testing.T) {
	tt := newTrueTime()
	a, b := newRegion(t, "a", tt, nil), newRegion(t, "b", tt, nil)
	srv := serve(t, a, nil)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(ctx) }()

	r := pair(t, a, b, func(c *Config) {
		c.Source, c.TracerProvider, c.BatchSize = httpSource(t, srv.URL), tp, 16
		c.PollWait, c.RetryMin, c.RetryMax = 500*time.Millisecond, time.Millisecond, 10*time.Millisecond
	})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	wctx, write := tp.Tracer("test").Start(ctx, "POST /v1/rides")
	_, _ = a.store.Put(wctx, "rides", "traced", []byte(`{"note":"<b>&amp;</b> \u2028 `+"\u2028"+`"}`))
	write.End()
	for i := range 100 {
		_, _ = a.store.Put(ctx, "rides", fmt.Sprint("r", i%13), fmt.Appendf(nil, `{"n": %d}`, i))
	}
	_, _ = a.store.Delete(ctx, "rides", "r3")
	caughtUp := func() bool { hw, _ := a.store.HighWater(ctx); return r.Stats().Offset == hw }
	waitFor(t, 10*time.Second, "b to catch up over HTTP", caughtUp)
	if diff := sameState(a.store, b.store); diff != "" {
		t.Fatal(diff)
	}

	if err := a.faults.Update(func(s *faults.State) { s.Down = true }); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		_, _ = a.store.Put(ctx, "rides", fmt.Sprint("down", i), []byte(`1`))
	}
	waitFor(t, 10*time.Second, "the pull to fail against the down region", func() bool {
		return strings.Contains(r.Stats().LastError, "requesting the outbox")
	})
	if caughtUp() {
		t.Fatal("replicated from a down region")
	}
	a.faults.Clear()
	waitFor(t, 10*time.Second, "b to catch up after a came back", caughtUp)
	if diff := sameState(a.store, b.store); diff != "" {
		t.Fatal(diff)
	}

	var found bool
	for _, s := range rec.Ended() {
		if s.Name() == applySpanName && s.SpanContext().TraceID() == write.SpanContext().TraceID() {
			found = s.Parent().SpanID() == write.SpanContext().SpanID()
		}
	}
	if !found {
		t.Fatal("no apply span continued the write's trace across HTTP")
	}
}

// A long poll returns as soon as an event is written.
func TestLongPollWakesOnWrite(t *testing.T) {
	a := newRegion(t, "a", newTrueTime(), nil)
	src := httpSource(t, serve(t, a, nil).URL)
	got := make(chan Batch, 1)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		b, err := src.Pull(ctx, 0, 10, 5*time.Second)
		errc <- err
		got <- b
	}()
	_, _ = a.store.Put(ctx, "t", "k", []byte(`1`))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	b := <-got
	if len(b.Events) != 1 || b.HighWater != 1 || b.Region != "a" {
		t.Fatalf("batch = %+v", b)
	}
	if time.Since(start) >= 5*time.Second {
		t.Fatal("the long poll waited out its full wait")
	}
	// With nothing new, the poll returns empty after its wait.
	b, err := src.Pull(ctx, 1, 10, 10*time.Millisecond)
	if err != nil || len(b.Events) != 0 || b.HighWater != 1 {
		t.Fatalf("empty poll = %+v, %v", b, err)
	}
}

func TestOutboxHandlerBadInput(t *testing.T) {
	a := newRegion(t, "a", newTrueTime(), nil)
	for range 5 {
		_, _ = a.store.Put(ctx, "t", "k", []byte(`1`))
	}
	a.store.Truncate(2)
	srv := serve(t, a, func(c *HandlerConfig) { c.MaxLimit, c.MaxWait = 50, time.Second })
	cases := map[string]struct {
		method, query string
		code          int
		field         string
	}{
		"A non-numeric since is a 400 naming since.":      {"GET", "since=abc", 400, "since"},
		"A negative since is a 400 naming since.":         {"GET", "since=-1", 400, "since"},
		"A limit over the maximum is a 400 naming limit.": {"GET", "since=2&limit=51", 400, "limit"},
		"A non-numeric limit is a 400 naming limit.":      {"GET", "since=2&limit=ten", 400, "limit"},
		"A wait over the maximum is a 400 naming wait.":   {"GET", "since=2&wait=1h", 400, "wait"},
		"A malformed wait is a 400 naming wait.":          {"GET", "since=2&wait=soon", 400, "wait"},
		"A negative wait is a 400 naming wait.":           {"GET", "since=2&wait=-1s", 400, "wait"},
		"A POST is a 405 naming the method.":              {"POST", "", 405, "method"},
		"An offset past the high-water mark is a 409.":    {"GET", "since=6", 409, "since"},
		"A truncated offset is a 410.":                    {"GET", "since=1", 410, "since"},
		"A valid request answers the events.":             {"GET", "since=2&limit=2", 200, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL+OutboxPath+"?"+c.query, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.code || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("answered %d (%s) %s, want %d", resp.StatusCode, resp.Header.Get("Content-Type"), body, c.code)
			}
			if c.code == 200 {
				var b Batch
				if err := json.Unmarshal(body, &b); err != nil || len(b.Events) != 2 || b.Events[0].Seq != 3 || b.HighWater != 5 {
					t.Fatalf("batch %s: %v", body, err)
				}
				return
			}
			var e apiError
			if err := json.Unmarshal(body, &e); err != nil || e.Field != c.field || e.Error == "" {
				t.Fatalf("error body %s, want field %q", body, c.field)
			}
		})
	}
}

func TestHTTPSourceErrors(t *testing.T) {
	a := newRegion(t, "a", newTrueTime(), nil)
	for range 3 {
		_, _ = a.store.Put(ctx, "t", "k", []byte(`1`))
	}
	a.store.Truncate(1)
	srv := serve(t, a, nil)
	src := httpSource(t, srv.URL+"/")
	if _, err := src.Pull(ctx, 0, 10, 0); !errors.Is(err, store.ErrTruncated) {
		t.Fatalf("410: %v", err)
	}
	if _, err := src.Pull(ctx, 9, 10, 0); !errors.Is(err, store.ErrOffsetAhead) {
		t.Fatalf("409: %v", err)
	}
	small, _ := NewHTTPSource(HTTPSourceConfig{BaseURL: srv.URL, MaxResponseBytes: 64})
	if _, err := small.Pull(ctx, 1, 10, 0); err == nil || !strings.Contains(err.Error(), "exceeds 64 bytes") {
		t.Fatalf("oversize answer: %v", err)
	}
	for _, bad := range []string{"", "127.0.0.1:80", "ftp://x", "http://"} {
		if _, err := NewHTTPSource(HTTPSourceConfig{BaseURL: bad}); err == nil {
			t.Errorf("base URL %q accepted", bad)
		}
	}
	if _, err := NewOutboxHandler(HandlerConfig{}); err == nil {
		t.Error("a handler without an outbox was built")
	}
}
