package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Handler serves the payment API:
//
//	POST /v1/payments              charge: a JSON ChargeRequest; the key may come in the
//	                               Idempotency-Key header instead. 201 with the Receipt,
//	                               200 with the same Receipt (Idempotent-Replayed: true) on a retry.
//	GET  /v1/payments/{id}         the Receipt
//	POST /v1/payments/{id}/refund  refund in full; optional body {"reason": "..."}. 200 with the
//	                               Receipt; a second refund returns it again.
//
// Errors are JSON {"error": "...", "field": "..."}: 400 for a bad field,
// 404 for an unknown payment, 405 for a wrong method, 409 for a key reused
// for another charge or a compensated ride, 413 for a body over
// Config.MaxBodyBytes, 415 for a body that is not JSON, 502 when no
// provider could charge, 503 for an injected fault. The region's fault
// injector applies to every request. Charges and refunds are observed in
// carpool_request_duration_seconds (service "payment", operations charge
// and refund) with a trace_id exemplar when the request is sampled.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/payments", s.serveCharge)
	mux.HandleFunc("/v1/payments/{id}", s.serveGet)
	mux.HandleFunc("/v1/payments/{id}/refund", s.serveRefund)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint; the payment API serves /v1/payments", "path")
	})
	return s.instrument(s.cfg.Faults.Middleware(ServiceName, mux))
}

// chargeBody is the JSON of POST /v1/payments.
type chargeBody = ChargeRequest

// refundBody is the JSON of POST /v1/payments/{id}/refund.
type refundBody struct {
	Reason string `json:"reason"`
}

const maxReason = 500

func (s *Service) serveCharge(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	var req chargeBody
	if herr := decodeJSON(w, r, &req, s.cfg.MaxBodyBytes, false); herr != nil {
		herr.write(w)
		return
	}
	if h := r.Header.Get("Idempotency-Key"); h != "" {
		if req.IdempotencyKey != "" && req.IdempotencyKey != h {
			writeError(w, http.StatusBadRequest, "the Idempotency-Key header and the idempotency_key field differ; send one", "idempotency_key")
			return
		}
		req.IdempotencyKey = h
	}
	rcpt, replayed, err := s.charge(r.Context(), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	code := http.StatusCreated
	if replayed {
		code = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, code, rcpt)
}

func (s *Service) serveGet(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	rcpt, err := s.Get(r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rcpt)
}

func (s *Service) serveRefund(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	var body refundBody
	if herr := decodeJSON(w, r, &body, s.cfg.MaxBodyBytes, true); herr != nil {
		herr.write(w)
		return
	}
	if len(body.Reason) > maxReason {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("is longer than %d bytes", maxReason), "reason")
		return
	}
	rcpt, _, err := s.refund(r.Context(), RefundRequest{PaymentID: r.PathValue("id"), Reason: body.Reason})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rcpt)
}

// httpError is a 4xx answer naming the field at fault.
type httpError struct {
	code       int
	msg, field string
}

func (e *httpError) write(w http.ResponseWriter) { writeError(w, e.code, e.msg, e.field) }

// decodeJSON reads one JSON object from r's body into v, refusing unknown
// fields, trailing data and bodies over limit. An empty body is an error
// unless optional.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64, optional bool) *httpError {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return &httpError{http.StatusUnsupportedMediaType, "send the body as application/json", "Content-Type"}
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data")
		}
	}
	if err == nil || (optional && errors.Is(err, io.EOF)) {
		return nil
	}
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &maxErr):
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", limit), "body"}
	case errors.Is(err, io.EOF):
		return &httpError{http.StatusBadRequest, "the body is empty; send a JSON object", "body"}
	case errors.As(err, &syntaxErr):
		return &httpError{http.StatusBadRequest, fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err), "body"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &httpError{http.StatusBadRequest, "malformed JSON: the body ends early", "body"}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &httpError{http.StatusBadRequest, "the body must be a JSON object", "body"}
		}
		return &httpError{http.StatusBadRequest, fmt.Sprintf("must be a JSON %s", jsonKind(typeErr.Type.Kind().String())), field}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return &httpError{http.StatusBadRequest, "is not a field of this request", field}
	default:
		return &httpError{http.StatusBadRequest, "invalid body: " + err.Error(), "body"}
	}
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "number (an integer for amounts, in minor units)"
	case k == "string":
		return "string"
	default:
		return k
	}
}

// statusOf maps an error of Charge or Refund to its HTTP status.
func statusOf(err error, ok int) int {
	var verr *ValidationError
	switch {
	case err == nil:
		return ok
	case errors.As(err, &verr):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrIdempotencyConflict), errors.Is(err, ErrKeyVoided), errors.Is(err, ErrRideCompensated):
		return http.StatusConflict
	case errors.Is(err, ErrPaymentFailed):
		return http.StatusBadGateway
	case errors.Is(err, faults.ErrInjected), errors.Is(err, faults.ErrRegionDown):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// writeErr answers err with its status and the field it names.
func writeErr(w http.ResponseWriter, err error) {
	code := statusOf(err, http.StatusInternalServerError)
	field := ""
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		field = verr.Field
	case errors.Is(err, ErrIdempotencyConflict), errors.Is(err, ErrKeyVoided):
		field = "idempotency_key"
	case errors.Is(err, ErrRideCompensated):
		field = "ride_id"
	case errors.Is(err, ErrNotFound):
		field = "id"
	}
	if code == http.StatusBadGateway || code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, code, err.Error(), field)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "use "+allow, "method")
}

func writeError(w http.ResponseWriter, code int, msg, field string) {
	writeJSON(w, code, struct {
		Error string `json:"error"`
		Field string `json:"field,omitempty"`
	}{msg, field})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// instrument carries the W3C trace context of the request's headers (when
// no outer middleware did) and observes charges and refunds in the request
// duration histogram.
func (s *Service) instrument(next http.Handler) http.Handler {
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !trace.SpanContextFromContext(r.Context()).IsValid() && r.Header.Get("traceparent") != "" {
			r = r.WithContext(prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		}
		op := operation(r)
		if op == "" {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := telemetry.NewStatusRecorder(w)
		next.ServeHTTP(rec, r)
		if rec.Hijacked() {
			return // the region is down: no answer, nothing to observe
		}
		s.observe(r.Context(), op, rec.Status(), start)
	})
}

// operation names the request's operation, or "" for one not observed.
func operation(r *http.Request) string {
	if r.Method != http.MethodPost {
		return ""
	}
	p := r.URL.Path
	switch {
	case p == "/v1/payments":
		return OpCharge
	case strings.HasPrefix(p, "/v1/payments/") && strings.HasSuffix(p, "/refund") && strings.Count(p, "/") == 4:
		return OpRefund
	}
	return ""
}

// obsKey identifies a cached child of the duration histogram.
type obsKey struct {
	op   string
	code int
}

// observe records one request's duration with its code and outcome.
func (s *Service) observe(ctx context.Context, op string, code int, start time.Time) {
	key := obsKey{op, code}
	o, ok := s.observers.Load(key)
	if !ok {
		outcome := catalog.OutcomeOK
		if code >= 500 {
			outcome = catalog.OutcomeError
		}
		o, _ = s.observers.LoadOrStore(key, s.duration.WithLabelValues(s.cfg.Region, ServiceName, op, strconv.Itoa(code), outcome))
	}
	obs := o.(prometheus.Observer)
	v := time.Since(start).Seconds()
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if eo, ok := obs.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	obs.Observe(v)
}
