package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// op is an API operation; its name is the operation label of
// carpool_request_duration_seconds (the names the SLA spec's order
// operations use).
type op uint8

const (
	opCreate op = iota
	opGet
	opStart
	opComplete
	opCancel
	opHealth
	opUnknown
	numOps
)

var (
	opNames  = [numOps]string{"create_ride", "get_ride", "start_ride", "complete_ride", "cancel_ride", "healthz", "unknown"}
	opRoutes = [numOps]string{"/v1/rides", "/v1/rides/{id}", "/v1/rides/{id}/start", "/v1/rides/{id}/complete", "/v1/rides/{id}/cancel", "/healthz", "unknown"}
	opAllow  = [numOps]string{"POST", "GET, HEAD", "POST", "POST", "POST", "GET, HEAD", ""}
	// spanNames[op][m] is "METHOD route" for m in GET, HEAD, POST, other.
	spanNames = func() (n [numOps][4]string) {
		for o := range numOps {
			for i, m := range []string{"GET", "HEAD", "POST", "HTTP"} {
				n[o][i] = m + " " + opRoutes[o]
			}
		}
		return n
	}()
)

func spanName(o op, method string) string {
	switch method {
	case http.MethodGet:
		return spanNames[o][0]
	case http.MethodHead:
		return spanNames[o][1]
	case http.MethodPost:
		return spanNames[o][2]
	}
	return spanNames[o][3]
}

// MaxRiderIDBytes and MaxIdempotencyKeyBytes bound those inputs.
const (
	MaxRiderIDBytes        = 128
	MaxIdempotencyKeyBytes = 255
	maxReasonBytes         = 512
)

// routed is a request's place in the API.
type routed struct {
	op       op
	id       string // the {id} segment, not yet parsed
	methodOK bool
}

func route(r *http.Request) routed {
	p := r.URL.Path
	rt := routed{op: opUnknown}
	switch {
	case p == "/healthz":
		rt.op = opHealth
	case p == "/v1/rides":
		rt.op = opCreate
	case strings.HasPrefix(p, "/v1/rides/"):
		id, action, sub := strings.Cut(p[len("/v1/rides/"):], "/")
		if id == "" {
			break
		}
		rt.id = id
		switch {
		case !sub:
			rt.op = opGet
		case action == "start":
			rt.op = opStart
		case action == "complete":
			rt.op = opComplete
		case action == "cancel":
			rt.op = opCancel
		}
	}
	switch opAllow[rt.op] {
	case "POST":
		rt.methodOK = r.Method == http.MethodPost
	case "GET, HEAD":
		rt.methodOK = r.Method == http.MethodGet || r.Method == http.MethodHead
	}
	return rt
}

// handler serves the HTTP API: instrumentation outside, then the fault
// injector's middleware, then the routes. The instrumentation sits outside
// the faults so that injected errors and latency are measured like real
// ones.
type handler struct {
	s     *Service
	inner http.Handler
}

func newHandler(s *Service) handler {
	h := handler{s: s}
	h.inner = s.cfg.Faults.Middleware(serviceOrder, http.HandlerFunc(h.serveRoute))
	return h
}

// Handler returns the HTTP API:
//
//	POST /v1/rides                 create (Idempotency-Key header honoured) → 201
//	GET  /v1/rides/{id}            read → 200
//	POST /v1/rides/{id}/start      matched → in_progress → 200
//	POST /v1/rides/{id}/complete   → completed → paid (or payment_failed) → 200
//	POST /v1/rides/{id}/cancel     optional body {"reason": "..."} → 200
//	GET|HEAD /healthz              200 while Run runs, else 503
func (s *Service) Handler() http.Handler { return &s.handler }

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &respWriter{StatusRecorder: *telemetry.NewStatusRecorder(w), rt: route(r)}
	tel := h.s.tel
	if !tel.on {
		h.inner.ServeHTTP(rw, r)
		return
	}
	start := time.Now()
	span := nopSpan
	if tel.tracing {
		ctx := tel.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span = tel.tracer.Start(ctx, spanName(rw.rt.op, r.Method), serverSpan)
		if span.IsRecording() { // attributes only for spans that keep them
			span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", opRoutes[rw.rt.op]))
		}
		r = r.WithContext(ctx)
	}
	h.inner.ServeHTTP(rw, r)
	if rw.Hijacked() { // the fault injector dropped the connection: no answer to measure
		span.SetStatus(codes.Error, "connection dropped (region down)")
		span.End()
		return
	}
	code := rw.Status()
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", code))
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
	}
	tel.observe(tel.httpObserver(rw.rt.op, code), time.Since(start).Seconds(), span)
	span.End()
}

