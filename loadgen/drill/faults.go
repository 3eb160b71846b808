package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

// Fault kinds, as `carpoolsla fault --kind` takes them.
const (
	KindLatency = "latency" // added latency on a service (Value: a duration, e.g. 400ms)
	KindErrors  = "errors"  // a share of a service's requests answered 503 (Value: 0.05 or 5%)
	KindDown    = "down"    // the whole region drops every connection
	KindStall   = "stall"   // the region stops applying replication
	KindSkew    = "skew"    // the region's clock is shifted (Value: a signed duration, e.g. 2s or -2s)
)

// Kinds lists the fault kinds.
var Kinds = []string{KindLatency, KindErrors, KindDown, KindStall, KindSkew}

// DefaultService is the service latency and error faults apply to when
// Fault.Service is empty: the order service, which serves ride creation
// and the regions' health checks.
const DefaultService = "order"

// Default fault values by kind, used when Fault.Value is empty.
var defaultValues = map[string]string{KindLatency: "400ms", KindErrors: "0.05", KindSkew: "2s"}

// Fault is one fault to inject into one region through its admin API.
type Fault struct {
	Kind string `json:"kind"`
	// Value is the fault's size: a duration for latency and skew, a ratio
	// in [0, 1] (or a percentage, "5%") for errors; empty takes the kind's
	// default (latency 400ms, errors 0.05, skew 2s). Down and stall take none.
	Value string `json:"value,omitempty"`
	// Service is the service latency and errors apply to: a service name
	// or "*" for all; default DefaultService.
	Service string `json:"service,omitempty"`
}

func (f Fault) value() string {
	if f.Value == "" {
		return defaultValues[f.Kind]
	}
	return f.Value
}

func (f Fault) service() string {
	if f.Service == "" {
		return DefaultService
	}
	return f.Service
}

// String describes the fault, e.g. "latency 400ms on order".
func (f Fault) String() string {
	switch f.Kind {
	case KindLatency, KindErrors:
		return fmt.Sprintf("%s %s on %s", f.Kind, f.value(), f.service())
	case KindSkew:
		return "clock skew " + f.value()
	case KindStall:
		return "replication stall"
	case KindDown:
		return "region down"
	}
	return f.Kind
}

// Validate checks the kind and the value, naming what to write instead.
func (f Fault) Validate() error {
	_, err := f.parse()
	return err
}

// parsed is a Fault's value once read.
type parsed struct {
	d     time.Duration
	ratio float64
}

func (f Fault) parse() (parsed, error) {
	v := strings.TrimSpace(f.value())
	switch f.Kind {
	case KindLatency:
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return parsed{}, fmt.Errorf("latency value %q: give a positive duration such as 400ms", v)
		}
		return parsed{d: d}, nil
	case KindSkew:
		d, err := time.ParseDuration(v)
		if err != nil || d == 0 {
			return parsed{}, fmt.Errorf("skew value %q: give a non-zero duration such as 2s (ahead) or -2s (behind)", v)
		}
		return parsed{d: d}, nil
	case KindErrors:
		pct := strings.HasSuffix(v, "%")
		r, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if pct {
			r /= 100
		}
		if err != nil || r <= 0 || r > 1 {
			return parsed{}, fmt.Errorf("errors value %q: give a share of requests in (0, 1] such as 0.05, or a percentage such as 5%%", v)
		}
		return parsed{ratio: r}, nil
	case KindDown, KindStall:
		if v != "" && v != "true" {
			return parsed{}, fmt.Errorf("%s takes no value (got %q)", f.Kind, v)
		}
		return parsed{}, nil
	}
	return parsed{}, fmt.Errorf("fault kind %q: use one of %s", f.Kind, strings.Join(Kinds, ", "))
}

// Apply sets the fault into s.
func (f Fault) Apply(s *faults.State) error {
	p, err := f.parse()
	if err != nil {
		return err
	}
	switch f.Kind {
	case KindDown:
		s.Down = true
	case KindStall:
		s.ReplicationStalled = true
	case KindSkew:
		s.ClockSkew = faults.Duration(p.d)
	case KindLatency, KindErrors:
		if s.Services == nil {
			s.Services = map[string]faults.ServiceFaults{}
		}
		sf := s.Services[f.service()]
		if f.Kind == KindLatency {
			sf.Latency = faults.Latency{Fixed: faults.Duration(p.d)}
		} else {
			sf.ErrorRate = p.ratio
		}
		s.Services[f.service()] = sf
	}
	return nil
}

