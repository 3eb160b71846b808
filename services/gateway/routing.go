package gateway

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// Breaker states in a routing table.
const (
	BreakerClosed     = "closed"
	BreakerRecovering = "recovering"
	BreakerOpen       = "open"
)

// MaxWeight is the largest weight a routing table may give a region.
const MaxWeight = 10000

// maxAdminBody bounds a routing table's size.
const maxAdminBody = 64 << 10

// Table is a routing table, as the SLA engine pushes it to PUT /admin/routing
// and as the pull fallback reads it from WeightsURL:
//
//	{"version": 7, "regions": {"sh-a": {"weight": 50, "breaker": "closed"}}}
//
// A table only applies when its version is newer than the applied one, so
// that resending it is harmless. Regions it leaves out keep their entry.
type Table struct {
	Version int64                  `json:"version"`
	Regions map[string]RegionRoute `json:"regions"`
}

// RegionRoute is one region's entry in a Table.
type RegionRoute struct {
	// Weight in [0, MaxWeight]; decimals are kept to 1/1000. A region with
	// weight 0 gets traffic only when every serving region has weight 0.
	Weight float64 `json:"weight"`
	// Breaker is closed, recovering (traffic by weight) or open (no traffic).
	Breaker string `json:"breaker"`
}

// fieldError is bad input naming the field at fault.
type fieldError struct {
	Field, Msg string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Msg }

// parseTable reads and checks a routing table; every field is checked
// before anything applies.
func (g *Gateway) parseTable(body []byte) (Table, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return Table{}, &fieldError{"body", "not a JSON object: " + errString(err, "null")}
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if k != "version" && k != "regions" {
			return Table{}, &fieldError{k, "unknown field; a routing table has version and regions"}
		}
	}
	var t Table
	raw, ok := top["version"]
	if !ok {
		return Table{}, &fieldError{"version", "missing; give the table's version, a non-negative integer"}
	}
	var v json.Number
	if err := decodeNumber(raw, &v); err != nil {
		return Table{}, &fieldError{"version", "must be a non-negative integer"}
	}
	n, err := v.Int64()
	if err != nil || n < 0 {
		return Table{}, &fieldError{"version", fmt.Sprintf("%s is not a non-negative integer", v)}
	}
	t.Version = n
	var regions map[string]json.RawMessage
	if raw, ok := top["regions"]; !ok || json.Unmarshal(raw, &regions) != nil || len(regions) == 0 {
		return Table{}, &fieldError{"regions", "must be an object mapping at least one region name to {weight, breaker}"}
	}
	t.Regions = make(map[string]RegionRoute, len(regions))
	for _, name := range slices.Sorted(maps.Keys(regions)) {
		f := "regions." + name
		if g.byName[name] == nil {
			return Table{}, &fieldError{f, fmt.Sprintf("unknown region; this gateway knows %s", strings.Join(g.regionNames(), ", "))}
		}
		var entry map[string]json.RawMessage
		if err := json.Unmarshal(regions[name], &entry); err != nil || entry == nil {
			return Table{}, &fieldError{f, "must be an object {weight, breaker}"}
		}
		for _, k := range slices.Sorted(maps.Keys(entry)) {
			if k != "weight" && k != "breaker" {
				return Table{}, &fieldError{f + "." + k, "unknown field; a region has weight and breaker"}
			}
		}
		var rr RegionRoute
		var w json.Number
		if raw, ok := entry["weight"]; !ok || decodeNumber(raw, &w) != nil {
			return Table{}, &fieldError{f + ".weight", fmt.Sprintf("missing or not a number; give a weight in [0, %d]", MaxWeight)}
		}
		if rr.Weight, err = w.Float64(); err != nil || math.IsNaN(rr.Weight) || rr.Weight < 0 || rr.Weight > MaxWeight {
			return Table{}, &fieldError{f + ".weight", fmt.Sprintf("%s is out of range; give a weight in [0, %d]", w, MaxWeight)}
		}
		raw, ok := entry["breaker"]
		if !ok || json.Unmarshal(raw, &rr.Breaker) != nil {
			return Table{}, &fieldError{f + ".breaker", "missing or not a string; give closed, recovering or open"}
		}
		if _, ok := parseBreaker(rr.Breaker); !ok {
			return Table{}, &fieldError{f + ".breaker", fmt.Sprintf("%q is not a breaker state; give closed, recovering or open", rr.Breaker)}
		}
		t.Regions[name] = rr
	}
	return t, nil
}