func (h *handler) serveRoute(w http.ResponseWriter, r *http.Request) {
	var rt routed
	if rw, ok := w.(*respWriter); ok {
		rt = rw.rt
	} else {
		rt = route(r)
	}
	s := h.s
	if rt.op == opUnknown {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no such endpoint %s; rides live under /v1/rides", r.URL.Path), Field: "path"})
		return
	}
	if !rt.methodOK {
		w.Header().Set("Allow", opAllow[rt.op])
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, opRoutes[rt.op], opAllow[rt.op]), Field: "method"})
		return
	}
	switch rt.op {
	case opHealth:
		if !s.running.Load() {
			writeJSON(w, http.StatusServiceUnavailable, healthBody{Status: "not running", Region: s.cfg.Region, Reason: ReasonNotRunning})
			return
		}
		writeJSON(w, http.StatusOK, healthBody{Status: "ok", Region: s.cfg.Region})
	case opCreate:
		h.create(w, r)
	default:
		id, err := parseID(rt.id)
		if err != nil {
			writeError(w, err)
			return
		}
		var ride Ride
		switch rt.op {
		case opGet:
			ride, err = s.Get(r.Context(), id)
		case opStart:
			ride, err = s.Start(r.Context(), id)
		case opComplete:
			ride, err = s.Complete(r.Context(), id)
		case opCancel:
			var body cancelBody
			if _, err = decodeBody(w, r, s.cfg.MaxBodyBytes, &body, true); err == nil {
				if err = body.validate(); err == nil {
					ride, err = s.Cancel(r.Context(), id, body.Reason)
				}
			}
		}
		if err != nil {
			h.fail(w, r, rt.op, err)
			return
		}
		writeJSON(w, http.StatusOK, ride)
	}
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	s := h.s
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, errorBody{Error: fmt.Sprintf("Content-Type %q is not supported; send application/json", ct), Field: "Content-Type"})
			return
		}
	}
	key := r.Header.Get("Idempotency-Key")
	if err := validateKey(key); err != nil {
		writeError(w, err)
		return
	}
	var body createBody
	if _, err := decodeBody(w, r, s.cfg.MaxBodyBytes, &body, false); err != nil {
		writeError(w, err)
		return
	}
	req, err := body.request()
	if err != nil {
		writeError(w, err)
		return
	}
	req.IdempotencyKey = key
	ride, replayed, err := s.Create(r.Context(), req)
	if err != nil {
		h.fail(w, r, opCreate, err)
		return
	}
	w.Header().Set("Location", "/v1/rides/"+strconv.FormatInt(ride.ID, 10))
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusCreated, ride)
}

// fail answers err, and logs it when it is the server's failure.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, o op, err error) {
	if code := writeError(w, err); code >= 500 {
		h.s.tel.logf(r.Context(), slog.LevelWarn, "request failed", catalog.LabelOperation, opNames[o], "code", code, "err", err)
	}
}

type point struct {
	Lat *float64 `json:"lat"`
	Lng *float64 `json:"lng"`
}

type createBody struct {
	RiderID *string `json:"rider_id"`
	Pickup  *point  `json:"pickup"`
	Dropoff *point  `json:"dropoff"`
}

func (b createBody) request() (CreateRequest, error) {
	if b.RiderID == nil || strings.TrimSpace(*b.RiderID) == "" {
		return CreateRequest{}, &InputError{"rider_id", "is required: the id of the rider asking for the ride"}
	}
	if len(*b.RiderID) > MaxRiderIDBytes {
		return CreateRequest{}, &InputError{"rider_id", fmt.Sprintf("is %d bytes; it must be at most %d", len(*b.RiderID), MaxRiderIDBytes)}
	}
	if !printable(*b.RiderID) {
		return CreateRequest{}, &InputError{"rider_id", "must hold printable characters only"}
	}
	pickup, err := b.Pickup.latLng("pickup")
	if err != nil {
		return CreateRequest{}, err
	}
	dropoff, err := b.Dropoff.latLng("dropoff")
	if err != nil {
		return CreateRequest{}, err
	}
	return CreateRequest{RiderID: *b.RiderID, Pickup: pickup, Dropoff: dropoff}, nil
}

func (p *point) latLng(field string) (LatLng, error) {
	if p == nil {
		return LatLng{}, &InputError{field, `is required: an object {"lat": degrees, "lng": degrees}`}
	}
	if p.Lat == nil {
		return LatLng{}, &InputError{field + ".lat", "is required"}
	}
	if p.Lng == nil {
		return LatLng{}, &InputError{field + ".lng", "is required"}
	}
	if *p.Lat < -90 || *p.Lat > 90 {
		return LatLng{}, &InputError{field + ".lat", fmt.Sprintf("is %g; it must be within [-90, 90]", *p.Lat)}
	}
	if *p.Lng < -180 || *p.Lng > 180 {
		return LatLng{}, &InputError{field + ".lng", fmt.Sprintf("is %g; it must be within [-180, 180]", *p.Lng)}
	}
	return LatLng{Lat: *p.Lat, Lng: *p.Lng}, nil
}

