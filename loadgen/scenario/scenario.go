// Package scenario holds the load generator's scenarios over the carpool
// services: ride (the ride flow over HTTP through a gateway), drivers
// (drivers streaming positions over WebSocket to location), quote (price
// quotes over gRPC from pricing) and http (a plain GET, for any URL). Each
// implements loadgen.Scenario; Build makes a mix of them.
package scenario

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/loadgen"
)

// Names are the scenarios Build knows.
var Names = []string{"ride", "drivers", "quote", "http"}

// LatLng is a point in degrees.
type LatLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// DefaultCenter is where rides and drivers are placed by default
// (Shanghai, the first region of deploy/sla.yaml).
var DefaultCenter = LatLng{Lat: 31.2304, Lng: 121.4737}

// Options configure the scenarios of a mix. Zero fields take defaults.
type Options struct {
	// Target is the base URL of a gateway (http://host:port); ride uses it
	// and http GETs it as given.
	Target string
	// HTTP is the shared, bounded HTTP client; default NewHTTPClient(1024).
	HTTP *http.Client
	// PricingAddrs are pricing gRPC addresses (host:port); quote spreads
	// calls over them in turn.
	PricingAddrs []string
	// LocationURL is the drivers' WebSocket URL; default the Target's
	// /v1/drivers/stream with ws:// or wss://.
	LocationURL string
	// Center and Spread (degrees, default 0.01, about 1 km) place pickups,
	// dropoffs and drivers.
	Center LatLng
	Spread float64
	// Drivers is how many driver connections drivers holds (default 100);
	// each iteration sends one position from the next driver.
	Drivers int
	// RunID makes rider ids, idempotency keys and driver ids unique to
	// the run (required).
	RunID string
	// MatchPolls is how often ride reads a ride that is not yet matched
	// before cancelling it (default 3), MatchPoll the pause before each read
	// (default 100ms).
	MatchPolls int
	MatchPoll  time.Duration
	// StaleRetries is how often ride retries a read or transition that
	// found no ride (another region that has not replicated it yet), with
	// StalePause between tries (defaults 3 and 20ms).
	StaleRetries int
	StalePause   time.Duration
}

func (o *Options) defaults() {
	if o.HTTP == nil {
		o.HTTP = NewHTTPClient(loadgen.DefaultMaxWorkers)
	}
	if o.Center == (LatLng{}) {
		o.Center = DefaultCenter
	}
	if o.Spread == 0 {
		o.Spread = 0.01
	}
	if o.Drivers == 0 {
		o.Drivers = 100
	}
	if o.MatchPolls == 0 {
		o.MatchPolls = 3
	}
	if o.MatchPoll == 0 {
		o.MatchPoll = 100 * time.Millisecond
	}
	if o.StaleRetries == 0 {
		o.StaleRetries = 3
	}
	if o.StalePause == 0 {
		o.StalePause = 20 * time.Millisecond
	}
	if o.LocationURL == "" && o.Target != "" {
		if u, err := url.Parse(o.Target); err == nil {
			switch u.Scheme {
			case "http":
				u.Scheme = "ws"
			case "https":
				u.Scheme = "wss"
			}
			u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/drivers/stream"
			o.LocationURL = u.String()
		}
	}
}

// validate checks what the scenarios of names need.
func (o Options) validate(names []string) error {
	if o.RunID == "" {
		return errors.New("scenario: no run id")
	}
	if o.Center.Lat < -90 || o.Center.Lat > 90 || o.Center.Lng < -180 || o.Center.Lng > 180 {
		return fmt.Errorf("scenario: center %v,%v is not a latitude,longitude", o.Center.Lat, o.Center.Lng)
	}
	if o.Spread < 0 || o.Spread > 1 {
		return fmt.Errorf("scenario: spread %v must be in (0, 1] degrees", o.Spread)
	}
	for _, n := range names {
		switch n {
		case "ride", "http":
			if err := httpURL("--target", o.Target); err != nil {
				return err
			}
		case "quote":
			if len(o.PricingAddrs) == 0 {
				return errors.New("scenario quote needs pricing's gRPC address: give --pricing-addr host:port")
			}
			for _, a := range o.PricingAddrs {
				if _, _, err := net.SplitHostPort(a); err != nil {
					return fmt.Errorf("--pricing-addr %q: want host:port", a)
				}
			}
		case "drivers":
			u, err := url.Parse(o.LocationURL)
			if o.LocationURL == "" || err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
				return fmt.Errorf("scenario drivers needs location's WebSocket URL: give --location-url ws://host:port/v1/drivers/stream or a --target gateway (got %q)", o.LocationURL)
			}
			if o.Drivers < 1 || o.Drivers > 100_000 {
				return fmt.Errorf("--drivers %d: want 1 to 100000 driver connections", o.Drivers)
			}
		}
	}
	return nil
}

func httpURL(flag, s string) error {
	u, err := url.Parse(s)
	if s == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want an http(s) URL such as http://127.0.0.1:18105", flag, s)
	}
	return nil
}

// Build makes the scenarios of a mix. close releases their connections
// (driver WebSockets, gRPC connections); call it after the run.
func Build(mix loadgen.Mix, o Options) (ws []loadgen.Weighted, close func() error, err error) {
	o.defaults()
	if err := o.validate(mix.Names()); err != nil {
		return nil, nil, err
	}
	var closers []io.Closer
	closeAll := func() error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c.Close())
		}
		return errors.Join(errs...)
	}
	for _, e := range mix {
		var s loadgen.Scenario
		switch e.Name {
		case "ride":
			s = NewRide(o)
		case "http":
			s = NewHTTP(o)
		case "drivers":
			d := NewDrivers(o)
			closers = append(closers, d)
			s = d
		case "quote":
			q, err := NewQuote(o)
			if err != nil {
				_ = closeAll()
				return nil, nil, err
			}
			closers = append(closers, q)
			s = q
		default:
			_ = closeAll()
			return nil, nil, fmt.Errorf("unknown scenario %q; the scenarios are %s", e.Name, strings.Join(Names, ", "))
		}
		ws = append(ws, loadgen.Weighted{Scenario: s, Weight: e.Weight})
	}
	return ws, closeAll, nil
}

// NewHTTPClient returns an HTTP client whose connection pool is bounded to
// maxConns connections per host (requests beyond wait for one), keeps them
// alive, and neither follows redirects nor decompresses. Timeouts come from
// each step's context.
func NewHTTPClient(maxConns int) *http.Client {
	if maxConns < 1 {
		maxConns = 1
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxConnsPerHost:     maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// near returns a point within spread degrees of c.
func near(c LatLng, spread float64) LatLng {
	return LatLng{Lat: c.Lat + (rand.Float64()*2-1)*spread, Lng: c.Lng + (rand.Float64()*2-1)*spread}
}

// drain reads what is left of a body (up to 1 MiB) and closes it, so the
// connection goes back to the pool.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
	_ = body.Close()
}
