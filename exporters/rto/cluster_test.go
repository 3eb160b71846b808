package rto

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/services/region/regiontest"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// points are where each demo region's rides start.
var points = map[string]LatLng{"sh-a": {31.2304, 121.4737}, "sh-b": {31.2204, 121.4637}, "bj-a": {39.9042, 116.4074}}

func startCluster(t *testing.T) *region.Cluster {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return regiontest.Start(t, region.ClusterConfig{Spec: s})
}

func rideState(t *testing.T, base, id string) string {
	t.Helper()
	resp, err := http.Get(base + "/v1/rides/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		State   string `json:"state"`
		RiderID string `json:"rider_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.RiderID != DefaultRiderID {
		t.Fatalf("ride %s: %+v %v", id, r, err)
	}
	return r.State
}

// TestSyntheticProbeOnARealCluster probes three regions of services/region
// running on loopback, with no driver anywhere: a ride is created (201,
// requested) and cancelled in each; a region that goes down fails its
// probes while the others succeed, and succeeds again once it is back.
func TestSyntheticProbeOnARealCluster(t *testing.T) {
	c := startCluster(t)
	var apis []RegionAPI
	for _, name := range c.Names() {
		apis = append(apis, RegionAPI{Name: name, BaseURL: c.Regions[name].URLs()[region.Entry], Point: points[name]})
	}
	ticker := fakeTicker{ch: make(chan time.Time)}
	s, err := NewSynthetic(SyntheticConfig{Regions: apis, NewTicker: func(time.Duration) Ticker { return ticker }})
	if err != nil {
		t.Fatal(err)
	}
	probed := make(chan string, len(apis))
	s.probed = func(r string) { probed <- r }
	reg := registry(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	round := func() {
		t.Helper()
		for range apis {
			select {
			case <-probed:
			case <-time.After(10 * time.Second):
				t.Fatal("a region was not probed within 10s")
			}
		}
	}
	round()

	out := scrape(t, reg)
	for i, name := range c.Names() {
		want(t, out, success(name), 1)
		want(t, out, failures(name, "create"), 0)
		if d, _ := value(out, duration(name)); d <= 0 || d > 0.9 {
			t.Errorf("%s: probe duration %v", name, d)
		}
		st := s.states[i]
		st.mu.Lock()
		id := st.lastRide
		st.mu.Unlock()
		if got := rideState(t, apis[i].BaseURL, id); got != "cancelled" {
			t.Errorf("%s: synthetic ride %s is %s, want cancelled", name, id, got)
		}
	}
	promtoolCheck(t, out)

	if err := c.Regions["sh-a"].Faults.Update(func(s *faults.State) { s.Down = true }); err != nil {
		t.Fatal(err)
	}
	ticker.ch <- time.Now()
	round()
	out = scrape(t, reg)
	want(t, out, success("sh-a"), 0)
	want(t, out, failures("sh-a", "create"), 1)
	want(t, out, success("sh-b"), 1)
	want(t, out, success("bj-a"), 1)

	c.Regions["sh-a"].Faults.Clear()
	ticker.ch <- time.Now()
	round()
	out = scrape(t, reg)
	want(t, out, success("sh-a"), 1)
	want(t, out, runs("sh-a"), 3)
}
