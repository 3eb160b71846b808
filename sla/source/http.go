package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Defaults of HTTPConfig.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultRetries    = 2
	DefaultBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff = 2 * time.Second
)

// HTTPConfig configures HTTP, the Querier of an external Prometheus-compatible
// query API: Prometheus, Thanos Query, VictoriaMetrics single node or a
// vmselect of a cluster.
type HTTPConfig struct {
	// URL is the API's base URL, without /api/v1: http://prometheus:9090,
	// http://thanos-query:10902, http://vmselect:8481/select/0/prometheus.
	// Its path is kept: /api/v1/query is appended to it.
	URL string
	// Timeout bounds one query attempt, the request and the server's
	// evaluation (sent as timeout=). Zero means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a query that failed transiently (a 5xx,
	// a timed-out attempt, a refused or reset connection) is tried again.
	// A 4xx or bad_data error is never retried. Negative means none; zero
	// means DefaultRetries (set NoRetries to turn retrying off).
	Retries int
	// NoRetries turns retrying off whatever Retries says.
	NoRetries bool
	// Backoff is the wait before the first retry; it doubles each retry up
	// to MaxBackoff. Each wait is jittered to between half and all of it.
	// Zero means DefaultBackoff and DefaultMaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration

	// BearerTokenFile holds a token sent as "Authorization: Bearer <token>".
	// It is read on every request, so a rotated token is picked up.
	BearerTokenFile string
	// BasicAuthUser and BasicAuthPasswordFile send HTTP basic auth (the
	// password file is read on every request). Not with BearerTokenFile.
	BasicAuthUser         string
	BasicAuthPasswordFile string
	// Headers are extra request headers, such as X-Scope-OrgID for a
	// multi-tenant store. Authorization and the protocol's own headers
	// are refused: use the auth fields.
	Headers map[string]string
	// CAFile verifies the server's certificate for an https URL (default:
	// the system's roots). InsecureSkipVerify turns verification off.
	CAFile             string
	InsecureSkipVerify bool

	// Sleep waits d or until ctx ends, between attempts. Default: a timer.
	// Tests inject one that records the waits instead.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0,1) for the jitter. Default: math/rand/v2.
	Rand func() float64
}

// withDefaults returns c with its zero fields filled in.
func (c HTTPConfig) withDefaults() HTTPConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch {
	case c.NoRetries || c.Retries < 0:
		c.Retries = 0
	case c.Retries == 0:
		c.Retries = DefaultRetries
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.Backoff)
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

// Validate checks the fields and their combinations. Its errors name the
// field (and the flag that sets it) and say what to do.
func (c HTTPConfig) Validate() error {
	if c.URL == "" {
		return errors.New("source: URL (--prometheus) is empty: give the query API's base URL, such as http://prometheus:9090 or http://vmselect:8481/select/0/prometheus")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("source: URL (--prometheus) %q does not parse: %w", c.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("source: URL (--prometheus) %q must start with http:// or https://", c.URL)
	}
	if u.Host == "" {
		return fmt.Errorf("source: URL (--prometheus) %q has no host: write it as http://host:port[/path]", c.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("source: URL (--prometheus) %q must not carry a query or fragment: give the base URL only", c.URL)
	}
	if strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v1") {
		return fmt.Errorf("source: URL (--prometheus) %q ends in /api/v1: drop it, the client appends /api/v1/query itself", c.URL)
	}
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("source: Timeout (--prometheus-timeout) %v is negative: give a positive duration such as 10s", c.Timeout)
	case c.Backoff < 0:
		return fmt.Errorf("source: Backoff (--prometheus-retry-backoff) %v is negative: give a positive duration such as 100ms", c.Backoff)
	case c.MaxBackoff < 0:
		return fmt.Errorf("source: MaxBackoff %v is negative: give a positive duration such as 2s", c.MaxBackoff)
	case c.MaxBackoff != 0 && c.MaxBackoff < c.Backoff:
		return fmt.Errorf("source: MaxBackoff %v is below Backoff %v: the cap must be at least the first wait", c.MaxBackoff, c.Backoff)
	case c.BearerTokenFile != "" && (c.BasicAuthUser != "" || c.BasicAuthPasswordFile != ""):
		return errors.New("source: BearerTokenFile (--prometheus-bearer-token-file) and basic auth (--prometheus-basic-auth-user) are both set: use one of them")
	case c.BasicAuthPasswordFile != "" && c.BasicAuthUser == "":
		return errors.New("source: BasicAuthPasswordFile (--prometheus-basic-auth-password-file) is set without BasicAuthUser (--prometheus-basic-auth-user): give the user too")
	case c.InsecureSkipVerify && c.CAFile != "":
		return errors.New("source: CAFile and InsecureSkipVerify are both set: verify with the CA, or skip verification, not both")
	}
	for name := range c.Headers {
		if strings.EqualFold(name, "Authorization") {
			return errors.New("source: Headers (--prometheus-header) sets Authorization: use the bearer token file or basic auth instead")
		}
		if name == "" || strings.ContainsAny(name, " :\t\r\n") {
			return fmt.Errorf("source: Headers (--prometheus-header) has a bad name %q: write Name: value", name)
		}
	}
	if _, err := c.clientConfig(); err != nil {
		return err
	}
	return nil
}

