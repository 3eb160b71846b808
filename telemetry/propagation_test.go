package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// rideEvent is a replication event as it crosses regions: the payload and the
// trace context of the write that produced it.
type rideEvent struct {
	RideID string            `json:"ride_id"`
	Trace  map[string]string `json:"trace,omitempty"`
}

// TestOneRideIsOneTraceAcrossRegions follows a ride from the rider's client in
// region a, over HTTP to the order service in region b, and as a replication
// event to region c: every span lands in one trace, each hop the child of the
// one before, and the log line in b carries the trace.
func TestOneRideIsOneTraceAcrossRegions(t *testing.T) {
	tpA, ringA, flushA := newTestProvider(t, "gateway", "a", 1)
	tpB, ringB, flushB := newTestProvider(t, "order", "b", 1)
	tpC, ringC, flushC := newTestProvider(t, "replication", "c", 1)

	var logs bytes.Buffer
	logB, err := NewLogger(LogConfig{Service: "order", Region: "b", Sink: NewWriterSink(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan []byte, 1) // the replication stream between b and c
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/rides", func(w http.ResponseWriter, r *http.Request) {
		logB.InfoContext(r.Context(), "ride requested")
		_, span, carrier := StartProducerSpan(r.Context(), tpB, "outbox publish", attribute.String("ride.id", "r1"))
		msg, _ := json.Marshal(rideEvent{RideID: "r1", Trace: carrier})
		events <- msg
		span.End()
		w.WriteHeader(http.StatusCreated)
	})
	srv := httptest.NewServer(ServerMiddleware(tpB, "", mux))
	defer srv.Close()

	client := &http.Client{Transport: NewTransport(nil, tpA), Timeout: 5 * time.Second}
	ctx, ride := tpA.Tracer("t").Start(context.Background(), "rider books a ride")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/rides?token=secret", strings.NewReader(`{}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	ride.End()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if req.Header.Get("traceparent") != "" {
		t.Fatal("the transport wrote into the caller's request")
	}

	var ev rideEvent
	select {
	case raw := <-events:
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no replication event within 5s")
	}
	_, apply := StartConsumerSpan(context.Background(), tpC, "replication apply", ev.Trace)
	apply.End()
	flushA()
	flushB()
	flushC()

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, ring := range []*RingExporter{ringA, ringB, ringC} {
		for _, s := range ring.Spans() {
			byName[s.Name()] = s
		}
	}
	chain := []struct {
		name string
		kind trace.SpanKind
	}{
		{"rider books a ride", trace.SpanKindInternal},
		{"POST", trace.SpanKindClient},
		{"POST /v1/rides", trace.SpanKindServer},
		{"outbox publish", trace.SpanKindProducer},
		{"replication apply", trace.SpanKindConsumer},
	}
	want := ride.SpanContext().TraceID()
	for i, link := range chain {
		s, ok := byName[link.name]
		if !ok {
			t.Fatalf("no span %q among %v", link.name, keys(byName))
		}
		if s.SpanContext().TraceID() != want {
			t.Errorf("span %q is in trace %s, want %s", link.name, s.SpanContext().TraceID(), want)
		}
		if s.SpanKind() != link.kind {
			t.Errorf("span %q is of kind %v, want %v", link.name, s.SpanKind(), link.kind)
		}
		if i > 0 && s.Parent().SpanID() != byName[chain[i-1].name].SpanContext().SpanID() {
			t.Errorf("span %q is not the child of %q", link.name, chain[i-1].name)
		}
	}
	server := attrs(byName["POST /v1/rides"])
	if server["http.route"] != "POST /v1/rides" || server["http.response.status_code"] != "201" || server["http.request.method"] != "POST" {
		t.Errorf("server span attributes %v", server)
	}
	client2 := attrs(byName["POST"])
	if strings.Contains(client2["url.full"], "secret") || client2["http.response.status_code"] != "201" {
		t.Errorf("client span attributes %v", client2)
	}

	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", logs.String(), err)
	}
	serverSpan := byName["POST /v1/rides"].SpanContext()
	if line["trace_id"] != want.String() || line["span_id"] != serverSpan.SpanID().String() {
		t.Errorf("log line %v does not carry the server span's ids %s/%s", line, want, serverSpan.SpanID())
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

func TestServerSpanStatus(t *testing.T) {
	cases := map[string]struct {
		handler    http.HandlerFunc
		route      string
		wantName   string
		wantStatus codes.Code
		wantCode   string
	}{
		"A 503 is recorded as an error.": {
			func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
			"/v1/rides/{id}", "GET /v1/rides/{id}", codes.Error, "503",
		},
		"A 404 is not a server error.": {
			func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
			"/v1/rides/{id}", "GET /v1/rides/{id}", codes.Unset, "404",
		},
		"A handler that only writes a body answered 200.": {
			func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
			"", "GET", codes.Unset, "200",
		},
		"A handler that writes nothing answered 200.": {
			func(w http.ResponseWriter, r *http.Request) {},
			"", "GET", codes.Unset, "200",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tp, ring, flush := newTestProvider(t, "order", "eu", 1)
			rec := httptest.NewRecorder()
			ServerMiddleware(tp, tc.route, tc.handler).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/rides/7", nil))
			flush()
			spans := ring.Spans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name() != tc.wantName || s.Status().Code != tc.wantStatus || attrs(s)["http.response.status_code"] != tc.wantCode {
				t.Fatalf("span %q status %v attrs %v; want %q %v code %s", s.Name(), s.Status(), attrs(s), tc.wantName, tc.wantStatus, tc.wantCode)
			}
		})
	}
}

