package drill

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/carpoolsla/carpoolsla/services/gateway"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// controlSample is one poll of the control plane: every gateway's routing
// status and the engine's breaker states, as read at At (when the last
// answer arrived).
type controlSample struct {
	At       time.Time
	Gateways map[string]gateway.Status // by gateway region; readable ones only
	Engine   map[string]EngineRegion   // nil without an engine or when unreadable
}

// lagSample is one scrape of every region's replication metrics.
type lagSample struct {
	At       time.Time
	SyncLag  map[pairKey]float64
	Exposure map[pairKey]float64
}

// EngineRegion is one region in the SLA engine's status.
type EngineRegion struct {
	Breaker string   `json:"breaker"`
	Health  *float64 `json:"health,omitempty"`
	// LatencyP99 is the region's P99 latency as the engine read it, seconds.
	LatencyP99 *float64 `json:"latency_p99_seconds,omitempty"`
}

// parseEngineStatus reads the engine's GET status JSON. It takes the
// regions as an object keyed by region or as a list of objects naming
// their region ("region" or "name"), each with its breaker state
// ("breaker" or "state", a string or an object with "state") and, when
// present and not null, its health score ("health" or "health_score") and
// P99 latency ("latency_p99_seconds"). sla/engine's GET /api/v1/status is
// such a list.
func parseEngineStatus(b []byte) (map[string]EngineRegion, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("the engine status is not a JSON object: %w", err)
	}
	raw, ok := top["regions"]
	if !ok {
		return nil, errors.New(`the engine status has no "regions"`)
	}
	entries := map[string]map[string]json.RawMessage{}
	var byName map[string]map[string]json.RawMessage
	var list []map[string]json.RawMessage
	switch {
	case json.Unmarshal(raw, &byName) == nil:
		entries = byName
	case json.Unmarshal(raw, &list) == nil:
		for _, e := range list {
			var name string
			if json.Unmarshal(e["region"], &name) != nil || name == "" {
				_ = json.Unmarshal(e["name"], &name)
			}
			if name == "" {
				return nil, errors.New(`an engine status region has neither "region" nor "name"`)
			}
			entries[name] = e
		}
	default:
		return nil, errors.New(`the engine status "regions" is neither an object nor a list`)
	}
	out := make(map[string]EngineRegion, len(entries))
	for name, e := range entries {
		var r EngineRegion
		for _, k := range []string{"breaker", "state"} {
			if v, ok := e[k]; ok {
				var s string
				var obj struct {
					State string `json:"state"`
				}
				if json.Unmarshal(v, &s) == nil {
					r.Breaker = s
				} else if json.Unmarshal(v, &obj) == nil {
					r.Breaker = obj.State
				}
				break
			}
		}
		if r.Breaker == "" {
			return nil, fmt.Errorf("engine status region %s has no breaker state", name)
		}
		num := func(keys ...string) *float64 {
			for _, k := range keys {
				var v *float64 // null (an unknown value) stays nil
				if raw, ok := e[k]; ok && json.Unmarshal(raw, &v) == nil && v != nil {
					return v
				}
			}
			return nil
		}
		r.Health = num("health", "health_score")
		r.LatencyP99 = num("latency_p99_seconds", "p99_seconds")
		out[name] = r
	}
	return out, nil
}

// poller reads the control plane and the replication metrics at fixed
// intervals and keeps every sample.
type poller struct {
	http        *http.Client
	token       string
	gateways    map[string]string // region → gateway URL
	engine      string
	metrics     map[string]string // region → /metrics URL
	poll, mpoll time.Duration
	now         func() time.Time

	mu      sync.Mutex
	control []controlSample
	lags    []lagSample
	errs    map[string]string // last error by source, for messages
}

// maxSamples bounds the samples kept (a day at 10 polls a second would be
// far past any drill).
const maxSamples = 200000

func (p *poller) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { p.loop(ctx, p.poll, p.pollControl) })
	wg.Go(func() { p.loop(ctx, p.mpoll, p.pollMetrics) })
	wg.Wait()
}

func (p *poller) loop(ctx context.Context, every time.Duration, f func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *poller) setErr(src string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		delete(p.errs, src)
		return
	}
	p.errs[src] = err.Error()
}