func decodeNumber(raw json.RawMessage, n *json.Number) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	num, ok := v.(json.Number)
	if !ok {
		return errors.New("not a number")
	}
	*n = num
	return nil
}

func errString(err error, otherwise string) string {
	if err == nil {
		return otherwise
	}
	return err.Error()
}

func parseBreaker(s string) (breaker, bool) {
	switch s {
	case BreakerClosed:
		return breakerClosed, true
	case BreakerRecovering:
		return breakerRecovering, true
	case BreakerOpen:
		return breakerOpen, true
	}
	return 0, false
}

func (b breaker) String() string {
	switch b {
	case breakerRecovering:
		return BreakerRecovering
	case breakerOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

func milliWeight(w float64) int64 { return int64(math.Round(w * 1000)) }

func (g *Gateway) regionNames() []string {
	names := make([]string, len(g.regions))
	for i, r := range g.regions {
		names[i] = r.name
	}
	return names
}

// apply installs t when its version is newer than the applied one and
// reports whether it did.
func (g *Gateway) apply(t Table, source string) bool {
	type change struct {
		name     string
		from, to breaker
	}
	var changes []change
	g.mu.Lock()
	if t.Version <= g.version {
		cur := g.version
		g.mu.Unlock()
		g.m.updates.WithLabelValues(g.cfg.Region, source, catalog.RoutingStale).Inc()
		g.log.Debug("routing table ignored: version not newer", "source", source, "version", t.Version, "applied_version", cur)
		return false
	}
	for name, rr := range t.Regions {
		r := g.byName[name]
		b, _ := parseBreaker(rr.Breaker)
		if b != r.breaker {
			changes = append(changes, change{name, r.breaker, b})
		}
		r.breaker = b
		g.weights[r.idx] = milliWeight(rr.Weight)
		r.routeWeight.Set(rr.Weight)
	}
	g.version = t.Version
	g.mu.Unlock()
	g.m.version.WithLabelValues(g.cfg.Region).Set(float64(t.Version))
	g.m.updates.WithLabelValues(g.cfg.Region, source, catalog.RoutingApplied).Inc()
	g.log.Info("routing table applied", "source", source, "version", t.Version)
	for _, c := range changes {
		g.log.Info("region breaker changed", "target", c.name, "from", c.from.String(), "to", c.to.String(), "version", t.Version)
	}
	return true
}

// RegionStatus is one region in GET /admin/routing.
type RegionStatus struct {
	Weight       float64    `json:"weight"`
	Breaker      string     `json:"breaker"`
	City         string     `json:"city,omitempty"`
	ProbeHealthy bool       `json:"probe_healthy"`
	Ejected      bool       `json:"ejected"`
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	Ejections    int        `json:"ejections"`
}

// Status is the body of GET /admin/routing.
type Status struct {
	Region  string                  `json:"region"`
	Version int64                   `json:"version"`
	Regions map[string]RegionStatus `json:"regions"`
}

// Status returns the applied routing table and each region's probe and
// ejection state.
func (g *Gateway) Status() Status {
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Status{Region: g.cfg.Region, Version: g.version, Regions: make(map[string]RegionStatus, len(g.regions))}
	for i, r := range g.regions {
		rs := RegionStatus{
			Weight: float64(g.weights[i]) / 1000, Breaker: r.breaker.String(), City: r.city,
			ProbeHealthy: r.healthy.Load(), Ejected: r.out.ejected(now), Ejections: r.out.ejections,
		}
		if rs.Ejected {
			until := r.out.ejectedUntil
			rs.EjectedUntil = &until
		}
		s.Regions[r.name] = rs
	}
	return s
}

// serveAdmin serves PUT and GET /admin/routing.
func (g *Gateway) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if g.cfg.AdminToken == "" {
		writeError(w, http.StatusNotFound, errorBody{Error: "the routing admin API is disabled; start the gateway with an admin token to enable it"})
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(g.cfg.AdminToken)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="carpoolsla-gateway"`)
		writeError(w, http.StatusUnauthorized, errorBody{Error: "missing or wrong bearer token", Field: "Authorization"})
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, g.Status())
	case http.MethodPut:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("routing table larger than %d bytes", maxAdminBody), Field: "body"})
				return
			}
			writeError(w, http.StatusBadRequest, errorBody{Error: "reading the routing table: " + err.Error(), Field: "body"})
			return
		}
		t, err := g.parseTable(body)
		if err != nil {
			g.m.updates.WithLabelValues(g.cfg.Region, catalog.RoutingSourcePush, catalog.RoutingInvalid).Inc()
			var fe *fieldError
			errors.As(err, &fe)
			writeError(w, http.StatusBadRequest, errorBody{Error: "invalid routing table: " + fe.Error(), Field: fe.Field})
			return
		}
		g.mu.Lock()
		g.lastPush = g.cfg.Now()
		g.mu.Unlock()
		applied := g.apply(t, catalog.RoutingSourcePush)
		g.mu.Lock()
		cur := g.version
		g.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"applied": applied, "version": cur})
	default:
		w.Header().Set("Allow", "GET, PUT")
		writeError(w, http.StatusMethodNotAllowed, errorBody{Error: "use GET or PUT", Field: "method"})
	}
}

// runPull pulls the routing table from WeightsURL at start and then every
// PullInterval in which no push arrived for PushStaleAfter.
func (g *Gateway) runPull(ctx context.Context) error {
	if g.cfg.WeightsURL == "" {
		return nil
	}
	g.pullIfStale(ctx)
	t := g.cfg.NewTicker(g.cfg.PullInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			g.pullIfStale(ctx)
		}
	}
}

// pullIfStale fetches and applies the table when pushes stopped arriving.
func (g *Gateway) pullIfStale(ctx context.Context) {
	g.mu.Lock()
	last := g.lastPush
	g.mu.Unlock()
	if !last.IsZero() && g.cfg.Now().Sub(last) < g.cfg.PushStaleAfter {
		return
	}
	t, err := g.fetchTable(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		result := catalog.RoutingFailed
		var fe *fieldError
		if errors.As(err, &fe) {
			result = catalog.RoutingInvalid
		}
		g.m.updates.WithLabelValues(g.cfg.Region, catalog.RoutingSourcePull, result).Inc()
		g.log.Warn("pulling the routing table failed; keeping the applied one", "url", g.cfg.WeightsURL, "err", err)
		return
	}
	g.apply(t, catalog.RoutingSourcePull)
}

// fetchTable GETs WeightsURL.
func (g *Gateway) fetchTable(ctx context.Context) (Table, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.TryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.cfg.WeightsURL, nil)
	if err != nil {
		return Table{}, fmt.Errorf("building the pull request: %w", err)
	}
	if g.cfg.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+g.cfg.AdminToken)
	}
	resp, err := g.probeClient.Do(req)
	if err != nil {
		return Table{}, fmt.Errorf("pulling the routing table: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody+1))
	if err != nil {
		return Table{}, fmt.Errorf("reading the pulled routing table: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Table{}, fmt.Errorf("pulling the routing table: status %d", resp.StatusCode)
	}
	if len(body) > maxAdminBody {
		return Table{}, fmt.Errorf("pulled routing table larger than %d bytes", maxAdminBody)
	}
	t, err := g.parseTable(body)
	if err != nil {
		return Table{}, fmt.Errorf("the pulled routing table is invalid: %w", err)
	}
	return t, nil
}
