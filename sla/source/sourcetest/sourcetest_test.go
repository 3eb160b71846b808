package sourcetest

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestFakeAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := NewFake(map[string]source.Vector{"up": {S(1, "job", "a")}})
	boom := errors.New("boom")
	f.SetError("broken", boom)

	got, err := f.Query(ctx, "up", t0)
	if err != nil || len(got) != 1 || got[0].Value != 1 || got[0].Labels["job"] != "a" || !got[0].T.Equal(t0) {
		t.Errorf("a set expression: %v %v", got, err)
	}
	got[0].Labels["job"] = "changed"
	if again, _ := f.Query(ctx, "up", t0); again[0].Labels["job"] != "a" {
		t.Error("a caller's change to a result reached the fake")
	}
	if _, err := f.Query(ctx, "broken", t0); !errors.Is(err, boom) {
		t.Errorf("an expression set to fail: %v", err)
	}
	if got, err := f.Query(ctx, "unknown", t0); err != nil || got == nil || len(got) != 0 {
		t.Errorf("an unknown expression: %v %v, want an empty vector", got, err)
	}
	f.Strict = true
	if _, err := f.Query(ctx, "unknown", t0); err == nil || !strings.Contains(err.Error(), `no result for "unknown"`) {
		t.Errorf("strict: %v", err)
	}
	f.Func = func(_ context.Context, expr string, at time.Time) (source.Vector, error) {
		return source.Vector{{Labels: map[string]string{}, Value: float64(len(expr)), T: at}}, nil
	}
	if got, err := f.Query(ctx, "abc", t0); err != nil || got[0].Value != 3 {
		t.Errorf("with Func: %v %v", got, err)
	}
	f.Set("broken", source.Vector{S(2)})
	if got, err := f.Query(ctx, "broken", t0); err != nil || got[0].Value != 2 || got[0].Labels == nil {
		t.Errorf("Set after SetError: %v %v", got, err)
	}
	if calls := f.Calls(); len(calls) != 7 || calls[0].Expr != "up" || !calls[6].At.Equal(t0) {
		t.Errorf("calls %v", calls)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Query(canceled, "up", t0); !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled context: %v", err)
	}
}

