// Package faults injects failures into one region's services on purpose,
// for drills and tests: added latency, an error rate, the whole region down,
// a replication stall, clock skew and a paused stream consumer. Every fault
// can be cleared. The services consult an Injector on their hot paths; its
// reads are lock-free so that a region without faults pays a few atomic
// loads per request.
//
// Handler serves the admin API. It is off unless the region enables it, and
// every call needs the admin bearer token.
package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Latency adds a delay: Fixed plus, when Jitter is set, a uniform random
// extra in [0, Jitter).
type Latency struct {
	Fixed  Duration `json:"fixed"`
	Jitter Duration `json:"jitter,omitempty"`
}

// ServiceFaults are the faults of one service (or of every service, under
// the name "*").
type ServiceFaults struct {
	Latency Latency `json:"latency"`
	// ErrorRate is the share of requests, in [0, 1], answered with a 503.
	ErrorRate float64 `json:"error_rate"`
}

// State is every fault of a region at one moment.
type State struct {
	// Down refuses every request of the region (connections are closed
	// without an answer), as a dead data centre would.
	Down bool `json:"down"`
	// ReplicationStalled stops applying replication events in this region.
	ReplicationStalled bool `json:"replication_stalled"`
	// ClockSkew shifts the region's clock (ids, HLC, heartbeats).
	ClockSkew Duration `json:"clock_skew"`
	// ConsumerPaused stops the region's stream consumers.
	ConsumerPaused bool `json:"consumer_paused"`
	// Services maps a service name, or "*" for all, to its faults.
	Services map[string]ServiceFaults `json:"services,omitempty"`
}

// Describe lists the faults in force, one short phrase each, in a stable
// order ("down", "replication stalled", "clock skew +2s", "consumer
// paused", then per service "order: +500ms latency, 5% errors"); none is
// an empty list. The status page shows them next to the region.
func (s State) Describe() []string {
	out := []string{}
	if s.Down {
		out = append(out, "down")
	}
	if s.ReplicationStalled {
		out = append(out, "replication stalled")
	}
	if s.ClockSkew != 0 {
		sign := "+"
		if s.ClockSkew < 0 {
			sign = ""
		}
		out = append(out, "clock skew "+sign+s.ClockSkew.D().String())
	}
	if s.ConsumerPaused {
		out = append(out, "consumer paused")
	}
	for _, name := range slices.Sorted(maps.Keys(s.Services)) {
		f := s.Services[name]
		var parts []string
		if f.Latency.Fixed > 0 || f.Latency.Jitter > 0 {
			l := "+" + f.Latency.Fixed.D().String()
			if f.Latency.Jitter > 0 {
				l += " (±" + f.Latency.Jitter.D().String() + ")"
			}
			parts = append(parts, l+" latency")
		}
		if f.ErrorRate > 0 {
			parts = append(parts, strconv.FormatFloat(f.ErrorRate*100, 'f', -1, 64)+"% errors")
		}
		if len(parts) == 0 {
			continue
		}
		if name == "*" {
			name = "every service"
		}
		out = append(out, name+": "+strings.Join(parts, ", "))
	}
	return out
}

// Validate checks a state before it is applied.
func (s State) Validate() error {
	for name, f := range s.Services {
		if f.ErrorRate < 0 || f.ErrorRate > 1 {
			return fmt.Errorf("services.%s.error_rate is %g; it must be in [0, 1]", name, f.ErrorRate)
		}
		if f.Latency.Fixed < 0 || f.Latency.Jitter < 0 {
			return fmt.Errorf("services.%s.latency must not be negative", name)
		}
	}
	return nil
}

// Injector holds a region's faults. The zero value has none and is ready
// to use.
type Injector struct {
	mu    sync.Mutex // serialises writers
	state atomic.Pointer[State]
	// Now is the clock the skew applies to; nil means time.Now.
	Now func() time.Time
}

// Set replaces every fault at once.
func (in *Injector) Set(s State) error {
	if err := s.Validate(); err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	cp := s
	cp.Services = make(map[string]ServiceFaults, len(s.Services))
	for k, v := range s.Services {
		cp.Services[k] = v
	}
	in.state.Store(&cp)
	return nil
}

// Update changes the current faults with fn.
func (in *Injector) Update(fn func(*State)) error {
	in.mu.Lock()
	cur := in.State()
	fn(&cur)
	in.mu.Unlock()
	return in.Set(cur)
}

// Clear removes every fault.
func (in *Injector) Clear() { _ = in.Set(State{}) }

// State returns a copy of the current faults.
func (in *Injector) State() State {
	p := in.load()
	cp := *p
	cp.Services = make(map[string]ServiceFaults, len(p.Services))
	for k, v := range p.Services {
		cp.Services[k] = v
	}
	return cp
}

var none = &State{}

func (in *Injector) load() *State {
	if in == nil {
		return none
	}
	if p := in.state.Load(); p != nil {
		return p
	}
	return none
}

// Down reports whether the region is down.
func (in *Injector) Down() bool { return in.load().Down }

// ReplicationStalled reports whether applying replication is stopped.
func (in *Injector) ReplicationStalled() bool { return in.load().ReplicationStalled }

// ConsumerPaused reports whether stream consumers are paused.
func (in *Injector) ConsumerPaused() bool { return in.load().ConsumerPaused }

// Clock returns the region's time: the real (or injected) clock plus skew.
func (in *Injector) Clock() time.Time {
	now := time.Now
	if in != nil && in.Now != nil {
		now = in.Now
	}
	return now().Add(in.load().ClockSkew.D())
}

// For returns the faults that apply to service: its own, else those under "*".
func (in *Injector) For(service string) ServiceFaults {
	s := in.load()
	if f, ok := s.Services[service]; ok {
		return f
	}
	return s.Services["*"]
}

// ErrInjected is returned by Apply when the fault injector fails a request.
var ErrInjected = errors.New("fault injected: service unavailable")

// ErrRegionDown is returned by Apply when the region is down.
var ErrRegionDown = errors.New("fault injected: region down")

// Apply runs the service's faults for one call: it waits out the injected
// latency (or until ctx ends) and returns ErrRegionDown or ErrInjected when
// the call must fail. Use it in gRPC handlers and background work; HTTP
// handlers use Middleware.
func (in *Injector) Apply(ctx context.Context, service string) error {
	s := in.load()
	if s.Down {
		return ErrRegionDown
	}
	f, ok := s.Services[service]
	if !ok {
		f = s.Services["*"]
	}
	if d := f.Latency.Fixed.D() + jitter(f.Latency.Jitter.D()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
		return ErrInjected
	}
	return nil
}

func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(max)))
}

// Middleware applies the service's faults to HTTP requests: a down region
// drops the connection without an answer (as a dead host would, so clients
// see a transport error), an injected error answers 503 with a JSON body.
func (in *Injector) Middleware(service string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch err := in.Apply(r.Context(), service); {
		case errors.Is(err, ErrRegionDown):
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			writeJSONError(w, http.StatusServiceUnavailable, "region down (injected)")
		case errors.Is(err, ErrInjected):
			writeJSONError(w, http.StatusServiceUnavailable, "injected error")
		case err != nil:
			writeJSONError(w, http.StatusGatewayTimeout, err.Error())
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"error\":%q}\n", msg)
}
