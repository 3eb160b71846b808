package sourcetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/carpoolsla/carpoolsla/sla/source"
)

// Point is one sample of a recorded series.
type Point struct {
	T time.Time
	V float64
}

// Series is one recorded series: its labels (with __name__) and its
// samples in time order.
type Series struct {
	Labels map[string]string
	Points []Point
}

// Phase is a named stretch of a scenario, such as the spike of a latency
// scenario, for tests that check what happens in each.
type Phase struct {
	Name     string
	From, To time.Time
}

// Scenario is a recorded set of series with known values. It can be written
// into the embedded store (Append), into a real Prometheus started with
// --web.enable-remote-write-receiver or a real VictoriaMetrics (RemoteWrite,
// or ImportText for VictoriaMetrics), and then read back through any
// source.Querier.
type Scenario struct {
	Name string
	// Step is the interval between two samples of a series.
	Step   time.Duration
	Series []Series
	Phases []Phase
}

// nameLabel is the label holding a series' metric name.
const nameLabel = model.MetricNameLabel

var metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate checks that every series has a valid metric name and label
// names, is not repeated, and has samples in increasing time order.
func (s Scenario) Validate() error {
	seen := map[string]bool{}
	for i, ser := range s.Series {
		if !metricName.MatchString(ser.Labels[nameLabel]) {
			return fmt.Errorf("sourcetest: scenario %s: series %d has no valid __name__: %v", s.Name, i, ser.Labels)
		}
		for name := range ser.Labels {
			if !labelName.MatchString(name) && name != nameLabel {
				return fmt.Errorf("sourcetest: scenario %s: series %v: bad label name %q", s.Name, ser.Labels, name)
			}
		}
		key := source.LabelString(ser.Labels)
		if seen[key] {
			return fmt.Errorf("sourcetest: scenario %s: series %s appears twice", s.Name, key)
		}
		seen[key] = true
		if len(ser.Points) == 0 {
			return fmt.Errorf("sourcetest: scenario %s: series %s has no samples", s.Name, key)
		}
		for j := 1; j < len(ser.Points); j++ {
			if !ser.Points[j].T.After(ser.Points[j-1].T) {
				return fmt.Errorf("sourcetest: scenario %s: series %s: sample %d is not after sample %d", s.Name, key, j, j-1)
			}
		}
	}
	return nil
}

// Start and End are the times of the scenario's first and last samples.
func (s Scenario) Start() time.Time {
	var t time.Time
	for _, ser := range s.Series {
		if p := ser.Points[0].T; t.IsZero() || p.Before(t) {
			t = p
		}
	}
	return t
}

// End is the time of the scenario's last sample.
func (s Scenario) End() time.Time {
	var t time.Time
	for _, ser := range s.Series {
		if p := ser.Points[len(ser.Points)-1].T; p.After(t) {
			t = p
		}
	}
	return t
}

// Samples is the number of samples of the scenario.
func (s Scenario) Samples() int {
	n := 0
	for _, ser := range s.Series {
		n += len(ser.Points)
	}
	return n
}

// Phase returns the named phase.
func (s Scenario) Phase(name string) (Phase, bool) {
	for _, p := range s.Phases {
		if p.Name == name {
			return p, true
		}
	}
	return Phase{}, false
}

// QueryTimes returns evaluation times at which every store sees the same
// samples: half a step off the sample grid (so no sample lies on a range
// selector's edge, where Prometheus 2 and 3 differ), once per every, from
// warmup after the start to the end.
func (s Scenario) QueryTimes(warmup, every time.Duration) []time.Time {
	var ts []time.Time
	end := s.End()
	for t := s.Start().Add(warmup).Add(s.Step / 2); !t.After(end); t = t.Add(every) {
		ts = append(ts, t)
	}
	return ts
}

// sortedLabels turns a label map into Prometheus labels, sorted.
func sortedLabels(m map[string]string) labels.Labels {
	return labels.FromMap(m)
}

// Append writes the scenario into a Prometheus storage (the embedded store,
// or any tsdb) in one transaction.
func (s Scenario) Append(ctx context.Context, db storage.AppendableV2) error {
	if err := s.Validate(); err != nil {
		return err
	}
	app := db.AppenderV2(ctx)
	for _, ser := range s.Series {
		ls := sortedLabels(ser.Labels)
		var ref storage.SeriesRef
		for _, p := range ser.Points {
			var err error
			ref, err = app.Append(ref, ls, 0, p.T.UnixMilli(), p.V, nil, nil, storage.AOptions{})
			if err != nil {
				_ = app.Rollback()
				return fmt.Errorf("sourcetest: appending %s at %s: %w", ls, p.T.Format(time.RFC3339), err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("sourcetest: committing scenario %s: %w", s.Name, err)
	}
	return nil
}

// WriteRequest is the scenario as a remote-write (v1) request.
func (s Scenario) WriteRequest() *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(s.Series))}
	for _, ser := range s.Series {
		var ts prompb.TimeSeries
		sortedLabels(ser.Labels).Range(func(l labels.Label) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		})
		for _, p := range ser.Points {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: p.V, Timestamp: p.T.UnixMilli()})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

