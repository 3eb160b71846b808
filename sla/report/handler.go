package report

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Access says who may call a route.
type Access int

// Route access levels.
const (
	// Public routes serve no data: the status page and the OpenAPI document.
	Public Access = iota
	// Read routes serve data; see Config.ReadAuth.
	Read
	// Write routes change something and always need a bearer token.
	Write
)

// Route is one method and path the Handler serves. Paths ending in / match
// every path below them (the status page's assets).
type Route struct {
	Method string // GET or POST (GET routes answer HEAD too)
	Path   string // the exact path, or a prefix ending in /
	Access Access
	serve  func(*Handler, http.ResponseWriter, *http.Request)
}

var routes = []Route{
	{http.MethodGet, "/", Public, (*Handler).servePage},
	{http.MethodGet, "/static/", Public, (*Handler).serveStatic},
	{http.MethodGet, "/api/v1/openapi.json", Public, (*Handler).serveOpenAPI},
	{http.MethodGet, "/api/v1/sla", Read, (*Handler).serveSLA},
	{http.MethodGet, "/api/v1/sla/timeseries", Read, (*Handler).serveTimeseries},
	{http.MethodGet, "/api/v1/live", Read, (*Handler).serveLive},
	{http.MethodPost, "/api/v1/faults", Write, (*Handler).serveFaults},
	{http.MethodPost, "/api/v1/drills", Write, (*Handler).serveDrills},
}

// Routes lists the routes the Handler serves (the OpenAPI document lists the
// same; a test keeps them equal).
func Routes() []Route { return slices.Clone(routes) }

// Handler serves the SLA report API and the status page. It implements
// http.Handler.
type Handler struct {
	cfg      Config
	reporter *Reporter
	tokens   [][sha256.Size]byte
	limits   Limits
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New validates cfg, reads the token file and returns the Handler.
func New(cfg Config) (*Handler, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	toks, err := cfg.tokens()
	if err != nil {
		return nil, err
	}
	h := &Handler{
		cfg:      cfg,
		reporter: &Reporter{Spec: cfg.Spec, History: cfg.History, Now: cfg.Now},
		limits:   Limits{MaxWindow: cfg.MaxWindow, MaxIncidents: cfg.MaxIncidents, MaxHours: cfg.MaxHours, MaxPoints: cfg.MaxPoints},
		requests: telemetry.NewCounterVec(catalog.ReportRequests),
		duration: telemetry.NewHistogramVec(catalog.ReportRequestDuration),
	}
	for _, t := range toks {
		h.tokens = append(h.tokens, sha256.Sum256([]byte(t)))
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{h.requests, h.duration} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("report: registering metrics: %w", err)
			}
		}
	}
	return h, nil
}

// Reporter returns the Reporter the Handler answers from.
func (h *Handler) Reporter() *Reporter { return h.reporter }

// match finds the route of a path, and whether another method serves it.
func match(method, path string) (rt *Route, allowed []string) {
	for i := range routes {
		r := &routes[i]
		ok := r.Path == path || (strings.HasSuffix(r.Path, "/") && r.Path != "/" && strings.HasPrefix(path, r.Path))
		if !ok {
			continue
		}
		if r.Method == method || (method == http.MethodHead && r.Method == http.MethodGet) {
			return r, nil
		}
		allowed = append(allowed, r.Method)
	}
	return nil, allowed
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := telemetry.NewStatusRecorder(w)
	label := "other"
	defer func() {
		h.requests.WithLabelValues(label, strconv.Itoa(rec.Status())).Inc()
		h.duration.WithLabelValues(label).Observe(time.Since(start).Seconds())
	}()
	w = rec
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if len(r.URL.RawQuery) > maxQuery {
		writeError(w, http.StatusRequestURITooLong, "query", fmt.Sprintf("the query string is %d bytes; keep it under %d", len(r.URL.RawQuery), maxQuery))
		return
	}
	rt, allowed := match(r.Method, r.URL.Path)
	if rt == nil {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, "", fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
			return
		}
		writeError(w, http.StatusNotFound, "", "no such endpoint; see /api/v1/openapi.json")
		return
	}
	label = rt.Path
	if !h.authorize(w, r, rt.Access) {
		return
	}
	rt.serve(h, w, r)
}