func (p *poller) lastErrors() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.errs)
}

func (p *poller) pollControl(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(p.poll*5, time.Second))
	defer cancel()
	s := controlSample{Gateways: map[string]gateway.Status{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for region, u := range p.gateways {
		wg.Go(func() {
			var st gateway.Status
			err := p.getJSON(ctx, strings.TrimSuffix(u, "/")+"/admin/routing", "gateway routing status", &st)
			p.setErr("gateway "+region, err)
			if err == nil {
				mu.Lock()
				s.Gateways[region] = st
				mu.Unlock()
			}
		})
	}
	if p.engine != "" {
		wg.Go(func() {
			b, err := p.get(ctx, p.engine, "engine status")
			var regions map[string]EngineRegion
			if err == nil {
				regions, err = parseEngineStatus(b)
			}
			p.setErr("engine", err)
			mu.Lock()
			s.Engine = regions
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil && len(s.Gateways) == 0 {
		return
	}
	s.At = p.now()
	p.mu.Lock()
	if len(p.control) < maxSamples {
		p.control = append(p.control, s)
	}
	p.mu.Unlock()
}

func (p *poller) pollMetrics(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(p.mpoll*4, 2*time.Second))
	defer cancel()
	s, ok := p.scrape(ctx)
	if !ok {
		return
	}
	p.mu.Lock()
	if len(p.lags) < maxSamples {
		p.lags = append(p.lags, s)
	}
	p.mu.Unlock()
}

// scrape reads every region's sync lag and RPO exposure once; ok is false
// when no region answered.
func (p *poller) scrape(ctx context.Context) (lagSample, bool) {
	s := lagSample{SyncLag: map[pairKey]float64{}, Exposure: map[pairKey]float64{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	answered := 0
	for region, u := range p.metrics {
		wg.Go(func() {
			b, err := p.get(ctx, u, "metrics")
			p.setErr("metrics "+region, err)
			if err != nil {
				return
			}
			lag := pairValues(b, catalog.SyncLag.Name)
			exp := pairValues(b, catalog.RPOExposure.Name)
			mu.Lock()
			answered++
			maps.Copy(s.SyncLag, lag)
			maps.Copy(s.Exposure, exp)
			mu.Unlock()
		})
	}
	wg.Wait()
	s.At = p.now()
	return s, answered > 0
}

func (p *poller) samples() ([]controlSample, []lagSample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.control), slices.Clone(p.lags)
}

func (p *poller) latest() (controlSample, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.control) == 0 {
		return controlSample{}, false
	}
	return p.control[len(p.control)-1], true
}

func (p *poller) latestLag() (lagSample, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.lags) == 0 {
		return lagSample{}, false
	}
	return p.lags[len(p.lags)-1], true
}

func (p *poller) get(ctx context.Context, u, what string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, u, err)
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading: %w", what, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, adminError(what, http.MethodGet, u, resp.StatusCode, b)
	}
	return b, nil
}

func (p *poller) getJSON(ctx context.Context, u, what string, v any) error {
	b, err := p.get(ctx, u, what)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: decoding: %w", what, u, err)
	}
	return nil
}

// pairValues reads the samples of a {source_region, target_region} gauge
// from a Prometheus text exposition.
func pairValues(body []byte, name string) map[pairKey]float64 {
	out := map[pairKey]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := []byte(name + "{")
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, prefix) {
			continue
		}
		labels, rest, ok := parseLabels(string(line[len(prefix):]))
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		k := pairKey{labels[catalog.LabelSourceRegion], labels[catalog.LabelTargetRegion]}
		if k.Source != "" && k.Target != "" {
			out[k] = v
		}
	}
	return out
}

// parseLabels reads `a="x",b="y"} rest` (the text after the opening
// brace) into labels and what follows the closing brace.
func parseLabels(s string) (map[string]string, string, bool) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], true
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return nil, "", false
		}
		name := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var val strings.Builder
		closed := false
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			if c == '"' {
				s, closed = s[i+1:], true
				break
			}
			val.WriteByte(c)
		}
		if !closed {
			return nil, "", false
		}
		labels[name] = val.String()
	}
}