func TestServerSpanRecordsAPanic(t *testing.T) {
	tp, ring, flush := newTestProvider(t, "order", "eu", 1)
	h := ServerMiddleware(tp, "/boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the middleware swallowed the panic")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/boom", nil))
	}()
	flush()
	if spans := ring.Spans(); len(spans) != 1 || spans[0].Status().Code != codes.Error {
		t.Fatalf("spans after a panic: %v", spanNames(spans))
	}
}

func TestClientSpanStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") == "" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	cases := map[string]struct {
		url        string
		wantErr    bool
		wantStatus codes.Code
	}{
		"A 502 answer marks the client span as an error.":         {srv.URL, false, codes.Error},
		"A refused connection marks the client span as an error.": {closedURL, true, codes.Error},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tp, ring, flush := newTestProvider(t, "gateway", "eu", 1)
			client := &http.Client{Transport: NewTransport(nil, tp), Timeout: 5 * time.Second}
			resp, err := client.Get(tc.url)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				_ = resp.Body.Close()
			}
			flush()
			spans := ring.Spans()
			if len(spans) != 1 || spans[0].Status().Code != tc.wantStatus || spans[0].SpanKind() != trace.SpanKindClient {
				t.Fatalf("spans %v", spanNames(spans))
			}
		})
	}
}

func TestNoopMiddlewarePassesTheTraceThrough(t *testing.T) {
	parent := remoteParent(t, true)
	var got map[string]string
	h := ServerMiddleware(noop.NewTracerProvider(), "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = InjectMap(r.Context())
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("traceparent", "00-"+parent.TraceID().String()+"-"+parent.SpanID().String()+"-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !strings.Contains(got["traceparent"], parent.TraceID().String()) {
		t.Fatalf("the handler's outgoing trace context is %v, want trace %s", got, parent.TraceID())
	}

	got = map[string]string{"x": "y"}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if got != nil {
		t.Fatalf("a request without trace context gave %v, want nil", got)
	}
}

func TestMapCarrier(t *testing.T) {
	cases := map[string]struct {
		m         map[string]string
		wantValid bool
	}{
		"A nil map carries nothing.":               {nil, false},
		"A malformed traceparent carries nothing.": {map[string]string{"traceparent": "00-zz-yy-01"}, false},
		"A well-formed traceparent is extracted.":  {map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sc := trace.SpanContextFromContext(ExtractMap(context.Background(), tc.m))
			if sc.IsValid() != tc.wantValid {
				t.Fatalf("valid = %v, want %v", sc.IsValid(), tc.wantValid)
			}
			if tc.wantValid {
				back := InjectMap(trace.ContextWithRemoteSpanContext(context.Background(), sc))
				if back["traceparent"] != tc.m["traceparent"] {
					t.Fatalf("round trip gave %v", back)
				}
			}
		})
	}
	if m := InjectMap(context.Background()); m != nil {
		t.Fatalf("InjectMap without a span = %v, want nil", m)
	}
}

// TestMiddlewareKeepsHijackAndFlush checks that a WebSocket upgrade (which
// hijacks the connection) and streaming (which flushes) work through the
// server middleware.
func TestMiddlewareKeepsHijackAndFlush(t *testing.T) {
	tp, ring, flush := newTestProvider(t, "location", "eu", 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hijack", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack through the middleware: %v", err)
			return
		}
		defer func() { _ = conn.Close() }()
		_, _ = brw.WriteString("hello")
		_ = brw.Flush()
	})
	mux.HandleFunc("GET /flush", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the writer lost http.Flusher")
		}
		_, _ = io.WriteString(w, "a")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the middleware: %v", err)
		}
	})
	srv := httptest.NewServer(ServerMiddleware(tp, "", mux))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/flush")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, "GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n")
	got, _ := io.ReadAll(conn)
	if !strings.Contains(string(got), "101") || !strings.HasSuffix(string(got), "hello") {
		t.Fatalf("hijacked answer %q", got)
	}
	// The hijacking handler closes the connection before its span ends: poll.
	names := map[string]string{}
	for deadline := time.Now().Add(5 * time.Second); ; {
		flush()
		for _, s := range ring.Spans() {
			names[s.Name()] = attrs(s)["http.response.status_code"]
		}
		if len(names) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if names["GET /hijack"] != "101" || names["GET /flush"] != "200" {
		t.Fatalf("spans and their codes: %v", names)
	}
}