// RemoteWrite sends the scenario with the remote-write protocol (v1,
// protobuf and snappy) to url: a Prometheus started with
// --web.enable-remote-write-receiver (http://host:port/api/v1/write) or a
// VictoriaMetrics (same path). client nil means http.DefaultClient.
func (s Scenario) RemoteWrite(ctx context.Context, client *http.Client, url string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	raw, err := s.WriteRequest().Marshal()
	if err != nil {
		return fmt.Errorf("sourcetest: encoding scenario %s: %w", s.Name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return fmt.Errorf("sourcetest: remote write to %s: %w", url, err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	return send(client, req)
}

// ImportText sends the scenario in the Prometheus text format with
// millisecond timestamps to VictoriaMetrics' /api/v1/import/prometheus (url
// is the full endpoint URL).
func (s Scenario) ImportText(ctx context.Context, client *http.Client, url string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var b bytes.Buffer
	for _, ser := range s.Series {
		name := ser.Labels[nameLabel]
		var ls []string
		sortedLabels(ser.Labels).Range(func(l labels.Label) {
			if l.Name != nameLabel {
				ls = append(ls, fmt.Sprintf("%s=%q", l.Name, l.Value))
			}
		})
		for _, p := range ser.Points {
			fmt.Fprintf(&b, "%s{%s} %s %d\n", name, strings.Join(ls, ","), formatFloat(p.V), p.T.UnixMilli())
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &b)
	if err != nil {
		return fmt.Errorf("sourcetest: import to %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "text/plain")
	return send(client, req)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return fmt.Sprintf("%.17g", v)
}

func send(client *http.Client, req *http.Request) error {
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("sourcetest: writing to %s: %w", req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sourcetest: writing to %s: %s: %s", req.URL, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// Visible returns nil when q sees every series of the scenario at its end
// (one count by __name__ query), else an error saying what is missing. A
// store that accepted the samples may need a moment before it shows them
// (VictoriaMetrics after a flush): poll with WaitVisible.
func (s Scenario) Visible(ctx context.Context, q source.Querier) error {
	want := map[string]float64{}
	for _, ser := range s.Series {
		// Only series with a sample within the lookback of the end show.
		if s.End().Sub(ser.Points[len(ser.Points)-1].T) < 4*time.Minute {
			want[ser.Labels[nameLabel]]++
		}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, regexp.QuoteMeta(n))
	}
	sort.Strings(names)
	expr := fmt.Sprintf(`count by (__name__) ({__name__=~"%s"})`, strings.Join(names, "|"))
	vec, err := q.Query(ctx, expr, s.End())
	if err != nil {
		return err
	}
	got := map[string]float64{}
	for _, smp := range vec {
		got[smp.Labels[nameLabel]] = smp.Value
	}
	var missing []string
	for n, c := range want {
		if got[n] != c {
			missing = append(missing, fmt.Sprintf("%s: %v of %v series", n, got[n], c))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("sourcetest: scenario %s not visible yet: %s", s.Name, strings.Join(missing, "; "))
	}
	return nil
}

// WaitVisible polls Visible every interval until it passes or timeout
// passes (then the last error).
func (s Scenario) WaitVisible(ctx context.Context, q source.Querier, timeout, interval time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := s.Visible(ctx, q)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, errors.Join(err, ctx.Err()))
		case <-t.C:
		}
	}
}

// Diff compares two vectors as sets keyed by label set: it returns "" when
// they hold the same label sets with values equal within a relative
// tolerance (absolute below 1), else a description of the differences.
// NaNs equal NaNs; timestamps are not compared.
func Diff(want, got source.Vector, tolerance float64) string {
	index := func(v source.Vector) (map[string]float64, []string) {
		m := map[string]float64{}
		var dup []string
		for _, s := range v {
			k := source.LabelString(s.Labels)
			if _, ok := m[k]; ok {
				dup = append(dup, k)
			}
			m[k] = s.Value
		}
		return m, dup
	}
	w, wdup := index(want)
	g, gdup := index(got)
	var out []string
	for _, k := range wdup {
		out = append(out, "want repeats "+k)
	}
	for _, k := range gdup {
		out = append(out, "got repeats "+k)
	}
	for k, wv := range w {
		gv, ok := g[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("missing %s (want %v)", k, wv))
		case !Close(wv, gv, tolerance):
			out = append(out, fmt.Sprintf("%s = %v, want %v", k, gv, wv))
		}
	}
	for k, gv := range g {
		if _, ok := w[k]; !ok {
			out = append(out, fmt.Sprintf("unexpected %s = %v", k, gv))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// Close reports whether a and b are equal within tolerance: relative to
// the larger magnitude, or absolute when both are below 1. NaN equals NaN.
func Close(a, b, tolerance float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if a == b {
		return true
	}
	return math.Abs(a-b) <= tolerance*max(1, math.Abs(a), math.Abs(b))
}
