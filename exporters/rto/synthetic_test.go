package rto

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// fakeAPI is a region's ride API whose answers the test sets; every
// request advances the fake clock by 30 ms.
type fakeAPI struct {
	*httptest.Server
	clock *fakeClock

	mu           sync.Mutex
	createStatus int
	createBody   string // instead of a ride
	cancelStatus int
	block        bool // hold requests until the client gives up
	next         int
	created      []rideRequest
	keys         []string
	cancelled    []string
}

func newFakeAPI(t *testing.T, clock *fakeClock) *fakeAPI {
	t.Helper()
	a := newFakeAPIB(t)
	a.set(func(a *fakeAPI) { a.clock = clock })
	return a
}

// newFakeAPIB is newFakeAPI for benchmarks too (no fake clock).
func newFakeAPIB(t testing.TB) *fakeAPI {
	t.Helper()
	a := &fakeAPI{createStatus: http.StatusCreated, cancelStatus: http.StatusOK}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/rides", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		block := a.block
		a.mu.Unlock()
		if block {
			// Read the body first: only then does the server notice the
			// client hanging up and cancel the request's context.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second): // a bound, should the client never hang up
			}
			return
		}
		a.advance()
		var req rideRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.created = append(a.created, req)
		a.keys = append(a.keys, r.Header.Get("Idempotency-Key"))
		if a.createStatus != http.StatusCreated {
			w.WriteHeader(a.createStatus)
			fmt.Fprint(w, `{"error":"unavailable","reason":"store_unavailable"}`)
			return
		}
		if a.createBody != "" {
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, a.createBody)
			return
		}
		a.next++
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"%d","state":"requested","rider_id":%q}`, 1000+a.next, req.RiderID)
	})
	mux.HandleFunc("POST /v1/rides/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		a.advance()
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.cancelStatus != http.StatusOK {
			w.WriteHeader(a.cancelStatus)
			fmt.Fprint(w, `{"error":"nope"}`)
			return
		}
		a.cancelled = append(a.cancelled, r.PathValue("id"))
		fmt.Fprintf(w, `{"id":%q,"state":"cancelled"}`, r.PathValue("id"))
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

// advance moves the fake clock, if any, by a request's 30 ms.
func (a *fakeAPI) advance() {
	a.mu.Lock()
	c := a.clock
	a.mu.Unlock()
	if c != nil {
		c.Advance(30 * time.Millisecond)
	}
}

func (a *fakeAPI) set(fn func(a *fakeAPI)) { a.mu.Lock(); fn(a); a.mu.Unlock() }

func (a *fakeAPI) cancelledIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.cancelled)
}

// TestSyntheticProbeAgainstAFakeAPI drives the probe loop round by round
// on a fake ticker and clock against an httptest ride API.
func TestSyntheticProbeAgainstAFakeAPI(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	api := newFakeAPI(t, clock)
	ticker := fakeTicker{ch: make(chan time.Time)}
	s, err := NewSynthetic(SyntheticConfig{
		Regions: []RegionAPI{{Name: "sh-a", BaseURL: api.URL + "/", Point: LatLng{31.2, 121.4}}},
		Now:     clock.Now, NewTicker: func(time.Duration) Ticker { return ticker },
	})
	if err != nil {
		t.Fatal(err)
	}
	probed := make(chan string)
	s.probed = func(r string) { probed <- r }
	reg := registry(t, s)
	want(t, scrape(t, reg), `carpool_exporter_up{exporter="synthetic"}`, 0) // not running yet

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	wait := func() {
		t.Helper()
		select {
		case <-probed:
		case <-time.After(5 * time.Second):
			t.Fatal("no probe within 5s")
		}
	}
	tick := func() { t.Helper(); ticker.ch <- clock.Now(); wait() }
	wait()

	t.Run("A ride is created and cancelled; the probe succeeds.", func(t *testing.T) {
		out := scrape(t, reg)
		want(t, out, `carpool_exporter_up{exporter="synthetic"}`, 1)
		want(t, out, success("sh-a"), 1)
		want(t, out, duration("sh-a"), 0.06) // two requests of 30 ms on the fake clock
		want(t, out, runs("sh-a"), 1)
		want(t, out, failures("sh-a", "create"), 0)
		want(t, out, failures("sh-a", "cancel"), 0)
		promtoolCheck(t, out)
		api.mu.Lock()
		defer api.mu.Unlock()
		req := api.created[0]
		if req.RiderID != DefaultRiderID || req.Pickup != (LatLng{31.2, 121.4}) || req.Dropoff.Lat <= req.Pickup.Lat {
			t.Fatalf("ride request %+v", req)
		}
		if !strings.HasPrefix(api.keys[0], "synthetic-probe-sh-a-") || !slices.Equal(api.cancelled, []string{"1001"}) {
			t.Fatalf("key %q, cancelled %v", api.keys[0], api.cancelled)
		}
	})

	t.Run("A refused creation fails the create step.", func(t *testing.T) {
		api.set(func(a *fakeAPI) { a.createStatus = http.StatusServiceUnavailable })
		tick()
		out := scrape(t, reg)
		want(t, out, success("sh-a"), 0)
		want(t, out, failures("sh-a", "create"), 1)
		want(t, out, runs("sh-a"), 2)
		api.set(func(a *fakeAPI) { a.createStatus, a.createBody = http.StatusCreated, `{"state":"requested"}` })
		tick()
		want(t, scrape(t, reg), failures("sh-a", "create"), 2) // no id in the answer
		api.set(func(a *fakeAPI) { a.createBody = "" })
	})

	t.Run("A failed cancel fails the cancel step, and the ride is cancelled once the region recovers.", func(t *testing.T) {
		api.set(func(a *fakeAPI) { a.cancelStatus = http.StatusServiceUnavailable })
		tick() // ride 1002 left behind
		out := scrape(t, reg)
		want(t, out, success("sh-a"), 0)
		want(t, out, failures("sh-a", "cancel"), 1)
		api.set(func(a *fakeAPI) { a.cancelStatus = http.StatusConflict })
		tick() // ride 1003 refused for good: not retried
		want(t, scrape(t, reg), failures("sh-a", "cancel"), 2)
		api.set(func(a *fakeAPI) { a.cancelStatus = http.StatusOK })
		tick() // ride 1004, then the leftover 1002
		want(t, scrape(t, reg), success("sh-a"), 1)
		if got := api.cancelledIDs(); !slices.Equal(got, []string{"1001", "1004", "1002"}) {
			t.Fatalf("cancelled %v, want 1001, 1004 and the leftover 1002 (1003 was refused for good)", got)
		}
		tick()
		if got := api.cancelledIDs(); len(got) != 4 {
			t.Fatalf("cancelled %v: the leftover was cancelled twice", got)
		}
	})

	t.Run("An API that is gone fails the create step and recovers.", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		s.cfg.Regions[0].BaseURL = dead.URL // only the loop reads it, between rounds
		tick()
		out := scrape(t, reg)
		want(t, out, success("sh-a"), 0)
		want(t, out, `carpool_exporter_up{exporter="synthetic"}`, 1) // the probe works; the region does not
		s.cfg.Regions[0].BaseURL = api.URL
		tick()
		want(t, scrape(t, reg), success("sh-a"), 1)
	})

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, reg), `carpool_exporter_up{exporter="synthetic"}`, 0)
}

// TestSyntheticProbeTimesOut holds the API until the probe gives up: the
// probe is bounded by its timeout, on the real clock.
func TestSyntheticProbeTimesOut(t *testing.T) {
	api := newFakeAPI(t, nil)
	api.set(func(a *fakeAPI) { a.block = true })
	s, err := NewSynthetic(SyntheticConfig{Regions: []RegionAPI{{Name: "sh-a", BaseURL: api.URL}}, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	s.probeRegion(context.Background(), 0)
	if took := time.Since(began); took > 900*time.Millisecond {
		t.Fatalf("the probe took %s; the 50ms timeout must bound it", took)
	}
	s.running.Store(true)
	out := scrape(t, registry(t, s))
	want(t, out, failures("sh-a", "create"), 1)
	if d, _ := value(out, duration("sh-a")); d < 0.05 || d > 0.9 {
		t.Fatalf("duration %v, want about the 50ms timeout", d)
	}
	api.set(func(a *fakeAPI) { a.block = false })
}

func TestSyntheticConfigAndFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  SyntheticConfig
		want string
	}{
		"No region is named.":                    {SyntheticConfig{}, "no region"},
		"A base URL that is not http is named.":  {SyntheticConfig{Regions: []RegionAPI{{Name: "a", BaseURL: "127.0.0.1:80"}}}, `base URL "127.0.0.1:80"`},
		"A timeout not below the interval fails": {SyntheticConfig{Regions: []RegionAPI{{Name: "a", BaseURL: "http://x"}}, Timeout: time.Second}, "not below interval"},
		"A region given twice is named.":         {SyntheticConfig{Regions: []RegionAPI{{Name: "a", BaseURL: "http://x"}, {Name: "a", BaseURL: "http://y"}}}, `"a" is given twice`},
		"A point off the map is named.":          {SyntheticConfig{Regions: []RegionAPI{{Name: "a", BaseURL: "http://x", Point: LatLng{91, 0}}}}, "off the map"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewSynthetic(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSynthetic = %v, want %q", err, tc.want)
			}
		})
	}
	parse := func(args ...string) (*Exporter, error) {
		var f Flags
		fs := pflag.NewFlagSet("rto", pflag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Build(nil)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"No region API is named.":                     {nil, "--region-api is required"},
		"A region API without = is named.":            {[]string{"--region-api", "http://x"}, `--region-api "http://x": want region=base-url`},
		"A bad point is named.":                       {[]string{"--region-api", "a=http://x", "--point", "31.2"}, "--point"},
		"A point off the map is named.":               {[]string{"--region-api", "a=http://x", "--point", "95,10"}, "lat in [-90, 90]"},
		"A region point for an unknown region fails.": {[]string{"--region-api", "a=http://x", "--region-point", "b=1,2"}, `region "b" has no --region-api`},
		"A zero interval is refused.":                 {[]string{"--region-api", "a=http://x", "--interval", "0s"}, "--interval (0s)"},
		"An empty rider id is refused.":               {[]string{"--region-api", "a=http://x", "--rider-id", " "}, "--rider-id is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build(%v) = %v, want %q", tc.args, err, tc.want)
			}
		})
	}
	t.Run("Good flags build the probe with per-region points, and the drills.", func(t *testing.T) {
		e, err := parse("--region-api", "sh-a=http://127.0.0.1:1", "--region-api", "bj-a=http://127.0.0.1:2", "--region-point", "bj-a=39.9042,116.4074")
		if err != nil {
			t.Fatal(err)
		}
		r := e.Synthetic.cfg.Regions
		if r[0].Point != DefaultPoint || r[1].Point != (LatLng{39.9042, 116.4074}) || e.Drills == nil || len(e.Collectors) != 1 {
			t.Fatalf("regions %+v, exporter %+v", r, e)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(e.Collectors...)
		if err := e.Drills.Record("region-down", map[string]time.Duration{PhaseTotal: 7 * time.Second}, time.Second); err != nil {
			t.Fatal(err)
		}
		out := scrape(t, reg)
		want(t, out, `carpool_drill_rto_seconds{phase="total",scenario="region-down"}`, 7)
		want(t, out, `carpool_exporter_up{exporter="rto"}`, 0) // the probe loop is not running
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		realserver.WaitFor(t, 5*time.Second, "the first probes", func() (bool, error) {
			out := scrape(t, reg)
			_, ok1 := value(out, success("sh-a"))
			_, ok2 := value(out, success("bj-a"))
			return ok1 && ok2, nil
		})
		out = scrape(t, reg)
		want(t, out, `carpool_exporter_up{exporter="rto"}`, 1)
		want(t, out, success("sh-a"), 0) // nothing listens on 127.0.0.1:1
		promtoolCheck(t, out)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := NewExporter(nil, nil, nil).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		var nilE *Exporter
		if err := nilE.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