// authorize answers 401 or 403 and returns false when the request may not
// use a route of that access.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, a Access) bool {
	switch a {
	case Public:
		return true
	case Read:
		if !h.cfg.ReadAuth && (h.cfg.AnonymousRemoteReads || loopback(r.RemoteAddr)) {
			return true
		}
	case Write:
		if len(h.tokens) == 0 {
			writeError(w, http.StatusForbidden, "", "writes are turned off: the server has no bearer tokens; start it with a token file")
			return false
		}
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="carpoolsla"`)
		writeError(w, http.StatusUnauthorized, "", "this endpoint needs a bearer token: send Authorization: Bearer <token> with a token from the server's token file")
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	found := 0
	for _, t := range h.tokens {
		found |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	if found == 0 {
		writeError(w, http.StatusForbidden, "", "the bearer token is not one of the server's tokens; check the token file")
		return false
	}
	return true
}

func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type errorBody struct {
	Error string `json:"error"`
	Param string `json:"param,omitempty"`
}

func writeError(w http.ResponseWriter, code int, param, msg string) {
	writeJSON(w, code, errorBody{Error: msg, Param: param})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// readFailed answers a failed history or live read: 504 on timeout, 502
// otherwise (the store behind the API failed, not the request).
func (h *Handler) readFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.cfg.Log.Warn("report read failed", "what", what, "path", r.URL.Path, "err", err)
	if errors.Is(err, context.DeadlineExceeded) {
		writeError(w, http.StatusGatewayTimeout, "", fmt.Sprintf("%s took longer than %s; ask for a shorter window", what, h.cfg.QueryTimeout))
		return
	}
	writeError(w, http.StatusBadGateway, "", fmt.Sprintf("%s failed: %v", what, err))
}

// values parses the query string strictly: a malformed escape is a 400, not
// a parameter silently dropped.
func values(r *http.Request) (url.Values, *ParamError) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, paramErr("query", "the query string is malformed (%v); escape it as application/x-www-form-urlencoded", err)
	}
	return v, nil
}

func (h *Handler) serveSLA(w http.ResponseWriter, r *http.Request) {
	v, perr := values(r)
	if perr == nil {
		var q Query
		q, perr = ParseQuery(v, h.cfg.Spec, h.cfg.Now(), h.limits)
		if perr == nil {
			h.serveReport(w, r, v, q)
			return
		}
	}
	writeError(w, http.StatusBadRequest, perr.Param, perr.Msg)
}

func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request, v url.Values, q Query) {
	if !q.CSV && wantsCSV(r) {
		if _, given := v["format"]; !given {
			q.CSV = true
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	rep, err := h.reporter.SLA(ctx, q)
	if err != nil {
		h.readFailed(w, r, "reading the SLA history", err)
		return
	}
	if q.CSV {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+csvName(rep)+`"`)
		w.Header().Set("Cache-Control", "no-store")
		if err := WriteCSV(w, rep); err != nil {
			h.cfg.Log.Warn("writing the CSV report", "err", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func noParams(r *http.Request) *ParamError {
	v, err := values(r)
	if err != nil {
		return err
	}
	return checkParams(v, nil)
}

func wantsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/csv") {
			return true
		}
	}
	return false
}

func (h *Handler) serveTimeseries(w http.ResponseWriter, r *http.Request) {
	v, perr := values(r)
	var q TimeseriesQuery
	if perr == nil {
		q, perr = ParseTimeseries(v, h.cfg.Spec, h.cfg.Now(), h.limits)
	}
	if perr != nil {
		writeError(w, http.StatusBadRequest, perr.Param, perr.Msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	ts, err := h.reporter.Timeseries(ctx, q)
	if err != nil {
		h.readFailed(w, r, "reading the SLI timeseries", err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

func (h *Handler) serveLive(w http.ResponseWriter, r *http.Request) {
	if err := noParams(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Param, err.Msg)
		return
	}
	if h.cfg.Live == nil {
		writeError(w, http.StatusServiceUnavailable, "", "no live source is configured: this server reports history only")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	st, err := h.cfg.Live.Live(ctx)
	if err != nil {
		h.readFailed(w, r, "reading the engine's live status", err)
		return
	}
	if st.Regions == nil {
		st.Regions = []LiveRegion{}
	}
	writeJSON(w, http.StatusOK, st)
}

// decodeBody reads the request's body, at most limit bytes, as exactly one
// JSON value into v, refusing unknown fields. When it cannot, it answers 400
// naming the body, what it should be and an example, and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any, what, example string) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "body", fmt.Sprintf("the body is not %s: %v; send JSON such as %s (up to %d bytes)", what, clip(err.Error()), example, limit))
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "body", "the body holds more than one JSON value; send one: "+what)
		return false
	}
	return true
}

// FaultAction is the body of POST /api/v1/faults.
type FaultAction struct {
	Region string `json:"region"`
	// Action is inject or clear.
	Action string `json:"action"`
	// Fault is what to inject (ignored by clear).
	Fault FaultRequest `json:"fault"`
}

func (h *Handler) serveFaults(w http.ResponseWriter, r *http.Request) {
	if err := noParams(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Param, err.Msg)
		return
	}
	if h.cfg.Faults == nil {
		writeError(w, http.StatusServiceUnavailable, "", "fault injection is not configured on this server")
		return
	}
	var a FaultAction
	if !decodeBody(w, r, maxBody, &a, "a fault action", `{"region":"sh-a","action":"inject","fault":{"error_rate":0.05}}`) {
		return
	}
	if !slices.Contains(h.cfg.Spec.RegionNames(), a.Region) {
		writeError(w, http.StatusBadRequest, "region", fmt.Sprintf("%q is not a region of the spec; use one of %s", clip(a.Region), strings.Join(h.cfg.Spec.RegionNames(), ", ")))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	var err error
	switch a.Action {
	case "inject":
		if verr := a.Fault.Validate(serviceNames(h.cfg.Spec)); verr != nil {
			pe := &ParamError{Param: "fault", Msg: verr.Error()}
			errors.As(verr, &pe)
			writeError(w, http.StatusBadRequest, pe.Param, pe.Msg)
			return
		}
		err = h.cfg.Faults.Inject(ctx, a.Region, a.Fault)
	case "clear":
		a.Fault = FaultRequest{}
		err = h.cfg.Faults.Clear(ctx, a.Region)
	default:
		writeError(w, http.StatusBadRequest, "action", fmt.Sprintf("%q is not an action; use inject or clear", clip(a.Action)))
		return
	}
	if err != nil {
		h.readFailed(w, r, "forwarding the fault to region "+a.Region, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}
