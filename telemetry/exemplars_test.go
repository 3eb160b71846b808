package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// exemplarsOf gathers reg and returns the trace ids of the exemplars of the
// family name (histogram buckets or counter).
func exemplarsOf(t *testing.T, reg *prometheus.Registry, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	collect := func(e *dto.Exemplar) {
		if e == nil {
			return
		}
		for _, l := range e.GetLabel() {
			if l.GetName() == ExemplarTraceID {
				ids = append(ids, l.GetValue())
			}
		}
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				collect(b.GetExemplar())
			}
			collect(m.GetCounter().GetExemplar())
		}
	}
	return ids
}

func TestObserveWithTrace(t *testing.T) {
	sampled := trace.ContextWithRemoteSpanContext(context.Background(), remoteParent(t, true))
	unsampled := trace.ContextWithRemoteSpanContext(context.Background(), remoteParent(t, false))
	want := remoteParent(t, true).TraceID().String()
	cases := map[string]struct {
		ctx     context.Context
		wantIDs []string
	}{
		"A sampled span leaves its trace id as the exemplar.": {sampled, []string{want}},
		"An unsampled span leaves no exemplar.":               {unsampled, nil},
		"A context without a span leaves no exemplar.":        {context.Background(), nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := NewHistogramVec(catalog.RequestDuration)
			c := NewCounterVec(catalog.OrdersCreated)
			reg.MustRegister(h, c)
			ObserveWithTrace(tc.ctx, h.WithLabelValues("eu", "order", "create", "201", "ok"), 0.042)
			AddWithTrace(tc.ctx, c.WithLabelValues("eu"), 1)
			if got := exemplarsOf(t, reg, catalog.RequestDuration.Name); !slices.Equal(got, tc.wantIDs) {
				t.Errorf("histogram exemplars %v, want %v", got, tc.wantIDs)
			}
			if got := exemplarsOf(t, reg, catalog.OrdersCreated.Name); !slices.Equal(got, tc.wantIDs) {
				t.Errorf("counter exemplars %v, want %v", got, tc.wantIDs)
			}
		})
	}
}

// observerOnly hides a histogram's ExemplarObserver.
type observerOnly struct{ prometheus.Observer }

func TestObserveWithTraceOnAPlainObserver(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remoteParent(t, true))
	ObserveWithTrace(ctx, observerOnly{h}, 1)
	mfs, _ := reg.Gather()
	if got := mfs[0].GetMetric()[0].GetHistogram().GetSampleCount(); got != 1 {
		t.Fatalf("sample count %d, want 1", got)
	}
}

// TestExemplarsReachAnOpenMetricsScrape checks the wiring the docs describe:
// exemplars appear when the handler speaks OpenMetrics.
func TestExemplarsReachAnOpenMetricsScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHistogramVec(catalog.RequestDuration)
	reg.MustRegister(h)
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remoteParent(t, true))
	ObserveWithTrace(ctx, h.WithLabelValues("eu", "order", "create", "201", "ok"), 0.042)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := `# {trace_id="` + remoteParent(t, true).TraceID().String() + `"} 0.042`
	if !strings.Contains(string(body), want) {
		t.Fatalf("scrape lacks %q:\n%s", want, string(body))
	}
}
