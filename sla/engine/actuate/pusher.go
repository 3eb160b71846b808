// Package actuate carries the SLA engine's decisions to the gateways: a
// Pusher PUTs every route table to every region's gateway
// (PUT /admin/routing, docs/services/gateway.md), concurrently, with a
// bearer token, a timeout per attempt and jittered exponential backoff.
//
// A gateway applies a table only when its version is newer than the one it
// holds and answers 200 either way, so pushing the same table twice (a
// retry after a lost answer, the engine's periodic resend) is harmless.
package actuate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// RoutingPath is the gateways' routing admin endpoint.
const RoutingPath = "/admin/routing"

// Defaults of Config.
const (
	DefaultTimeout        = 2 * time.Second
	DefaultAttempts       = 3
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = time.Second
)

// maxAnswer bounds how much of a gateway's answer is read.
const maxAnswer = 64 << 10

// Gateway is one region's gateway.
type Gateway struct {
	// Region names the gateway (its region); it labels the push metrics.
	Region string
	// URL is the gateway's base URL (http://127.0.0.1:18105); the table
	// goes to URL + RoutingPath.
	URL string
}

// Config configures a Pusher.
type Config struct {
	// Gateways are every region's gateway. Required, names unique.
	Gateways []Gateway
	// Token is the gateways' admin bearer token. Required: a gateway
	// without one has its admin API off.
	Token string
	// Timeout bounds one attempt (request and answer); default 2 s.
	Timeout time.Duration
	// Attempts is how many times a push to one gateway is tried before it
	// counts as failed; default 3.
	Attempts int
	// BackoffInitial and BackoffMax bound the jittered exponential wait
	// between attempts; defaults 100 ms and 1 s.
	BackoffInitial, BackoffMax time.Duration
	// Client sends the requests; default a client with its own transport.
	Client *http.Client
	// Registerer gets the push metrics; nil registers none.
	Registerer prometheus.Registerer
	// Log receives a warning per failed push; default discards.
	Log *slog.Logger
	// Now stamps the last-success metric; default time.Now.
	Now func() time.Time
}

// Validate checks cfg; every message names the field and what to do.
func (c Config) Validate() error {
	var errs []error
	if len(c.Gateways) == 0 {
		errs = append(errs, errors.New("actuate: Gateways is empty; give every region's gateway (--gateway region=URL)"))
	}
	seen := map[string]bool{}
	for i, g := range c.Gateways {
		switch {
		case g.Region == "":
			errs = append(errs, fmt.Errorf("actuate: Gateways[%d] has no region; write region=URL", i))
		case seen[g.Region]:
			errs = append(errs, fmt.Errorf("actuate: gateway %s is listed twice; give each region's gateway once", g.Region))
		}
		seen[g.Region] = true
		u, err := url.Parse(g.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("actuate: gateway %s URL %q is not an absolute http(s) URL; write e.g. %s=http://127.0.0.1:18105", g.Region, g.URL, g.Region))
		}
	}
	if c.Token == "" {
		errs = append(errs, errors.New("actuate: Token is empty; the gateways' routing API needs their admin bearer token (--admin-token-file)"))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("actuate: Timeout is %s; give a positive timeout per attempt, or 0 for %s", c.Timeout, DefaultTimeout))
	}
	if c.Attempts < 0 {
		errs = append(errs, fmt.Errorf("actuate: Attempts is %d; give at least 1, or 0 for %d", c.Attempts, DefaultAttempts))
	}
	if c.BackoffInitial < 0 || c.BackoffMax < 0 {
		errs = append(errs, fmt.Errorf("actuate: BackoffInitial (%s) and BackoffMax (%s) must not be negative", c.BackoffInitial, c.BackoffMax))
	} else if c.BackoffInitial > 0 && c.BackoffMax > 0 && c.BackoffInitial > c.BackoffMax {
		errs = append(errs, fmt.Errorf("actuate: BackoffInitial (%s) is above BackoffMax (%s); the first wait must not exceed the longest", c.BackoffInitial, c.BackoffMax))
	}
	return errors.Join(errs...)
}

func (c *Config) defaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Attempts == 0 {
		c.Attempts = DefaultAttempts
	}
	if c.BackoffInitial == 0 {
		c.BackoffInitial = DefaultBackoffInitial
		if c.BackoffMax > 0 {
			c.BackoffInitial = min(c.BackoffInitial, c.BackoffMax)
		}
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(DefaultBackoffMax, c.BackoffInitial)
	}
	if c.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 2
		c.Client = &http.Client{Transport: tr}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Pusher implements engine.Actuator: it pushes route tables to every
// region's gateway.
type Pusher struct {
	cfg Config

	errors      *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	version     *prometheus.GaugeVec
}

var _ engine.Actuator = (*Pusher)(nil)

