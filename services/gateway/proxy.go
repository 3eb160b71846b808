package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// StatusClientClosedRequest is recorded (nginx's 499) when the client went
// away before the upstream answered: not a server-side failure.
const StatusClientClosedRequest = 499

// exchange is one proxied request's routing state, carried in its context
// from route to the attempt transport.
type exchange struct {
	in        *url.URL // the incoming URL, re-targeted for each attempt
	body      []byte   // the buffered request body, resent on a retry
	first     int      // region of the first attempt
	served    int      // region of the latest attempt
	retryable bool
	key       string // the Idempotency-Key, when the request has one
	upgrade   bool
	payment   bool
	unit      Unit
}

type exchangeKey struct{}

func exchangeOf(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// measure wraps the proxied path in the server span (continuing the
// caller's W3C trace context) and the request duration histogram.
func (g *Gateway) measure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now() // a measurement: the real clock, not cfg.Now
		op := operationOf(r.Method, r.URL.Path)
		ctx := g.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := g.tracer.Start(ctx, op, trace.WithSpanKind(trace.SpanKindServer))
		sw := telemetry.NewStatusRecorder(w)
		defer func() {
			code := sw.Status()
			if span.IsRecording() {
				span.SetAttributes(attribute.Int("http.response.status_code", code),
					attribute.String("carpool.region", g.cfg.Region))
				if sr := sw.Header().Get(HeaderRegion); sr != "" {
					span.SetAttributes(attribute.String("carpool.served_by", sr))
				}
				if code >= 500 {
					span.SetStatus(codes.Error, http.StatusText(code))
				}
			}
			span.End()
			g.observe(op, code, time.Since(start).Seconds(), span.SpanContext())
		}()
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// route buffers the body, picks the region of the first attempt and hands
// the request to the reverse proxy.
func (g *Gateway) route(w http.ResponseWriter, r *http.Request) {
	x := &exchange{in: r.URL, upgrade: r.Header.Get("Upgrade") != ""}
	if r.Body != nil && r.Body != http.NoBody && !x.upgrade {
		if r.ContentLength > g.cfg.MaxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("request body larger than %d bytes", g.cfg.MaxBodyBytes), Field: "body"})
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, g.cfg.MaxBodyBytes+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, errorBody{Error: "reading the request body: " + err.Error(), Field: "body"})
			return
		}
		if int64(len(body)) > g.cfg.MaxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("request body larger than %d bytes", g.cfg.MaxBodyBytes), Field: "body"})
			return
		}
		x.body = body
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
		r.TransferEncoding = nil
	}
	if rider := r.Header.Get(HeaderRiderID); rider != "" {
		x.unit = g.UnitOf(rider)
		w.Header().Set(HeaderUnit, x.unit.Name)
	}
	var panicMode bool
	if isPayment(r.URL.Path) {
		x.payment = true
		if x.unit.Name == "" {
			writeError(w, http.StatusBadRequest, errorBody{Error: "a payment needs the rider id in the " + HeaderRiderID + " header: payments run in the rider's home region", Field: HeaderRiderID})
			return
		}
		idx, pm, ok := g.home(x.unit)
		if !ok {
			g.homeUnavailable(w, x, "is unavailable (breaker open, probes failing or ejected)")
			return
		}
		x.first, panicMode = idx, pm
	} else {
		x.key = r.Header.Get(HeaderIdempotencyKey)
		idx, pm := g.pickFor(x.key, -1)
		if idx < 0 {
			writeError(w, http.StatusServiceUnavailable, errorBody{Error: "no region can take the request: every region's breaker is open"})
			return
		}
		x.first, panicMode = idx, pm
	}
	if panicMode {
		g.panicRoutes.Inc()
	}
	x.served = x.first
	x.retryable = !x.payment && !x.upgrade && !g.cfg.Retry.Disabled && r.Header.Get(HeaderIdempotencyKey) != ""
	g.budget.request(g.cfg.Now())
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)))
}

// homeUnavailable answers a payment whose home region cannot take it.
func (g *Gateway) homeUnavailable(w http.ResponseWriter, x *exchange, why string) {
	g.byName[x.unit.Home].homeUnavailable.Inc()
	writeError(w, http.StatusConflict, errorBody{
		Error:      fmt.Sprintf("payments of unit %s run only in its home region %s, which %s; retry later", x.unit.Name, x.unit.Home, why),
		HomeRegion: x.unit.Home,
		Unit:       x.unit.Name,
	})
}

func isPayment(path string) bool {
	return path == "/v1/payments" || strings.HasPrefix(path, "/v1/payments/")
}

// rewrite points the outgoing request at the first attempt's region.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	pr.SetXForwarded()
	if x := exchangeOf(pr.In.Context()); x != nil {
		pr.Out.URL = g.regions[x.first].urlFor(x.in)
		pr.Out.Host = ""
	}
}

// attemptTransport sends the first attempt and, when it fails and the
// request may be retried, one retry in another region.
type attemptTransport struct{ g *Gateway }

// RoundTrip implements http.RoundTripper.
func (t attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	g := t.g
	x := exchangeOf(req.Context())
	if x == nil {
		return g.transport.RoundTrip(req)
	}
	resp, failed, err := g.attempt(req, x.first, x)
	if !failed || !x.retryable || req.Context().Err() != nil {
		return resp, err
	}
	alt, _ := g.pickFor(x.key, x.first)
	if alt < 0 {
		g.deniedNoRegion.Inc()
		return resp, err
	}
	if !g.budget.tryRetry(g.cfg.Now()) {
		g.deniedBudget.Inc()
		return resp, err
	}
	if resp != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}
	r := g.regions[alt]
	r.retries.Inc()
	g.log.Debug("retrying in another region", "from", g.regions[x.first].name, "target", r.name, "err", err)
	out := req.Clone(req.Context())
	out.URL = r.urlFor(x.in)
	out.Host = ""
	if x.body != nil {
		out.Body = io.NopCloser(bytes.NewReader(x.body))
	}
	resp, _, err = g.attempt(out, alt, x)
	return resp, err
}

