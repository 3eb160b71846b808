package verify

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

func parseFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	var f Flags
	fs := pflag.NewFlagSet("verify", pflag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &f
}

func TestFlagsValidation(t *testing.T) {
	base := []string{"--source-dsn", "mysql://root@127.0.0.1:1/db", "--target-dsn", "mysql://root@127.0.0.1:2/db", "--table", "rides"}
	tests := map[string]struct {
		args []string
		want string
	}{
		"Two DSNs and a table are enough.":                   {nil, ""},
		"A missing target DSN is an error.":                  {[]string{"--target-dsn", ""}, "--target-dsn are required"},
		"An unknown scheme is an error naming the flag":      {[]string{"--source-dsn", "oracle://x"}, "--source-dsn"},
		"Two engines are an error.":                          {[]string{"--target-dsn", "postgres://u@127.0.0.1/db"}, "same engine"},
		"No table is an error.":                              {[]string{"NOTABLE"}, "--table"},
		"A table named twice is an error.":                   {[]string{"--table", "rides,rides"}, "twice"},
		"A badly qualified table is an error.":               {[]string{"--table", "a.b.c"}, "schema.name"},
		"The same region twice is an error.":                 {[]string{"--source-region", "x", "--target-region", "x"}, "must differ"},
		"A chunk of one row is an error.":                    {[]string{"--chunk-size", "1"}, "--chunk-size"},
		"Leaf rows above the chunk size are an error.":       {[]string{"--chunk-size", "10", "--leaf-rows", "20"}, "--leaf-rows"},
		"Zero workers is an error.":                          {[]string{"--workers", "0"}, "--workers"},
		"A negative recheck delay is an error.":              {[]string{"--recheck-after", "-1s"}, "--recheck-after"},
		"Zero max suspects is an error.":                     {[]string{"--max-suspects", "0"}, "--max-suspects"},
		"Zero rechecks is an error.":                         {[]string{"--rechecks", "0"}, "--rechecks"},
		"A zero interval is an error.":                       {[]string{"--interval", "0s"}, "--interval"},
		"A checkpoint file in a missing folder is an error.": {[]string{"--checkpoint-file", "/nonexistent/dir/cp.json"}, "--checkpoint-file"},
		"Several tables, a key and columns are fine.":        {[]string{"--table", "a,b", "--key", "id", "--columns", "id,x"}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := append(append([]string{}, base...), tc.args...)
			if len(tc.args) == 1 && tc.args[0] == "NOTABLE" {
				args = base[:4]
			}
			f := parseFlags(t, args...)
			e, err := f.Build(nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				e.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestABuiltExporterRecoversWhenItsDatabaseComesUp(t *testing.T) {
	t.Parallel()
	m := realserver.StartMariaDB(t, realserver.MariaDBOptions{})
	m.Query(t, "CREATE DATABASE carpool; CREATE TABLE carpool.t (id INT PRIMARY KEY, v TEXT); INSERT INTO carpool.t VALUES (1, 'a'), (2, 'b')")
	// The target is the same server behind a proxy that drops every
	// connection until it is switched up: an unreachable database.
	px := startProxy(t, m.Addr)
	f := parseFlags(t, "--source-dsn", "mysql://root@"+m.Addr+"/carpool", "--target-dsn", "mysql://root@"+px.addr()+"/carpool",
		"--table", "t", "--checkpoint-file", filepath.Join(t.TempDir(), "cp.json"), "--recheck-after", "0s", "--interval", "50ms")
	e, err := f.Build(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.Collectors...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	realserver.WaitFor(t, 10*time.Second, "a failed run", func() (bool, error) {
		r := e.Verifier.LastReport()
		return r != nil && r.Err() != nil, nil
	})
	if got := gather(t, reg, "carpool_exporter_up"); got != 0 {
		t.Errorf("up %v with the target unreachable", got)
	}
	px.up.Store(true)
	realserver.WaitFor(t, 10*time.Second, "a successful run after the target came up", func() (bool, error) {
		r := e.Verifier.LastReport()
		return r != nil && r.Err() == nil, nil
	})
	if got := gather(t, reg, "carpool_exporter_up"); got != 1 {
		t.Errorf("up %v after recovery", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}

// proxy forwards TCP connections to a server while up is set, and drops
// them at once while it is not.
type proxy struct {
	ln     net.Listener
	target string
	up     atomic.Bool
	bytes  atomic.Int64 // forwarded, both ways
}

// counter counts the bytes written through it into n.
type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.up.Load() {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(counter{s, &p.bytes}, c); s.Close() }()
			go func() { _, _ = io.Copy(counter{c, &p.bytes}, s); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// TestMetricsPassPromtool scrapes a verifier that has found every kind of
// mismatch and failed once, and checks the exposition with promtool.
func TestMetricsPassPromtool(t *testing.T) {
	promtool := realserver.Binary(t, "promtool")
	src, tgt := newStores(t)
	fill(t, 300, src, tgt)
	injectStore(t, tgt)
	target := &flaky{Backend: NewStore(tgt, tgt)}
	v := storeVerifier(t, src, tgt, func(c *Config) { c.Target = target })
	ctx := context.Background()
	if _, err := v.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	target.setDown(true)
	if _, err := v.Verify(ctx); err == nil {
		t.Fatal("a run with the target down succeeded")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(v, time.Second, nil))
	rec := httptest.NewRecorder()
	exporters.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.Bytes()
	for _, want := range []string{
		`carpool_verify_rows_mismatched_total{kind="extra",source_region="sh-a",table="rides",target_region="sh-b"} 3`,
		`carpool_verify_rows_mismatched_total{kind="differ",source_region="sh-a",table="rides",target_region="sh-b"} 3`,
		`carpool_verify_mismatches_open{kind="missing",source_region="sh-a",table="rides",target_region="sh-b"} 1`,
		`carpool_verify_runs_total{outcome="error",source_region="sh-a",target_region="sh-b"} 1`,
		`carpool_verify_last_success_timestamp_seconds{source_region="sh-a",target_region="sh-b"}`,
		`carpool_exporter_up{exporter="verify"} 0`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, out, body)
	}
}
