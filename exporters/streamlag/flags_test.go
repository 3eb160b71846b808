package streamlag

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

func parseFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	var f Flags
	fs := pflag.NewFlagSet("streamlag", pflag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &f
}

func TestFlagsBadInput(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"A missing region is named.":                  {[]string{"--redis-addr", "127.0.0.1:6379", "--streams", "s"}, "--region is required"},
		"No backend at all is named.":                 {[]string{"--region", "a"}, "give --redis-addr"},
		"Redis without streams says what to give.":    {[]string{"--region", "a", "--redis-addr", "127.0.0.1:6379"}, "--redis-addr needs --streams"},
		"Streams without Redis are refused.":          {[]string{"--region", "a", "--nats-url", "nats://127.0.0.1:4222", "--streams", "s"}, "--streams needs --redis-addr"},
		"A Redis address without a port is refused.":  {[]string{"--region", "a", "--redis-addr", "localhost", "--streams", "s"}, "want host:port"},
		"A bad Redis URL is refused.":                 {[]string{"--region", "a", "--redis-addr", "http://x", "--streams", "s"}, "--redis-addr"},
		"A NATS URL without a scheme is refused.":     {[]string{"--region", "a", "--nats-url", "127.0.0.1:4222"}, "want nats://host:port"},
		"An unknown NATS position is refused.":        {[]string{"--region", "a", "--nats-url", "nats://127.0.0.1:1", "--nats-position", "acked"}, `position "acked"`},
		"A table too small to interpolate is named.":  {[]string{"--region", "a", "--nats-url", "nats://127.0.0.1:1", "--nats-table-size", "1"}, "--nats-table-size is 1"},
		"A zero count limit is named.":                {[]string{"--region", "a", "--redis-addr", "127.0.0.1:1", "--streams", "s", "--redis-count-limit", "0"}, "--redis-count-limit is 0"},
		"A non-positive scrape timeout is named.":     {[]string{"--region", "a", "--redis-addr", "127.0.0.1:1", "--streams", "s", "--scrape-timeout", "0s"}, "--scrape-timeout"},
		"NATS streams without a NATS URL are refused": {[]string{"--region", "a", "--redis-addr", "127.0.0.1:1", "--streams", "s", "--nats-streams", "X"}, "--nats-streams needs --nats-url"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e, err := parseFlags(t, tc.args...).Build(nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build(%v) = %v, %v; want an error with %q", tc.args, e, err, tc.want)
			}
		})
	}
}

// TestFlagsBuildAStandaloneExporter builds the standalone exporter on a
// real Redis and a real NATS that is down when the exporter starts.
func TestFlagsBuildAStandaloneExporter(t *testing.T) {
	rs := realserver.StartRedis(t)
	ns := realserver.StartNATS(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	createGroup(t, rdb, "positions:sh-a", "dispatch", "0")
	addEntries(t, rdb, "positions:sh-a", 0, 4)
	newNATSFixture(t, ns.URL).consumer(t, "dispatch")

	p := startProxy(t, ns.Addr)
	p.down() // NATS is unreachable when the exporter starts
	e, err := parseFlags(t, "--region", "sh-a", "--redis-addr", "redis://"+rs.Addr+"/0", "--streams", "positions:*",
		"--nats-url", "nats://"+p.addr, "--scrape-timeout", "2s").Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.Collectors...)
	out := scrape(t, reg)
	wantUp(t, out, 0)
	ms, _ := lagSeries("sh-a", "positions:sh-a", "dispatch")
	if v, ok := value(out, ms); !ok || v != 4 {
		t.Fatalf("Redis lag %v %v while NATS is down, want 4\n%s", v, ok, out)
	}
	p.up()
	realserver.WaitFor(t, 10*time.Second, "NATS reachable", func() (bool, error) {
		v, _ := value(scrape(t, reg), `carpool_exporter_up{exporter="streamlag"}`)
		return v == 1, nil
	})
	out = scrape(t, reg)
	wantLag(t, out, "sh-a", "POSITIONS", "dispatch", 0, 0)
	promtoolCheck(t, out)
	if e.Sets != nil {
		t.Fatalf("sets %v, want none", e.Sets)
	}
	var nilExporter *Exporter
	if err := nilExporter.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
