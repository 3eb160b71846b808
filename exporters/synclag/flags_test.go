package synclag

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// parseFlags registers Flags on a fresh flag set and parses args.
func parseFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	f := &Flags{}
	fs := pflag.NewFlagSet("synclag", pflag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %v: %v", args, err)
	}
	return f
}

func TestFlagsAreCheckedWithClearErrors(t *testing.T) {
	const dsn = "root@tcp(127.0.0.1:1)/ops"
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"No backend should fail.":                                      {nil, "--backend is required"},
		"An unknown backend should fail.":                              {[]string{"--backend=oracle"}, `--backend "oracle" is unknown`},
		"An unknown role should fail.":                                 {[]string{"--backend=mysql", "--role=observer"}, `--role "observer" is unknown`},
		"A writer without a region should fail.":                       {[]string{"--backend=mysql", "--role=writer", "--source-dsn=" + dsn}, "--region is required"},
		"A writer without a source should fail.":                       {[]string{"--backend=mysql", "--role=writer", "--region=a"}, "--source-dsn is required"},
		"A reader without a target region should fail.":                {[]string{"--backend=mysql", "--role=reader", "--target-dsn=" + dsn}, "--target-region is required"},
		"A reader without a target should fail.":                       {[]string{"--backend=redis", "--role=reader", "--target-region=b"}, "--target-addr is required"},
		"The same source and target region should fail.":               {[]string{"--backend=mysql", "--region=a", "--target-region=a", "--source-dsn=" + dsn, "--target-dsn=" + dsn}, "must differ"},
		"Redis with DSN flags should fail.":                            {[]string{"--backend=redis", "--region=a", "--source-dsn=x"}, "takes --source-addr"},
		"MySQL with address flags should fail.":                        {[]string{"--backend=mysql", "--region=a", "--source-addr=127.0.0.1:1"}, "takes --source-dsn"},
		"Create-table on Redis should fail.":                           {[]string{"--backend=redis", "--role=writer", "--region=a", "--source-addr=127.0.0.1:1", "--create-table"}, "mysql and postgres only"},
		"Create-table for a reader should fail.":                       {[]string{"--backend=mysql", "--role=reader", "--target-region=b", "--target-dsn=" + dsn, "--create-table"}, "needs --role writer or both"},
		"A reader's source DSN without the source region should fail.": {[]string{"--backend=mysql", "--role=reader", "--target-region=b", "--target-dsn=" + dsn, "--source-dsn=" + dsn}, "needs --region"},
		"Target flags for a writer should fail.":                       {[]string{"--backend=mysql", "--role=writer", "--region=a", "--source-dsn=" + dsn, "--target-region=b"}, "need --role reader or both"},
		"A zero interval should fail.":                                 {[]string{"--backend=mysql", "--role=writer", "--region=a", "--source-dsn=" + dsn, "--interval=0s"}, "--interval"},
		"A bad MySQL DSN should fail.":                                 {[]string{"--backend=mysql", "--role=writer", "--region=a", "--source-dsn=nonsense"}, "does not parse"},
		"A bad PostgreSQL DSN should fail.":                            {[]string{"--backend=postgres", "--role=writer", "--region=a", "--source-dsn=postgres://a:b@host:notaport/db"}, "does not parse"},
		"A bad table should fail.":                                     {[]string{"--backend=postgres", "--role=writer", "--region=a", "--source-dsn=postgres://127.0.0.1/db", "--table=a.b.c"}, "letters, digits and _"},
		"An expected source equal to the target should fail.":          {[]string{"--backend=redis", "--role=reader", "--target-region=b", "--target-addr=127.0.0.1:1", "--sources=b"}, "must be another"},
		"MySQL writer and reader should build.":                        {[]string{"--backend=mysql", "--region=a", "--target-region=b", "--source-dsn=" + dsn, "--target-dsn=" + dsn, "--create-table"}, ""},
		"A PostgreSQL reader should build.":                            {[]string{"--backend=postgres", "--role=reader", "--target-region=b", "--target-dsn=postgres://u:p@127.0.0.1:1/ops"}, ""},
		"A Redis writer should build.":                                 {[]string{"--backend=redis", "--role=writer", "--region=a", "--source-addr=127.0.0.1:1"}, ""},
	} {
		f := parseFlags(t, tc.args...)
		e, err := f.Build(nil)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s\n got %v, want an error containing %q", name, err, tc.want)
		}
		if e != nil {
			_ = e.Close()
		}
	}
}

