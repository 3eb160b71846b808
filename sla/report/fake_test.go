package report

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// fakeHistory is a History that answers fixed values and records queries.
type fakeHistory struct {
	mu      sync.Mutex
	minutes []MinuteCounts
	buckets []BucketCount
	events  BreakerHistory
	drills  []DrillStats
	err     error
	sliQs   []SLIQuery
	bucketQ []BucketQuery
	eventQs []EventQuery
	drillQs []DrillQuery
}

func (f *fakeHistory) SLIMinutes(ctx context.Context, q SLIQuery, fn func(MinuteCounts) error) error {
	f.mu.Lock()
	f.sliQs = append(f.sliQs, q)
	minutes, err := f.minutes, f.err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for _, m := range minutes {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeHistory) SLIBuckets(ctx context.Context, q BucketQuery) ([]BucketCount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bucketQ = append(f.bucketQ, q)
	return f.buckets, f.err
}

func (f *fakeHistory) BreakerEvents(ctx context.Context, q EventQuery) (BreakerHistory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.eventQs = append(f.eventQs, q)
	return f.events, f.err
}

func (f *fakeHistory) DrillStats(ctx context.Context, q DrillQuery) ([]DrillStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drillQs = append(f.drillQs, q)
	return f.drills, f.err
}

type fakeLive struct {
	st  LiveStatus
	err error
}

func (f *fakeLive) Live(ctx context.Context) (LiveStatus, error) { return f.st, f.err }

type faultCall struct {
	Region string
	Clear  bool
	Fault  FaultRequest
}

type fakeFaults struct {
	mu    sync.Mutex
	calls []faultCall
	err   error
}

func (f *fakeFaults) Inject(ctx context.Context, region string, fr FaultRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, faultCall{Region: region, Fault: fr})
	return f.err
}

func (f *fakeFaults) Clear(ctx context.Context, region string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, faultCall{Region: region, Clear: true})
	return f.err
}

// fakeDrills keeps the drill records it is given.
type fakeDrills struct {
	mu   sync.Mutex
	recs []DrillRecord
	err  error
}

func (f *fakeDrills) RecordDrill(ctx context.Context, d DrillRecord) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.recs = append(f.recs, d)
	return nil
}

// testSpec is the shipped spec.
func testSpec(t testing.TB) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const testToken = "0123456789abcdef-test-token"

var testNow = time.Date(2026, 10, 15, 12, 30, 0, 0, time.UTC)

// newTestHandler builds a Handler on the shipped spec with fakes.
func newTestHandler(t testing.TB, mod func(*Config)) (*Handler, *fakeHistory, *fakeFaults) {
	t.Helper()
	h := &fakeHistory{}
	f := &fakeFaults{}
	cfg := Config{
		Spec: testSpec(t), History: h, Faults: f, Drills: &fakeDrills{}, Tokens: []string{testToken},
		Live:       &fakeLive{st: LiveStatus{At: testNow, Regions: []LiveRegion{{Name: "sh-a", Health: 97.5, Breaker: BreakerClosed, Weight: 40}}}},
		Now:        func() time.Time { return testNow },
		Registerer: prometheus.NewRegistry(),
	}
	if mod != nil {
		mod(&cfg)
	}
	hd, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return hd, h, f
}

// do serves one request from 127.0.0.1 (or from remote when set).
func do(h http.Handler, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:40000"
	for k, v := range hdr {
		if k == "remote" {
			req.RemoteAddr = v
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