type cancelBody struct {
	Reason string `json:"reason"`
}

func (b cancelBody) validate() error {
	if len(b.Reason) > maxReasonBytes {
		return &InputError{"reason", fmt.Sprintf("is %d bytes; it must be at most %d", len(b.Reason), maxReasonBytes)}
	}
	if !printable(b.Reason) {
		return &InputError{"reason", "must hold printable characters only"}
	}
	return nil
}

func validateKey(key string) error {
	if len(key) > MaxIdempotencyKeyBytes {
		return &InputError{"Idempotency-Key", fmt.Sprintf("is %d bytes; it must be at most %d", len(key), MaxIdempotencyKeyBytes)}
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return &InputError{"Idempotency-Key", "must be printable ASCII"}
		}
	}
	return nil
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '\uFFFD' {
			return false
		}
	}
	return true
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, &InputError{"id", fmt.Sprintf("%q is not a ride id; ride ids are positive decimal integers", s)}
	}
	return id, nil
}

// tooLargeError is a body over the limit (413).
type tooLargeError struct{ limit int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("the body is larger than %d bytes", e.limit)
}

// decodeBody reads one JSON object into v, strictly: unknown fields, a
// wrong type, trailing data and a body over max are errors naming the
// field. empty is true for an empty body, which is an error unless
// allowEmpty.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64, v any, allowEmpty bool) (empty bool, err error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			if allowEmpty {
				return true, nil
			}
			return true, &InputError{"body", "is empty; send a JSON object"}
		}
		return false, bodyError(err, max)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := bodyError(err, max); !isInput(e) {
				return false, e
			}
		}
		return false, &InputError{"body", "holds more than one JSON value; send one object"}
	}
	return false, nil
}

func isInput(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

func bodyError(err error, max int64) error {
	var (
		tooBig  *http.MaxBytesError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return &tooLargeError{limit: max}
	case errors.As(err, &syntax):
		return &InputError{"body", fmt.Sprintf("is not valid JSON (at byte %d: %v)", syntax.Offset, syntax)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &InputError{"body", "is not valid JSON (it ends early)"}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return &InputError{field, fmt.Sprintf("must be a JSON %s, not %s", jsonType(typeErr.Type.Kind().String()), typeErr.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			name = "body"
		}
		return &InputError{name, "is not a known field"}
	}
	return &InputError{"body", err.Error()}
}

func jsonType(kind string) string {
	switch kind {
	case "float64", "float32", "int", "int64":
		return "number"
	case "ptr", "struct", "map":
		return "object"
	}
	return kind
}

type errorBody struct {
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

type healthBody struct {
	Status string `json:"status"`
	Region string `json:"region"`
	Reason string `json:"reason,omitempty"`
}

// writeError answers err with its status and a JSON body naming the field
// (bad input), the from and to states (409) or the reason (503). It returns
// the status.
func writeError(w http.ResponseWriter, err error) int {
	var (
		in     *InputError
		tooBig *tooLargeError
		tr     *TransitionError
		reused *KeyReusedError
		un     *UnavailableError
	)
	code, body := http.StatusInternalServerError, errorBody{Error: "internal error: " + err.Error()}
	switch {
	case errors.As(err, &in):
		code, body = http.StatusBadRequest, errorBody{Error: in.Error(), Field: in.Field}
	case errors.As(err, &tooBig):
		code, body = http.StatusRequestEntityTooLarge, errorBody{Error: tooBig.Error(), Field: "body"}
	case errors.Is(err, ErrNotFound):
		code, body = http.StatusNotFound, errorBody{Error: "no such ride", Field: "id"}
	case errors.As(err, &tr):
		code, body = http.StatusConflict, errorBody{Error: tr.Error(), Field: "state", From: string(tr.From), To: string(tr.To)}
	case errors.As(err, &reused):
		code, body = http.StatusUnprocessableEntity, errorBody{Error: reused.Error(), Field: "Idempotency-Key"}
	case errors.As(err, &un):
		w.Header().Set("Retry-After", "1")
		code, body = http.StatusServiceUnavailable, errorBody{Error: un.Error(), Reason: un.Reason}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		code, body = http.StatusGatewayTimeout, errorBody{Error: "the request timed out: " + err.Error(), Reason: "timeout"}
	}
	writeJSON(w, code, body)
	return code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// respWriter records the status (telemetry.StatusRecorder, which passes
// Hijack through so the fault injector can drop connections) and carries
// the request's route to the handlers below.
type respWriter struct {
	telemetry.StatusRecorder
	rt routed
}