// Remove takes the fault's kind out of s (for latency and errors, on the
// fault's service only), leaving every other fault as it was.
func (f Fault) Remove(s *faults.State) {
	switch f.Kind {
	case KindDown:
		s.Down = false
	case KindStall:
		s.ReplicationStalled = false
	case KindSkew:
		s.ClockSkew = 0
	case KindLatency, KindErrors:
		sf, ok := s.Services[f.service()]
		if !ok {
			return
		}
		if f.Kind == KindLatency {
			sf.Latency = faults.Latency{}
		} else {
			sf.ErrorRate = 0
		}
		if sf == (faults.ServiceFaults{}) {
			delete(s.Services, f.service())
		} else {
			s.Services[f.service()] = sf
		}
	}
}

// FaultsClient calls one region's fault admin API (/admin/faults, on its
// service entry or its gateway).
type FaultsClient struct {
	// BaseURL is the server serving /admin/faults, e.g. http://127.0.0.1:18100.
	BaseURL string
	// Token is the region's admin bearer token.
	Token string
	// HTTP is the client; nil uses one with a 5 s timeout.
	HTTP *http.Client
}

var defaultAdminClient = &http.Client{Timeout: 5 * time.Second}

// State returns the region's current faults.
func (c *FaultsClient) State(ctx context.Context) (faults.State, error) {
	return c.do(ctx, http.MethodGet, nil)
}

// Put replaces the region's faults with s.
func (c *FaultsClient) Put(ctx context.Context, s faults.State) (faults.State, error) {
	return c.do(ctx, http.MethodPut, &s)
}

// Inject adds f to the region's current faults (read, change, write back).
func (c *FaultsClient) Inject(ctx context.Context, f Fault) (faults.State, error) {
	if err := f.Validate(); err != nil {
		return faults.State{}, err
	}
	s, err := c.State(ctx)
	if err != nil {
		return faults.State{}, err
	}
	if err := f.Apply(&s); err != nil {
		return faults.State{}, err
	}
	return c.Put(ctx, s)
}

// Remove takes f's kind out of the region's faults, leaving the others.
func (c *FaultsClient) Remove(ctx context.Context, f Fault) (faults.State, error) {
	s, err := c.State(ctx)
	if err != nil {
		return faults.State{}, err
	}
	f.Remove(&s)
	return c.Put(ctx, s)
}

// Clear removes every fault of the region.
func (c *FaultsClient) Clear(ctx context.Context) (faults.State, error) {
	return c.do(ctx, http.MethodDelete, nil)
}

func (c *FaultsClient) do(ctx context.Context, method string, body *faults.State) (faults.State, error) {
	u := strings.TrimSuffix(c.BaseURL, "/") + "/admin/faults"
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return faults.State{}, fmt.Errorf("encoding the fault state: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return faults.State{}, fmt.Errorf("fault admin API %s: %w", u, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = defaultAdminClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return faults.State{}, fmt.Errorf("fault admin API %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return faults.State{}, fmt.Errorf("fault admin API %s %s: reading the answer: %w", method, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return faults.State{}, adminError("fault admin API", method, u, resp.StatusCode, b)
	}
	var s faults.State
	if err := json.Unmarshal(b, &s); err != nil {
		return faults.State{}, fmt.Errorf("fault admin API %s %s: decoding %q: %w", method, u, truncate(b, 200), err)
	}
	return s, nil
}

// ErrUnauthorized is wrapped by admin API errors answered 401.
var ErrUnauthorized = errors.New("the admin token was refused")

// adminError turns an admin API's non-200 answer into an error that says
// what to do.
func adminError(api, method, u string, code int, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	msg := e.Error
	if msg == "" {
		msg = string(truncate(body, 200))
	}
	switch code {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s %s %s: %w (%s); pass the deployment's admin token (--admin-token-file)", api, method, u, ErrUnauthorized, msg)
	case http.StatusNotFound:
		return fmt.Errorf("%s %s %s: 404 (%s); is this the right URL, and was the region started with an admin token?", api, method, u, msg)
	}
	return fmt.Errorf("%s %s %s: status %d: %s", api, method, u, code, msg)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
