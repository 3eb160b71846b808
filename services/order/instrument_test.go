package order

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

const (
	traceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
	traceparent = "00-" + traceID + "-" + parentSpan + "-01"
)

// histogram returns the request-duration series with these labels.
func histogram(t *testing.T, e *env, service, op, code, outcome string) *dto.Histogram {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{catalog.LabelRegion: "sh-a", catalog.LabelService: service, catalog.LabelOperation: op, catalog.LabelCode: code, catalog.LabelOutcome: outcome}
	for _, mf := range mfs {
		if mf.GetName() != catalog.RequestDuration.Name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetHistogram()
		}
	}
	return nil
}

func histCount(t *testing.T, e *env, service, op, code, outcome string) uint64 {
	return histogram(t, e, service, op, code, outcome).GetSampleCount()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTracesExemplarsAndLogs(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, envOpt{cfg: func(c *Config) { c.TracerProvider, c.Logger = tp, logger }})
	e.payer.chargeErr = func(n int) error { return errIf(n == 1, errIf(true, errTest)) }

	r := e.createRide(t, "traceparent", traceparent)
	if w := e.do("POST", "/v1/rides/"+itoa(r.ID)+"/complete", "", "traceparent", traceparent); w.Code != 200 {
		t.Fatalf("complete: %d %s", w.Code, w.Body)
	}

	// Every span of the ride is in the caller's trace; the server spans are
	// children of the caller's span.
	names := map[string]int{}
	for _, s := range rec.Ended() {
		names[s.Name()]++
		if got := s.SpanContext().TraceID().String(); got != traceID {
			t.Errorf("span %q is in trace %s; want %s", s.Name(), got, traceID)
		}
		if strings.HasPrefix(s.Name(), "POST ") && s.Parent().SpanID().String() != parentSpan {
			t.Errorf("server span %q has parent %s; want %s", s.Name(), s.Parent().SpanID(), parentSpan)
		}
	}
	for _, want := range []string{"POST /v1/rides", "POST /v1/rides/{id}/complete", "pricing.Quote", "store.PutRide", "dispatch match_driver", "location.Nearby", "payment.Charge"} {
		if names[want] == 0 {
			t.Errorf("no span %q; spans: %v", want, names)
		}
	}

	// The histogram carries the trace id as an exemplar.
	h := histogram(t, e, "order", "create_ride", "201", "ok")
	if h.GetSampleCount() != 1 {
		t.Fatalf("create_ride 201 ok count = %d; want 1", h.GetSampleCount())
	}
	found := false
	for _, b := range h.GetBucket() {
		for _, lp := range b.GetExemplar().GetLabel() {
			found = found || (lp.GetName() == "trace_id" && lp.GetValue() == traceID)
		}
	}
	if !found {
		t.Error("no exemplar with the trace id on create_ride")
	}

	// The warning about the failed charge carries region, service and the trace.
	var line map[string]any
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "charge failed") {
			_ = json.Unmarshal([]byte(l), &line)
		}
	}
	if line["region"] != "sh-a" || line["service"] != "order" || line["trace_id"] != traceID || line["span_id"] == nil {
		t.Errorf("log line %v; want region, service, trace_id and span_id", line)
	}
}

var errTest = errorString("failure (test)")

type errorString string

func (e errorString) Error() string { return string(e) }

func TestOutcomeLabels(t *testing.T) {
	in := &faults.Injector{}
	e := newEnv(t, envOpt{cfg: func(c *Config) { c.Faults = in }})
	e.do("GET", "/v1/rides/424242", "")
	e.do("POST", "/v1/rides", "{")
	_ = in.Set(faults.State{Services: map[string]faults.ServiceFaults{"order": {ErrorRate: 1}}})
	w := e.do("POST", "/v1/rides", rideBody)
	if w.Code != 503 || e.store.Len() != 0 {
		t.Fatalf("injected error: %d %s, %d rides written", w.Code, w.Body, e.store.Len())
	}
	tests := map[string]struct {
		op, code, outcome string
	}{
		"An unknown ride is a client's 4xx: outcome ok.": {"get_ride", "404", "ok"},
		"Malformed JSON is a client's 4xx: outcome ok.":  {"create_ride", "400", "ok"},
		"An injected 503 is measured as an error.":       {"create_ride", "503", "error"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if n := histCount(t, e, "order", tc.op, tc.code, tc.outcome); n != 1 {
				t.Fatalf("count = %d; want 1", n)
			}
		})
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil || len(problems) > 0 {
		t.Fatalf("promlint: %v %v", problems, err)
	}
}

func TestARegionDownDropsConnections(t *testing.T) {
	in := &faults.Injector{}
	e := newEnv(t, envOpt{cfg: func(c *Config) { c.Faults = in }})
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	_ = in.Update(func(s *faults.State) { s.Down = true })
	resp, err := http.Post(srv.URL+"/v1/rides", "application/json", strings.NewReader(rideBody))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a down region answered %d", resp.StatusCode)
	}
	in.Clear()
	resp, err = http.Post(srv.URL+"/v1/rides", "application/json", strings.NewReader(rideBody))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("after clearing: %v %v", resp, err)
	}
	resp.Body.Close()
	if e.store.Len() != 1 {
		t.Errorf("%d rides; want only the one after clearing", e.store.Len())
	}
}

func TestInstrumentationOff(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newEnv(t, envOpt{cfg: func(c *Config) { c.TracerProvider, c.DisableInstrumentation = tp, true }})
	r := e.createRide(t, "traceparent", traceparent)
	if w := e.do("POST", "/v1/rides/"+itoa(r.ID)+"/complete", ""); w.Code != 200 {
		t.Fatalf("complete: %d", w.Code)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans with instrumentation off", n)
	}
	if h := histogram(t, e, "order", "create_ride", "201", "ok"); h != nil {
		t.Errorf("a create was measured with instrumentation off")
	}
	if v := toFloat64(e.svc.tel.created); v != 0 {
		t.Errorf("orders created counted %v with instrumentation off", v)
	}
}
