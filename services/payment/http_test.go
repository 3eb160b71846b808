package payment

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

const goodBody = `{"ride_id":"1","rider_id":"rider-1","amount":2350,"currency":"CNY","idempotency_key":"k"}`

func do(t *testing.T, h http.Handler, method, path, body string, header map[string]string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var m map[string]any
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %s", method, path, w.Body)
	}
	return w, m
}

func TestHTTPChargeRefundFlow(t *testing.T) {
	f := newFixture(t, false)
	h := f.svc.Handler()
	w, m := do(t, h, "POST", "/v1/payments", goodBody, nil)
	if w.Code != 201 || m["status"] != "charged" || m["amount"] != 2350.0 {
		t.Fatalf("charge: %d %v", w.Code, m)
	}
	id := m["id"].(string)
	w, m2 := do(t, h, "POST", "/v1/payments", goodBody, nil)
	if w.Code != 200 || m2["id"] != id || w.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %v %v", w.Code, m2, w.Header())
	}
	// The key may come in the header instead.
	body := strings.Replace(goodBody, `,"idempotency_key":"k"`, "", 1)
	if w, m := do(t, h, "POST", "/v1/payments", body, map[string]string{"Idempotency-Key": "k"}); w.Code != 200 || m["id"] != id {
		t.Fatalf("key in the header: %d %v", w.Code, m)
	}
	if w, m := do(t, h, "GET", "/v1/payments/"+id, "", nil); w.Code != 200 || m["id"] != id {
		t.Fatalf("get: %d %v", w.Code, m)
	}
	for range 2 {
		w, m := do(t, h, "POST", "/v1/payments/"+id+"/refund", `{"reason":"ride cancelled"}`, nil)
		if w.Code != 200 || m["status"] != "refunded" || m["refund_reason"] != "ride cancelled" {
			t.Fatalf("refund: %d %v", w.Code, m)
		}
	}
	if w, m := do(t, h, "POST", "/v1/payments/"+id+"/refund", "", nil); w.Code != 200 || m["status"] != "refunded" {
		t.Fatalf("refund without a body: %d %v", w.Code, m)
	}
	if c, r := f.ledger(0); c != 1 || r != 1 {
		t.Fatalf("ledger %d %d", c, r)
	}
	for _, tc := range []struct {
		op, code string
		want     float64
	}{{"charge", "201", 1}, {"charge", "200", 2}, {"refund", "200", 3}} {
		if got := f.metric(t, "carpool_request_duration_seconds", map[string]string{"operation": tc.op, "code": tc.code}); got != tc.want {
			t.Errorf("%s %s observed %v times, want %v", tc.op, tc.code, got, tc.want)
		}
	}
}