// New returns a Pusher of cfg.
func New(cfg Config) (*Pusher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	p := &Pusher{
		cfg:         cfg,
		errors:      telemetry.NewCounterVec(catalog.EnginePushErrors),
		lastSuccess: telemetry.NewGaugeVec(catalog.EnginePushLastSuccess),
		version:     telemetry.NewGaugeVec(catalog.EnginePushedVersion),
	}
	for _, g := range cfg.Gateways {
		p.errors.WithLabelValues(g.Region) // expose 0 before the first failure
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{p.errors, p.lastSuccess, p.version} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("actuate: registering metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Gateways returns the gateways the Pusher pushes to.
func (p *Pusher) Gateways() []Gateway { return append([]Gateway(nil), p.cfg.Gateways...) }

// Apply implements engine.Actuator: it pushes t to every gateway at once
// and returns when each has accepted it or failed every attempt. The error
// joins one error per gateway that failed; the others hold t.
func (p *Pusher) Apply(ctx context.Context, t engine.RouteTable) error {
	body, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("actuate: encoding route table v%d: %w", t.Version, err)
	}
	errs := make([]error, len(p.cfg.Gateways))
	done := make(chan struct{})
	for i, g := range p.cfg.Gateways {
		go func() {
			defer func() { done <- struct{}{} }()
			errs[i] = p.push(ctx, g, t.Version, body)
		}()
	}
	for range p.cfg.Gateways {
		<-done
	}
	return errors.Join(errs...)
}

// answer is the gateway's reply to a PUT.
type answer struct {
	Applied bool   `json:"applied"`
	Version int64  `json:"version"`
	Error   string `json:"error"`
	Field   string `json:"field"`
}

// push sends one table to one gateway with retries.
func (p *Pusher) push(ctx context.Context, g Gateway, version int64, body []byte) error {
	target := strings.TrimSuffix(g.URL, "/") + RoutingPath
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.cfg.BackoffInitial
	b.MaxInterval = p.cfg.BackoffMax
	b.RandomizationFactor = 0.5
	attempt := 0
	a, err := backoff.Retry(ctx, func() (answer, error) {
		attempt++
		return p.once(ctx, target, body)
	}, backoff.WithBackOff(b), backoff.WithMaxTries(uint(p.cfg.Attempts)), backoff.WithMaxElapsedTime(0))
	if err != nil {
		p.errors.WithLabelValues(g.Region).Inc()
		err = fmt.Errorf("pushing route table v%d to gateway %s (%s) failed after %d attempt(s): %w", version, g.Region, target, attempt, err)
		p.cfg.Log.Warn("route table push failed; the gateway keeps its table and pulls when pushes stop", "gateway", g.Region, "version", version, "err", err)
		return err
	}
	p.lastSuccess.WithLabelValues(g.Region).Set(float64(p.cfg.Now().UnixNano()) / 1e9)
	p.version.WithLabelValues(g.Region).Set(float64(a.Version))
	if !a.Applied {
		p.cfg.Log.Debug("gateway already held this route table or a newer one", "gateway", g.Region, "version", version, "gateway_version", a.Version)
	}
	return nil
}

// StatusError is a gateway's answer other than 2xx (or 409).
type StatusError struct {
	Code int
	// Message and Field come from the gateway's JSON error body.
	Message, Field string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("status %d", e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// once makes one attempt. Network errors, timeouts, 5xx and 429 are worth
// another attempt; a 409 (a gateway that reports a stale version as a
// conflict) is done; any other 4xx is permanent.
func (p *Pusher) once(ctx context.Context, target string, body []byte) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(body))
	if err != nil {
		return answer{}, backoff.Permanent(fmt.Errorf("building the request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("sending: %w", err) // network error or timeout: try again
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return answer{}, fmt.Errorf("reading the answer (status %d): %w", resp.StatusCode, err)
	}
	var a answer
	_ = json.Unmarshal(raw, &a) // the status decides; the body only explains
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		if a.Version == 0 && !a.Applied {
			// Not the gateway's answer (a proxy's?): the table did not land.
			var probe map[string]json.RawMessage
			if json.Unmarshal(raw, &probe) != nil || probe["version"] == nil {
				return answer{}, backoff.Permanent(fmt.Errorf("status %d without a routing answer ({\"applied\", \"version\"}); is %s a carpool gateway?", code, target))
			}
		}
		return a, nil
	case code == http.StatusConflict:
		return answer{Version: a.Version}, nil
	case code == http.StatusTooManyRequests || code >= 500:
		return answer{}, &StatusError{Code: code, Message: a.Error, Field: a.Field}
	default:
		se := &StatusError{Code: code, Message: a.Error, Field: a.Field}
		if code == http.StatusUnauthorized {
			return answer{}, backoff.Permanent(fmt.Errorf("%w; check --admin-token-file against the gateways' admin token", se))
		}
		if code == http.StatusNotFound {
			return answer{}, backoff.Permanent(fmt.Errorf("%w; the gateway's routing admin API is off (start it with an admin token) or the URL is not a gateway", se))
		}
		return answer{}, backoff.Permanent(se)
	}
}
