package region

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/location"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

const token = "test-admin-token"

// center of each region's drivers and riders.
var centers = map[string][2]float64{"sh-a": {31.2304, 121.4737}, "sh-b": {31.2204, 121.4637}, "bj-a": {39.9042, 116.4074}}

func startCluster(t *testing.T) *Cluster {
	t.Helper()
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCluster(ClusterConfig{Spec: s, AdminToken: token, LogSink: telemetry.NewWriterSink(io.Discard), LogLevel: "warn"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("cluster stopped with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the cluster did not stop within 15s")
		}
	})
	for _, name := range c.Names() {
		entry := c.Regions[name].URLs()[Entry]
		realserver.WaitFor(t, 15*time.Second, "region "+name+" healthy", func() (bool, error) {
			resp, err := http.Get(entry + "/healthz")
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return resp.StatusCode == 200, fmt.Errorf("status %d", resp.StatusCode)
		})
	}
	return c
}

// seedDrivers streams n drivers' positions into a region over WebSocket,
// through its entry, and waits until its dispatch index holds them.
func seedDrivers(t *testing.T, c *Cluster, region string, n int) {
	t.Helper()
	seedDriversNear(t, c, region, region, n)
}

// seedDriversNear streams n drivers into region's location service around
// near's centre (a region's drivers may be anywhere its riders are).
func seedDriversNear(t *testing.T, c *Cluster, region, near string, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ws := "ws" + strings.TrimPrefix(c.Regions[region].URLs()[Entry], "http") + location.Route
	ctr := centers[near]
	before := c.Regions[region].Location.Index().Len()
	// One connection per driver, as the drivers' apps would hold.
	for i := range n {
		id := fmt.Sprintf("%s-driver-%d", region, i)
		if near != region {
			id = fmt.Sprintf("%s-driver-near-%s-%d", region, near, i)
		}
		cl, err := location.DialStream(ctx, ws+"?driver_id="+id)
		if err != nil {
			t.Fatalf("dialing %s: %v", ws, err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		if err := cl.Send(location.Position{DriverID: id, Lat: ctr[0] + float64(i)*0.001, Lng: ctr[1], TS: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	realserver.WaitFor(t, 10*time.Second, "drivers in "+region+"'s index", func() (bool, error) {
		return c.Regions[region].Location.Index().Len() >= before+n, nil
	})
}

type ride struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Region   string `json:"region"`
	DriverID string `json:"driver_id"`
}

func createRide(t *testing.T, gatewayURL, region, rider, key string) (ride, string) {
	t.Helper()
	ctr := centers[region]
	body := fmt.Sprintf(`{"rider_id":%q,"pickup":{"lat":%f,"lng":%f},"dropoff":{"lat":%f,"lng":%f}}`, rider, ctr[0], ctr[1], ctr[0]+0.05, ctr[1]+0.05)
	req, _ := http.NewRequest("POST", gatewayURL+"/v1/rides", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Rider-ID", rider)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("creating a ride: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("creating a ride: %d %s", resp.StatusCode, b)
	}
	var r ride
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return r, resp.Header.Get("X-Carpool-Region")
}

func getRide(url, id string) (ride, int, error) {
	resp, err := http.Get(url + "/v1/rides/" + id)
	if err != nil {
		return ride{}, 0, err
	}
	defer resp.Body.Close()
	var r ride
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return r, resp.StatusCode, nil
}

// TestClusterRideReplicatesAndSurvivesARegionDown drives three regions
// in one process, each a set of real servers on loopback: a ride created
// through a gateway is matched, replicated to every region, completed and
// paid; an idempotent retry returns the same ride; with one region down the
// other gateways route around it and no ride fails.
func TestClusterRideReplicatesAndSurvivesARegionDown(t *testing.T) {
	c := startCluster(t)
	// The gateway sends a keyed request to the region its key hashes to,
	// whichever city that is: every region has drivers near the ride's
	// pickup in Shanghai.
	for _, name := range c.Names() {
		seedDrivers(t, c, name, 20)
		if centers[name] != centers["sh-a"] {
			seedDriversNear(t, c, name, "sh-a", 20)
		}
	}
	gwA := c.Regions["sh-a"].URLs()[Gateway]
	r, servedBy := createRide(t, gwA, "sh-a", "rider-1", "key-1")
	if r.ID == "" || servedBy == "" {
		t.Fatalf("ride %+v served by %q", r, servedBy)
	}
	again, _ := createRide(t, gwA, "sh-a", "rider-1", "key-1")
	if again.ID != r.ID {
		t.Fatalf("the idempotent retry created ride %s, want %s", again.ID, r.ID)
	}
	for _, name := range c.Names() {
		entry := c.Regions[name].URLs()[Entry]
		realserver.WaitFor(t, 10*time.Second, "ride "+r.ID+" replicated to "+name, func() (bool, error) {
			got, code, err := getRide(entry, r.ID)
			return err == nil && code == 200 && got.ID == r.ID, err
		})
	}
	origin := c.Regions[servedBy].URLs()[Entry]
	realserver.WaitFor(t, 10*time.Second, "ride matched", func() (bool, error) {
		got, _, err := getRide(origin, r.ID)
		return got.State == "matched", err
	})
	resp, err := http.Post(origin+"/v1/rides/"+r.ID+"/complete", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("complete: %d", resp.StatusCode)
	}
	realserver.WaitFor(t, 10*time.Second, "ride paid", func() (bool, error) {
		got, _, err := getRide(origin, r.ID)
		return got.State == "paid", fmt.Errorf("state %q (%v)", got.State, err)
	})

	// sh-a goes down: sh-b's gateway must stop sending there and lose no ride.
	if err := c.Regions["sh-a"].Faults.Update(func(s *faults.State) { s.Down = true }); err != nil {
		t.Fatal(err)
	}
	gwB := c.Regions["sh-b"]
	realserver.WaitFor(t, 10*time.Second, "sh-b's gateway sees sh-a unhealthy", func() (bool, error) {
		return !gwB.Gateway.Status().Regions["sh-a"].ProbeHealthy, nil
	})
	served := map[string]int{}
	for i := range 20 {
		got, by := createRide(t, gwB.URLs()[Gateway], "sh-b", fmt.Sprintf("rider-b-%d", i), fmt.Sprintf("key-b-%d", i))
		if got.ID == "" {
			t.Fatalf("ride %d has no id", i)
		}
		served[by]++
	}
	if served["sh-a"] > 0 {
		t.Errorf("a down region served %d rides: %v", served["sh-a"], served)
	}
	c.Regions["sh-a"].Faults.Clear()
	realserver.WaitFor(t, 10*time.Second, "sh-a healthy again", func() (bool, error) {
		return gwB.Gateway.Status().Regions["sh-a"].ProbeHealthy, nil
	})
}

// TestEveryServerExposesValidMetrics runs the real promtool over each
// server's /metrics.
func TestEveryServerExposesValidMetrics(t *testing.T) {
	c := startCluster(t)
	promtool := realserver.Binary(t, "promtool")
	seedDrivers(t, c, "sh-a", 3)
	createRide(t, c.Regions["sh-a"].URLs()[Gateway], "sh-a", "rider-m", "key-m")
	targets := c.Regions["sh-a"].MetricsTargets()
	if len(targets) != len(c.Regions["sh-a"].URLs())-1 {
		t.Errorf("MetricsTargets lists %d servers, want every server but pricing (gRPC): %v", len(targets), targets)
	}
	for name, u := range targets {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("%s /metrics: promtool check metrics: %v\n%s", name, err, out)
		}
		if name == Entry && !bytes.Contains(body, []byte(`service="pricing"`)) {
			t.Errorf("the entry's /metrics lacks the pricing server's request metrics")
		}
	}
}

// TestClusterOnRedis runs the regions with driver positions on a real
// Redis 7's streams and the ride cache's lock and shared tier on Redis.
func TestClusterOnRedis(t *testing.T) {
	rd := realserver.StartRedis(t)
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCluster(ClusterConfig{Spec: s, AdminToken: token, RedisAddr: rd.Addr, LogSink: telemetry.NewWriterSink(io.Discard), LogLevel: "warn"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for _, name := range c.Names() {
		entry := c.Regions[name].URLs()[Entry]
		realserver.WaitFor(t, 15*time.Second, "region "+name+" healthy", func() (bool, error) {
			resp, err := http.Get(entry + "/healthz")
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return resp.StatusCode == 200, nil
		})
	}
	seedDrivers(t, c, "sh-a", 5)
	r, by := createRide(t, c.Regions["sh-a"].URLs()[Entry], "sh-a", "rider-r", "key-r")
	if r.ID == "" || by != "" && by != "sh-a" {
		t.Fatalf("ride %+v served by %q", r, by)
	}
	got, code, err := getRide(c.Regions["sh-a"].URLs()[Entry], r.ID)
	if err != nil || code != 200 || got.ID != r.ID {
		t.Fatalf("reading the ride back: %v %d %+v", err, code, got)
	}
}

// TestEntryExportsSyncLagRPOAndStreamLag checks the exporters wired in
// process: each region's entry reports sync lag and RPO exposure from every
// other region, small while replication flows, and growing while it is
// stalled; and its driver stream's consumer lag.
func TestEntryExportsSyncLagRPOAndStreamLag(t *testing.T) {
	c := startCluster(t)
	scrape := func(region string) string {
		resp, err := http.Get(c.Regions[region].URLs()[Entry] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	value := func(body, series string) (float64, bool) {
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, series+" ") {
				var v float64
				_, err := fmt.Sscan(strings.TrimPrefix(line, series+" "), &v)
				return v, err == nil
			}
		}
		return 0, false
	}
	lagAB := `carpool_sync_lag_seconds{source_region="sh-a",target_region="sh-b"}`
	realserver.WaitFor(t, 15*time.Second, "small sync lag sh-a→sh-b on sh-b's entry", func() (bool, error) {
		body := scrape("sh-b")
		v, ok := value(body, lagAB)
		if !ok {
			return false, fmt.Errorf("no %s", lagAB)
		}
		for _, want := range []string{`carpool_rpo_exposure_seconds{source_region="sh-a",target_region="sh-b"}`, `carpool_stream_lag_messages{`, `carpool_exporter_up{exporter="synclag"} 1`, `carpool_exporter_up{exporter="rpo"} 1`,
			`carpool_config_consistent{source="services"} 1`} {
			if !strings.Contains(body, want) {
				return false, fmt.Errorf("no %s", want)
			}
		}
		return v < 1.5, fmt.Errorf("lag %v", v)
	})
	// Stall replication into sh-b: the lag from sh-a keeps growing.
	if err := c.Regions["sh-b"].Faults.Update(func(s *faults.State) { s.ReplicationStalled = true }); err != nil {
		t.Fatal(err)
	}
	realserver.WaitFor(t, 15*time.Second, "sync lag sh-a→sh-b above 2 s while stalled", func() (bool, error) {
		v, _ := value(scrape("sh-b"), lagAB)
		return v > 2, fmt.Errorf("lag %v", v)
	})
	c.Regions["sh-b"].Faults.Clear()
	realserver.WaitFor(t, 15*time.Second, "sync lag back under 1.5 s", func() (bool, error) {
		v, _ := value(scrape("sh-b"), lagAB)
		return v < 1.5, fmt.Errorf("lag %v", v)
	})
}

// TestARideEndedInAnotherRegionReleasesItsDriverWhereItWasMatched: a ride
// matched in sh-a and cancelled through sh-b must free the driver in
// sh-a's index once the cancellation replicates back, or sh-a runs out of
// drivers under cross-region traffic.
func TestARideEndedInAnotherRegionReleasesItsDriverWhereItWasMatched(t *testing.T) {
	c := startCluster(t)
	seedDrivers(t, c, "sh-a", 1)
	created, _ := createRide(t, c.Regions["sh-a"].URLs()[Entry], "sh-a", "rider-x", "key-x")
	a, b := c.Regions["sh-a"].URLs()[Entry], c.Regions["sh-b"].URLs()[Entry]
	var matched ride
	realserver.WaitFor(t, 10*time.Second, "the ride matched in sh-a", func() (bool, error) {
		r, code, err := getRide(a, created.ID)
		matched = r
		return err == nil && code == 200 && r.DriverID != "", fmt.Errorf("%d %v %+v", code, err, r)
	})
	idx := c.Regions["sh-a"].Location.Index()
	if _, ok := idx.ClaimedBy(matched.DriverID); !ok {
		t.Fatalf("driver %s is not claimed in sh-a after matching", matched.DriverID)
	}
	realserver.WaitFor(t, 10*time.Second, "the ride replicated to sh-b", func() (bool, error) {
		r, code, err := getRide(b, created.ID)
		return err == nil && code == 200 && r.DriverID != "", fmt.Errorf("%d %v", code, err)
	})
	resp, err := http.Post(b+"/v1/rides/"+created.ID+"/cancel", "application/json", strings.NewReader(`{"reason":"test"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("cancelling through sh-b: %d %s", resp.StatusCode, body)
	}
	realserver.WaitFor(t, 10*time.Second, "sh-a to release the driver", func() (bool, error) {
		_, claimed := idx.ClaimedBy(matched.DriverID)
		return !claimed, nil
	})
}

func TestMetricsJobsGroupEveryRegionsServersByKind(t *testing.T) {
	c := startCluster(t)
	jobs := c.MetricsJobs()
	want := len(c.Regions["sh-a"].MetricsTargets())
	if len(jobs) != want {
		t.Fatalf("%d jobs, want one per server kind (%d): %v", len(jobs), want, jobs)
	}
	for job, urls := range jobs {
		if !strings.HasPrefix(job, "carpool-") || len(urls) != len(c.Names()) || !sort.StringsAreSorted(urls) {
			t.Errorf("job %s: %v; want carpool-<server> with one sorted URL per region", job, urls)
		}
	}
}