// clientConfig maps the auth, header and TLS fields onto Prometheus' own
// HTTP client configuration, which reads the secret files per request.
func (c HTTPConfig) clientConfig() (commoncfg.HTTPClientConfig, error) {
	hc := commoncfg.DefaultHTTPClientConfig
	if c.BearerTokenFile != "" {
		hc.Authorization = &commoncfg.Authorization{Type: "Bearer", CredentialsFile: c.BearerTokenFile}
	}
	if c.BasicAuthUser != "" {
		hc.BasicAuth = &commoncfg.BasicAuth{Username: c.BasicAuthUser, PasswordFile: c.BasicAuthPasswordFile}
	}
	if len(c.Headers) > 0 {
		hc.HTTPHeaders = &commoncfg.Headers{Headers: map[string]commoncfg.Header{}}
		for name, value := range c.Headers {
			hc.HTTPHeaders.Headers[http.CanonicalHeaderKey(name)] = commoncfg.Header{Values: []string{value}}
		}
	}
	hc.TLSConfig = commoncfg.TLSConfig{CAFile: c.CAFile, InsecureSkipVerify: c.InsecureSkipVerify}
	if err := hc.Validate(); err != nil {
		return hc, fmt.Errorf("source: HTTP client settings: %w", err)
	}
	return hc, nil
}

// HTTP is a Querier that evaluates instant queries on an external
// Prometheus-compatible HTTP API (GET/POST /api/v1/query) with client_golang's
// API client, a timeout per attempt, and jittered retries of transient
// failures. It is safe for concurrent use.
type HTTP struct {
	cfg HTTPConfig
	api v1.API
}

var _ Querier = (*HTTP)(nil)

// NewHTTP validates cfg and builds the client. It does not contact the
// server: call Check for that.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	hc, err := cfg.clientConfig()
	if err != nil {
		return nil, err
	}
	rt, err := commoncfg.NewRoundTripperFromConfig(hc, "carpoolsla-source")
	if err != nil {
		return nil, fmt.Errorf("source: building the HTTP client for %s: %w", cfg.URL, err)
	}
	client, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("source: building the API client for %s: %w", cfg.URL, err)
	}
	return &HTTP{cfg: cfg, api: v1.NewAPI(client)}, nil
}

// Query evaluates expr at at (the server's now when at is zero). A vector
// comes back as it is, a scalar as one Sample without labels; a range
// vector or a string is an error. Transient failures are retried.
func (h *HTTP) Query(ctx context.Context, expr string, at time.Time) (Vector, error) {
	var err error
	for attempt := 0; ; attempt++ {
		var vec Vector
		vec, err = h.queryOnce(ctx, expr, at)
		if err == nil {
			return vec, nil
		}
		if ctx.Err() != nil || !Transient(err) || attempt >= h.cfg.Retries {
			return nil, fmt.Errorf("source: query %q on %s (attempt %d of %d): %w", expr, h.cfg.URL, attempt+1, h.cfg.Retries+1, err)
		}
		if serr := h.cfg.Sleep(ctx, h.backoff(attempt)); serr != nil {
			return nil, fmt.Errorf("source: query %q on %s: waiting to retry after %w: %w", expr, h.cfg.URL, err, serr)
		}
	}
}

