package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP trace receiver on 127.0.0.1 that decodes every
// request and hands it to the test.
type collector struct {
	srv  *httptest.Server
	reqs chan *coltracepb.ExportTraceServiceRequest
	errs chan string
}

func newCollector(t *testing.T, path string) *collector {
	t.Helper()
	c := &collector{reqs: make(chan *coltracepb.ExportTraceServiceRequest, 16), errs: make(chan string, 16)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(code int, msg string) {
			c.errs <- msg
			http.Error(w, msg, code)
		}
		if r.Method != http.MethodPost || r.URL.Path != path {
			fail(http.StatusNotFound, "unexpected "+r.Method+" "+r.URL.Path)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			fail(http.StatusUnsupportedMediaType, "content type "+ct)
			return
		}
		var body io.Reader = http.MaxBytesReader(w, r.Body, 8<<20)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(body)
			if err != nil {
				fail(http.StatusBadRequest, "gzip: "+err.Error())
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			fail(http.StatusBadRequest, "read: "+err.Error())
			return
		}
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(raw, req); err != nil {
			fail(http.StatusBadRequest, "protobuf: "+err.Error())
			return
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
		c.reqs <- req
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func TestOTLPHTTPExporterSendsSpans(t *testing.T) {
	cases := map[string]struct {
		path     string
		endpoint func(hostport string) string
	}{
		"A host:port endpoint posts to /v1/traces.":       {"/v1/traces", func(h string) string { return h }},
		"An http URL without a path posts to /v1/traces.": {"/v1/traces", func(h string) string { return "http://" + h }},
		"An http URL with a path posts to that path.":     {"/otlp/traces", func(h string) string { return "http://" + h + "/otlp/traces" }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			col := newCollector(t, tc.path)
			hostport := strings.TrimPrefix(col.srv.URL, "http://")
			if !strings.HasPrefix(hostport, "127.0.0.1:") {
				t.Fatalf("collector listens on %s, want loopback", hostport)
			}
			tp, shutdown, err := NewTracerProvider(TracingConfig{
				Service: "order", Region: "eu", InstanceID: "i-7", SampleRatio: 1,
				OTLPEndpoint: tc.endpoint(hostport), ExportTimeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			tr := tp.Tracer("test")
			ctx, root := tr.Start(context.Background(), "POST /v1/rides")
			_, child := tr.Start(ctx, "quote")
			child.End()
			root.End()
			wantTrace := root.SpanContext().TraceID()

			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := shutdown(sctx); err != nil { // flushes the batch
				t.Fatalf("shutdown: %v", err)
			}
			var names []string
			deadline := time.After(5 * time.Second)
			for len(names) < 2 {
				select {
				case req := <-col.reqs:
					for _, rs := range req.GetResourceSpans() {
						res := map[string]string{}
						for _, kv := range rs.GetResource().GetAttributes() {
							res[kv.GetKey()] = kv.GetValue().GetStringValue()
						}
						if res["service.name"] != "order" || res["region"] != "eu" || res["service.instance.id"] != "i-7" {
							t.Errorf("resource attributes %v", res)
						}
						for _, ss := range rs.GetScopeSpans() {
							for _, s := range ss.GetSpans() {
								names = append(names, s.GetName())
								if !bytes.Equal(s.GetTraceId(), wantTrace[:]) {
									t.Errorf("span %s has trace id %s, want %s", s.GetName(), hex.EncodeToString(s.GetTraceId()), wantTrace)
								}
							}
						}
					}
				case msg := <-col.errs:
					t.Fatalf("collector refused a request: %s", msg)
				case <-deadline:
					t.Fatalf("collector got spans %v, want 2 within 5s", names)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, []string{"POST /v1/rides", "quote"}) {
				t.Fatalf("collector got spans %v", names)
			}
		})
	}
}