func TestScenarioValidation(t *testing.T) {
	t.Parallel()
	pts := []Point{{t0, 1}, {t0.Add(time.Second), 2}}
	cases := map[string]struct {
		series []Series
		want   string
	}{
		"A well-formed scenario is valid.": {[]Series{{map[string]string{"__name__": "a"}, pts}}, ""},
		"A series without a name is refused.": {[]Series{{map[string]string{"job": "a"}, pts}},
			"has no valid __name__"},
		"A bad label name is refused.": {[]Series{{map[string]string{"__name__": "a", "bad-name": "x"}, pts}},
			`bad label name "bad-name"`},
		"A repeated series is refused.": {[]Series{{map[string]string{"__name__": "a"}, pts}, {map[string]string{"__name__": "a"}, pts}},
			"appears twice"},
		"Samples out of order are refused.": {[]Series{{map[string]string{"__name__": "a"}, []Point{pts[1], pts[0]}}},
			"sample 1 is not after sample 0"},
		"A series without samples is refused.": {[]Series{{map[string]string{"__name__": "a"}, nil}}, "has no samples"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := Scenario{Name: "s", Series: c.series}.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestCarpoolScenarioFollowsTheSpec(t *testing.T) {
	t.Parallel()
	sp, err := spec.Load("../../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	grid := time.Unix(1_700_000_100, 0) // a multiple of 15 s
	sc := Carpool(sp, grid.Add(7*time.Second))
	if !sc.End().Equal(grid) || sc.End().Sub(sc.Start()) != 10*time.Minute {
		t.Errorf("runs %s to %s, want the 10 minutes up to %s", sc.Start(), sc.End(), grid)
	}
	spike, ok := sc.Phase(PhaseSpike)
	if !ok || spike.To.Sub(spike.From) != 3*time.Minute {
		t.Fatalf("spike %v", spike)
	}
	value := func(name string, match map[string]string, at time.Time) (float64, bool) {
		for _, ser := range sc.Series {
			if ser.Labels["__name__"] != name {
				continue
			}
			hit := true
			for k, v := range match {
				hit = hit && ser.Labels[k] == v
			}
			if !hit {
				continue
			}
			for _, p := range ser.Points {
				if p.T.Equal(at) {
					return p.V, true
				}
			}
		}
		return 0, false
	}
	mid := spike.From.Add(time.Minute)
	for name, c := range map[string]struct {
		metric string
		match  map[string]string
		at     time.Time
		want   float64
	}{
		"The first region's P99 is 450 ms in the spike.":  {catalog.RegionLatencyP99.Name, map[string]string{"region": "sh-a"}, mid, 0.45},
		"The first region's P99 is 120 ms before it.":     {catalog.RegionLatencyP99.Name, map[string]string{"region": "sh-a"}, sc.Start(), 0.12},
		"Another region is untouched by the spike.":       {catalog.RegionLatencyP99.Name, map[string]string{"region": "sh-b"}, mid, 0.13},
		"Sync lag into the first region is 8 s in it.":    {catalog.SyncLag.Name, map[string]string{"target_region": "sh-a", "source_region": "bj-a"}, mid, 8},
		"A key SLO's budget is overspent in the spike.":   {catalog.SLOErrorBudgetRemaining.Name, map[string]string{"region": "sh-a", "service": "order", "slo": "availability"}, mid, -0.5},
		"Globally the 5m burn rate is a third of it.":     {catalog.SLIErrorRatioName("5m"), map[string]string{"region": "global", "service": "order", "slo": "availability"}, mid, (1 - 0.9999) * 20 / 3},
		"A request counter grows 150 per step from base.": {catalog.RequestDuration.Name + "_count", map[string]string{"region": "sh-b", "service": "order"}, sc.Start().Add(CarpoolStep), 150*1000 + 150},
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := value(c.metric, c.match, c.at)
			if !ok || !Close(got, c.want, 1e-12) {
				t.Errorf("%s%v at %s = %v (found %v), want %v", c.metric, c.match, c.at, got, ok, c.want)
			}
		})
	}
	if _, ok := value(catalog.RegionErrorRatio.Name, map[string]string{"region": "bj-a"}, mid); ok {
		t.Error("the last region has an error-ratio series; it should have none (a region without failures)")
	}
	times := sc.QueryTimes(2*time.Minute, time.Minute)
	if len(times) != 8 || !times[0].Equal(sc.Start().Add(2*time.Minute+CarpoolStep/2)) {
		t.Errorf("query times %v", times)
	}
	for _, q := range EngineQueries(sp) {
		if q.Name == "" || q.Expr == "" {
			t.Errorf("query %+v", q)
		}
	}
}

func TestScenarioWritesTheRemoteWriteProtocol(t *testing.T) {
	t.Parallel()
	sc := Scenario{Name: "s", Step: time.Second, Series: []Series{
		{map[string]string{"__name__": "a", "z": "1", "b": "2"}, []Point{{t0, 1.5}, {t0.Add(time.Second), math.Inf(1)}}},
	}}
	var got prompb.WriteRequest
	var headers http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers = r.Header
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		if err == nil {
			err = got.Unmarshal(raw)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	if err := sc.RemoteWrite(context.Background(), nil, srv.URL); err != nil {
		t.Fatal(err)
	}
	if headers.Get("Content-Encoding") != "snappy" || headers.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
		t.Errorf("headers %v", headers)
	}
	if len(got.Timeseries) != 1 {
		t.Fatalf("%d series", len(got.Timeseries))
	}
	ts := got.Timeseries[0]
	if len(ts.Labels) != 3 || ts.Labels[0].Name != "__name__" || ts.Labels[1].Name != "b" || ts.Labels[2].Name != "z" {
		t.Errorf("labels %v, want sorted by name", ts.Labels)
	}
	if len(ts.Samples) != 2 || ts.Samples[0].Timestamp != t0.UnixMilli() || ts.Samples[0].Value != 1.5 || !math.IsInf(ts.Samples[1].Value, 1) {
		t.Errorf("samples %v", ts.Samples)
	}

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "out of bounds", http.StatusBadRequest)
	}))
	defer failing.Close()
	if err := sc.RemoteWrite(context.Background(), nil, failing.URL); err == nil || !strings.Contains(err.Error(), "400 Bad Request: out of bounds") {
		t.Errorf("a refused write: %v", err)
	}
}

func TestScenarioImportTextHasMillisecondTimestamps(t *testing.T) {
	t.Parallel()
	sc := Scenario{Name: "s", Series: []Series{
		{map[string]string{"__name__": "a", "region": `sh"a`}, []Point{{t0, 0.1}, {t0.Add(time.Second), math.NaN()}}},
	}}
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
	}))
	defer srv.Close()
	if err := sc.ImportText(context.Background(), nil, srv.URL); err != nil {
		t.Fatal(err)
	}
	want := "a{region=\"sh\\\"a\"} 0.10000000000000001 1700000000000\na{region=\"sh\\\"a\"} NaN 1700000001000\n"
	if body != want {
		t.Errorf("got\n%s\nwant\n%s", body, want)
	}
}

func TestDiffFindsEveryDifference(t *testing.T) {
	t.Parallel()
	a := source.Vector{S(1, "region", "a"), S(math.NaN(), "region", "b"), S(3, "region", "c")}
	f := func(want, got source.Vector, tol float64, expect string) {
		t.Helper()
		if d := Diff(want, got, tol); d != expect {
			t.Errorf("got %q, want %q", d, expect)
		}
	}
	f(a, source.Vector{S(3, "region", "c"), S(math.NaN(), "region", "b"), S(1, "region", "a")}, 0, "")
	f(a, source.Vector{S(1+1e-12, "region", "a"), S(math.NaN(), "region", "b"), S(3, "region", "c")}, 1e-9, "")
	f(a, source.Vector{S(1.1, "region", "a"), S(0, "region", "b"), S(3, "region", "d")}, 1e-9,
		"missing {region=\"c\"} (want 3)\nunexpected {region=\"d\"} = 3\n{region=\"a\"} = 1.1, want 1\n{region=\"b\"} = 0, want NaN")
	f(source.Vector{S(1, "x", "1")}, source.Vector{S(1, "x", "1"), S(1, "x", "1")}, 0, "got repeats {x=\"1\"}")
	if !Close(1e6, 1e6+0.5, 1e-6) || Close(0.001, 0.002, 1e-6) {
		t.Error("Close is not relative above 1 and absolute below it")
	}
}