// served registers a built exporter's collectors and serves its sets.
func servedExporter(t *testing.T, e *Exporter) func() scrape {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.Collectors...)
	h := exporters.Handler(reg, e.Sets...)
	return func() scrape {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(w.Body)
		promtoolCheck(t, string(b))
		return parse(t, string(b))
	}
}

func TestTheStandaloneExporterWritesAndReadsThroughRedis(t *testing.T) {
	srv := realserver.StartRedis(t)
	e, err := parseFlags(t, "--backend=redis", "--region=a", "--target-region=b", "--source-addr="+srv.Addr,
		"--target-addr="+srv.Addr, "--interval=50ms").Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	scrapeNow := servedExporter(t, e)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	realserver.WaitFor(t, 10*time.Second, "a small lag a→b and a's written stamp", func() (bool, error) {
		sc := scrapeNow()
		lag, ok := sc.lag("a", "b")
		_, written := sc.get("carpool_sync_heartbeat_written_timestamp_seconds", "region", "a")
		return ok && written && lag < 0.5 && sc.up() == 1, fmt.Errorf("lag %v (%v), written %v, up %v", lag, ok, written, sc.up())
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
}

func TestAStandaloneReaderReadsTheWrittenStampFromTheSource(t *testing.T) {
	srv := realserver.StartRedis(t)
	src, err := OpenRedis(RedisConfig{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	stamp := time.Now().Add(-time.Second).Truncate(time.Microsecond)
	if err := src.Write(ctx, "a", stamp); err != nil {
		t.Fatal(err)
	}
	if err := src.Write(ctx, "elsewhere", stamp); err != nil {
		t.Fatal(err)
	}
	e, err := parseFlags(t, "--backend=redis", "--role=reader", "--region=a", "--target-region=b",
		"--source-addr="+srv.Addr, "--target-addr="+srv.Addr).Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	sc := servedExporter(t, e)()
	if got, _ := sc.get("carpool_sync_heartbeat_written_timestamp_seconds", "region", "a"); !near(got, float64(stamp.UnixMicro())/1e6, 1e-6) {
		t.Fatalf("written{a} = %v, want %v", got, stamp)
	}
	if sc.count("carpool_sync_heartbeat_written_timestamp_seconds") != 1 {
		t.Fatal("the source's rows of other regions are exposed as written")
	}
	if lag, ok := sc.lag("a", "b"); !ok || lag < 1 || lag > 3 {
		t.Fatalf("lag = %v (%v), want about 1 s", lag, ok)
	}
}

func TestABuiltExporterPointedAtNothingServesUpZero(t *testing.T) {
	port := realserver.FreePort(t)
	e, err := parseFlags(t, "--backend=mysql", "--region=a", "--target-region=b",
		fmt.Sprintf("--source-dsn=root@tcp(127.0.0.1:%d)/ops?timeout=200ms", port),
		fmt.Sprintf("--target-dsn=root@tcp(127.0.0.1:%d)/ops?timeout=200ms", port)).Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	_ = e.Writer.Beat(ctx)
	sc := servedExporter(t, e)()
	if sc.up() != 0 {
		t.Fatalf("up = %v", sc.up())
	}
	if n, _ := sc.get("carpool_sync_heartbeat_write_errors_total", "region", "a"); n != 1 {
		t.Fatalf("write errors = %v", n)
	}
}

func TestANilExporterRunsAndClosesAsANoOp(t *testing.T) {
	var e *Exporter
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}