func TestHTTPBadInput(t *testing.T) {
	tests := map[string]struct {
		method, path, body string
		header             map[string]string
		code               int
		field              string
	}{
		"Malformed JSON names the body.":                 {"POST", "/v1/payments", `{"ride_id":`, nil, 400, "body"},
		"Broken JSON syntax names the body.":             {"POST", "/v1/payments", `{"ride_id" "1"}`, nil, 400, "body"},
		"An empty body names the body.":                  {"POST", "/v1/payments", ``, nil, 400, "body"},
		"A JSON array names the body.":                   {"POST", "/v1/payments", `[]`, nil, 400, "body"},
		"Trailing data names the body.":                  {"POST", "/v1/payments", goodBody + `{}`, nil, 400, "body"},
		"A missing ride id names ride_id.":               {"POST", "/v1/payments", strings.Replace(goodBody, `"ride_id":"1",`, "", 1), nil, 400, "ride_id"},
		"A missing key names idempotency_key.":           {"POST", "/v1/payments", strings.Replace(goodBody, `,"idempotency_key":"k"`, "", 1), nil, 400, "idempotency_key"},
		"An amount as a string names amount.":            {"POST", "/v1/payments", strings.Replace(goodBody, `2350`, `"2350"`, 1), nil, 400, "amount"},
		"A fractional amount names amount.":              {"POST", "/v1/payments", strings.Replace(goodBody, `2350`, `23.5`, 1), nil, 400, "amount"},
		"A negative amount names amount.":                {"POST", "/v1/payments", strings.Replace(goodBody, `2350`, `-1`, 1), nil, 400, "amount"},
		"A bad currency names currency.":                 {"POST", "/v1/payments", strings.Replace(goodBody, `CNY`, `yuan`, 1), nil, 400, "currency"},
		"An unknown field is named.":                     {"POST", "/v1/payments", strings.Replace(goodBody, `{`, `{"tip":5,`, 1), nil, 400, "tip"},
		"Header and body keys that differ name the key.": {"POST", "/v1/payments", goodBody, map[string]string{"Idempotency-Key": "other"}, 400, "idempotency_key"},
		"An oversize body is refused with 413.":          {"POST", "/v1/payments", `{"ride_id":"` + strings.Repeat("x", 20<<10) + `"}`, nil, 413, "body"},
		"A body that is not JSON is refused with 415.":   {"POST", "/v1/payments", goodBody, map[string]string{"Content-Type": "text/plain"}, 415, "Content-Type"},
		"GET on the collection is a wrong method.":       {"GET", "/v1/payments", "", nil, 405, "method"},
		"DELETE on a payment is a wrong method.":         {"DELETE", "/v1/payments/pay_x", "", nil, 405, "method"},
		"GET on a refund is a wrong method.":             {"GET", "/v1/payments/pay_x/refund", "", nil, 405, "method"},
		"An unknown payment is 404.":                     {"GET", "/v1/payments/pay_x", "", nil, 404, "id"},
		"Refunding an unknown payment is 404.":           {"POST", "/v1/payments/pay_x/refund", "", nil, 404, "id"},
		"A refund with an unknown field names it.":       {"POST", "/v1/payments/pay_x/refund", `{"why":"x"}`, nil, 400, "why"},
		"A refund reason over 500 bytes names reason.":   {"POST", "/v1/payments/pay_x/refund", `{"reason":"` + strings.Repeat("x", 501) + `"}`, nil, 400, "reason"},
		"An unknown path is 404.":                        {"GET", "/v2/whatever", "", nil, 404, "path"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, false)
			w, m := do(t, f.svc.Handler(), tc.method, tc.path, tc.body, tc.header)
			if w.Code != tc.code || m["field"] != tc.field || m["error"] == "" {
				t.Fatalf("got %d %v, want %d naming %s", w.Code, m, tc.code, tc.field)
			}
			if c, _ := f.ledger(0); c != 0 || f.ps[0].calls.Load() != 0 {
				t.Fatal("a bad request charged")
			}
			if tc.code == 405 && w.Header().Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
}

func TestHTTPConflictsAndFailures(t *testing.T) {
	f := newFixture(t, true)
	h := f.svc.Handler()
	w, m := do(t, h, "POST", "/v1/payments", goodBody, nil)
	if w.Code != 502 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("all providers failing: %d %v", w.Code, m)
	}
	f.ps[0].fail.Store(false)
	if w, _ := do(t, h, "POST", "/v1/payments", goodBody, nil); w.Code != 201 {
		t.Fatalf("retry: %d", w.Code)
	}
	w, m = do(t, h, "POST", "/v1/payments", strings.Replace(goodBody, "2350", "999", 1), nil)
	if w.Code != 409 || m["field"] != "idempotency_key" {
		t.Fatalf("reused key: %d %v", w.Code, m)
	}
	if _, err := f.svc.CompensateRide(context.Background(), "2", "cancelled"); err != nil {
		t.Fatal(err)
	}
	w, m = do(t, h, "POST", "/v1/payments", strings.Replace(strings.Replace(goodBody, `"1"`, `"2"`, 1), `"k"`, `"k2"`, 1), nil)
	if w.Code != 409 || m["field"] != "ride_id" {
		t.Fatalf("compensated ride: %d %v", w.Code, m)
	}
	if got := f.metric(t, "carpool_request_duration_seconds", map[string]string{"code": "502", "outcome": "error"}); got != 1 {
		t.Fatalf("502 observed %v times", got)
	}
	if got := f.metric(t, "carpool_request_duration_seconds", map[string]string{"code": "409", "outcome": "ok"}); got != 2 {
		t.Fatalf("409 observed %v times as ok", got)
	}
}

func TestHTTPFaults(t *testing.T) {
	f := newFixture(t, false)
	srv := httptest.NewServer(f.svc.Handler())
	defer srv.Close()
	post := func() (*http.Response, error) {
		return srv.Client().Post(srv.URL+"/v1/payments", "application/json", strings.NewReader(goodBody))
	}
	_ = f.in.Set(faults.State{Services: map[string]faults.ServiceFaults{"payment": {ErrorRate: 1}}})
	resp, err := post()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "injected") {
		t.Fatalf("injected error: %d %s", resp.StatusCode, b)
	}
	_ = f.in.Set(faults.State{Down: true})
	if resp, err := post(); err == nil {
		resp.Body.Close()
		t.Fatalf("a down region answered %d", resp.StatusCode)
	}
	if c, _ := f.ledger(0); c != 0 {
		t.Fatal("charged through a fault")
	}
	f.in.Clear()
	resp, err = post()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("after clearing: %d", resp.StatusCode)
	}
	if got := f.metric(t, "carpool_request_duration_seconds", map[string]string{"code": "503"}); got != 1 {
		t.Fatalf("the injected 503 was observed %v times", got)
	}
}

func TestHTTPCarriesTheTraceAndTheExemplar(t *testing.T) {
	f := newFixture(t, false)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	f.svc.tracer = tp.Tracer("test")
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	r := httptest.NewRequest("POST", "/v1/payments", strings.NewReader(goodBody))
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), parent), propagation.HeaderCarrier(r.Header))
	w := httptest.NewRecorder()
	f.svc.Handler().ServeHTTP(w, r)
	if w.Code != 201 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	names := map[string]bool{}
	for _, s := range rec.Ended() {
		names[s.Name()] = true
		if s.SpanContext().TraceID() != parent.TraceID() {
			t.Errorf("span %s is in trace %s, not the caller's", s.Name(), s.SpanContext().TraceID())
		}
	}
	if !names["payment.charge"] || !names["payment.attempt"] {
		t.Fatalf("spans %v", names)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "carpool_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				for _, l := range b.GetExemplar().GetLabel() {
					found = found || (l.GetName() == "trace_id" && l.GetValue() == parent.TraceID().String())
				}
			}
		}
	}
	if !found {
		t.Fatal("no exemplar carries the request's trace id")
	}
}