// Check runs `vector(1)` once, without retries, to see that the API answers.
func (h *HTTP) Check(ctx context.Context) error {
	if _, err := h.queryOnce(ctx, "vector(1)", time.Time{}); err != nil {
		return fmt.Errorf("source: checking %s: %w", h.cfg.URL, err)
	}
	return nil
}

// backoff returns the jittered wait before retry attempt+1: between half
// and all of Backoff·2^attempt, capped at MaxBackoff.
func (h *HTTP) backoff(attempt int) time.Duration {
	d := h.cfg.Backoff
	for range attempt {
		if d >= h.cfg.MaxBackoff/2 {
			d = h.cfg.MaxBackoff
			break
		}
		d *= 2
	}
	d = min(d, h.cfg.MaxBackoff)
	return d/2 + time.Duration(h.cfg.Rand()*float64(d/2))
}

// errAttemptTimeout marks an attempt cut by the per-attempt Timeout (not by
// the caller's context), which is worth retrying.
var errAttemptTimeout = errors.New("the attempt timed out")

func (h *HTTP) queryOnce(ctx context.Context, expr string, at time.Time) (Vector, error) {
	actx, cancel := context.WithTimeoutCause(ctx, h.cfg.Timeout, errAttemptTimeout)
	defer cancel()
	val, _, _, err := h.api.Query(actx, expr, at, v1.WithTimeout(h.cfg.Timeout))
	if err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(actx), errAttemptTimeout) {
			return nil, fmt.Errorf("%w after %v: %w", errAttemptTimeout, h.cfg.Timeout, err)
		}
		return nil, err
	}
	return FromModel(val)
}

// FromModel converts a client_golang query result into a Vector: a vector
// as it is, a scalar as one Sample without labels. Labels is never nil.
func FromModel(val model.Value) (Vector, error) {
	switch v := val.(type) {
	case model.Vector:
		out := make(Vector, 0, len(v))
		for _, s := range v {
			if s.Histogram != nil {
				return nil, fmt.Errorf("the result holds a native histogram for %s: the engine reads float samples, wrap it in histogram_quantile or histogram_count", s.Metric)
			}
			labels := make(map[string]string, len(s.Metric))
			for name, value := range s.Metric {
				labels[string(name)] = string(value)
			}
			out = append(out, Sample{Labels: labels, Value: float64(s.Value), T: s.Timestamp.Time()})
		}
		return out, nil
	case *model.Scalar:
		return Vector{{Labels: map[string]string{}, Value: float64(v.Value), T: v.Timestamp.Time()}}, nil
	case nil:
		return nil, errors.New("the result is empty: the server sent no data")
	default:
		return nil, fmt.Errorf("the result is a %s: give an expression that yields an instant vector or a scalar", val.Type())
	}
}

// Transient reports whether err is worth retrying: a 5xx (server_error,
// unavailable, timeout), an attempt cut by its timeout, a refused or reset
// connection, a connection closed early. A 4xx, bad_data, execution and
// canceled errors, and a response that does not parse, are not.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errAttemptTimeout) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Type {
		case v1.ErrServer, v1.ErrTimeout, "unavailable":
			return true
		default:
			return false
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// sleep waits d, or until ctx ends (its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SortVector orders a vector by its label sets, for comparisons and stable
// output.
func SortVector(v Vector) {
	sort.SliceStable(v, func(i, j int) bool { return LabelString(v[i].Labels) < LabelString(v[j].Labels) })
}

// LabelString renders a label set as {a="1", b="2"}, names sorted.
func LabelString(labels map[string]string) string {
	return model.LabelSet(toLabelSet(labels)).String()
}

func toLabelSet(labels map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(labels))
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}