// attempt sends req to region ri within TryTimeout and feeds the outcome to
// outlier detection. failed is true for a 5xx, a connection error or a
// timeout; a client that went away is not the region's failure.
func (g *Gateway) attempt(req *http.Request, ri int, x *exchange) (resp *http.Response, failed bool, err error) {
	r := g.regions[ri]
	x.served = ri
	parent := req.Context()
	ctx, cancel := parent, context.CancelFunc(func() {})
	if !x.upgrade {
		ctx, cancel = context.WithTimeout(parent, g.cfg.TryTimeout)
	}
	ctx, span := g.tracer.Start(ctx, r.spanName, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("carpool.target", r.name))
	}
	out := req.WithContext(ctx)
	g.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err = g.transport.RoundTrip(out)
	if err != nil {
		if parent.Err() != nil {
			span.End()
			cancel()
			return nil, false, err
		}
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("region %s: %w after %v", r.name, context.DeadlineExceeded, g.cfg.TryTimeout)
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, "upstream unreachable")
		span.End()
		cancel()
		g.recordAttempt(r, true)
		return nil, true, err
	}
	failed = resp.StatusCode >= 500
	if failed {
		span.SetStatus(codes.Error, resp.Status)
	}
	g.recordAttempt(r, failed)
	resp.Header.Set(HeaderRegion, r.name)
	if x.upgrade {
		span.End()
		cancel() // a no-op: upgraded connections have no attempt timeout
		return resp, failed, nil
	}
	resp.Body = &attemptBody{ReadCloser: resp.Body, cancel: cancel, span: span}
	return resp, failed, nil
}

// attemptBody ends an attempt's timeout and span when its body is closed.
type attemptBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	span   trace.Span
}

func (b *attemptBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	b.span.End()
	return err
}

// proxyError answers when no attempt got a response.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeOf(r.Context())
	name := "?"
	if x != nil {
		name = g.regions[x.served].name
	}
	switch {
	case r.Context().Err() != nil:
		w.WriteHeader(StatusClientClosedRequest)
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, errorBody{Error: fmt.Sprintf("region %s did not answer within %v", name, g.cfg.TryTimeout)})
	case x != nil && x.payment:
		g.homeUnavailable(w, x, "is unreachable: "+err.Error())
	default:
		writeError(w, http.StatusBadGateway, errorBody{Error: fmt.Sprintf("region %s unreachable: %v", name, err)})
	}
}

// urlFor is the URL of the incoming request in region r.
func (r *region) urlFor(in *url.URL) *url.URL {
	u := *r.base
	u.RawQuery = in.RawQuery
	u.Fragment, u.RawFragment = "", ""
	if r.base.Path == "" || r.base.Path == "/" {
		u.Path, u.RawPath = in.Path, in.RawPath
		return &u
	}
	u.Path, u.RawPath = joinURLPath(r.base, in)
	return &u
}

// joinURLPath is net/http/httputil's: base path + request path, one slash.
func joinURLPath(a, b *url.URL) (path, rawpath string) {
	if a.RawPath == "" && b.RawPath == "" {
		return singleJoiningSlash(a.Path, b.Path), ""
	}
	apath, bpath := a.EscapedPath(), b.EscapedPath()
	aslash, bslash := strings.HasSuffix(apath, "/"), strings.HasPrefix(bpath, "/")
	switch {
	case aslash && bslash:
		return a.Path + b.Path[1:], apath + bpath[1:]
	case !aslash && !bslash:
		return a.Path + "/" + b.Path, apath + "/" + bpath
	}
	return a.Path + b.Path, apath + bpath
}

func singleJoiningSlash(a, b string) string {
	aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}

// Resources and actions that name an operation; any other path is "other",
// so that the operation label stays bounded whatever clients send.
var (
	knownResources = map[string]bool{"rides": true, "payments": true, "drivers": true, "quotes": true, "riders": true, "prices": true}
	knownActions   = map[string]bool{"complete": true, "cancel": true, "stream": true, "refund": true, "capture": true, "position": true}
)

// operationOf is the operation label of a request: its method and route
// template, e.g. "POST /v1/rides" or "POST /v1/rides/{id}/complete".
func operationOf(method, path string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "OTHER"
	}
	return method + " " + routeTemplate(path)
}

func routeTemplate(path string) string {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		if path == "/healthz" {
			return path
		}
		return "other"
	}
	res, rest, _ := strings.Cut(rest, "/")
	if !knownResources[res] {
		return "other"
	}
	t := "/v1/" + res
	if rest == "" {
		return t
	}
	seg, rest, _ := strings.Cut(rest, "/")
	if knownActions[seg] {
		t += "/" + seg
	} else {
		t += "/{id}"
	}
	if rest == "" {
		return t
	}
	if seg, rest, _ = strings.Cut(rest, "/"); knownActions[seg] && rest == "" {
		return t + "/" + seg
	}
	return t + "/*"
}

// errorBody is the JSON body of every error the gateway itself answers.
type errorBody struct {
	Error      string `json:"error"`
	Field      string `json:"field,omitempty"`
	HomeRegion string `json:"home_region,omitempty"`
	Unit       string `json:"unit,omitempty"`
}

func writeError(w http.ResponseWriter, code int, body errorBody) { writeJSON(w, code, body) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
