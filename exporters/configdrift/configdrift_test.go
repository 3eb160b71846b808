package configdrift

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// configServer serves one region's configuration on 127.0.0.1; set changes
// it, fail makes it answer 503.
type configServer struct {
	*httptest.Server
	mu   sync.Mutex
	body string
	fail bool
}

func newConfigServer(t *testing.T, body string) *configServer {
	t.Helper()
	s := &configServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			http.Error(w, "config store unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *configServer) set(body string) { s.mu.Lock(); s.body = body; s.mu.Unlock() }
func (s *configServer) setFail(f bool)  { s.mu.Lock(); s.fail = f; s.mu.Unlock() }

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	w := httptest.NewRecorder()
	exporters.Handler(reg).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

func value(out, series string) (float64, bool) {
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func want(t *testing.T, out, series string, v float64) {
	t.Helper()
	if got, ok := value(out, series); !ok || got != v {
		t.Fatalf("%s = %v (present %v), want %v\n%s", series, got, ok, v, out)
	}
}

func absent(t *testing.T, out, series string) {
	t.Helper()
	if _, ok := value(out, series); ok {
		t.Fatalf("%s is present, want it absent\n%s", series, out)
	}
}

func promtoolCheck(t *testing.T, out string) {
	t.Helper()
	cmd := exec.Command(realserver.Binary(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(out)
	if b, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(b)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, b, out)
	}
}

func newRegistry(t *testing.T, set Set) (*prometheus.Registry, *exporters.Collector) {
	t.Helper()
	s, err := New(Config{Sets: []Set{set}})
	if err != nil {
		t.Fatal(err)
	}
	c := exporters.NewCollector(s, 5*time.Second, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return reg, c
}

const (
	cfgJSON = `{"service":"order","limits":{"qps":100},"generatedAt":"2026-11-25T10:00:00Z"}`
	cfgYAML = "# the same, as YAML\nlimits:\n  qps: 100.0\nservice: order\ngeneratedAt: 2026-11-25T11:30:00Z\n"
	cfgOdd  = `{"service":"order","limits":{"qps":250},"generatedAt":"2026-11-25T10:00:00Z"}`
)

func consistent(src string) string { return `carpool_config_consistent{source="` + src + `"}` }
func drifted(src, region string) string {
	return `carpool_config_drifted{region="` + region + `",source="` + src + `"}`
}
func fetchOK(src, region string) string {
	return `carpool_config_fetch_success{region="` + region + `",source="` + src + `"}`
}
func fetchErrors(src, region string) string {
	return `carpool_config_fetch_errors_total{region="` + region + `",source="` + src + `"}`
}

const up = `carpool_exporter_up{exporter="configdrift"}`

// TestConfigDriftOverHTTP compares three regions' configuration endpoints
// on 127.0.0.1.
func TestConfigDriftOverHTTP(t *testing.T) {
	a, b, c := newConfigServer(t, cfgJSON), newConfigServer(t, cfgYAML), newConfigServer(t, cfgJSON)
	set := Set{Source: "services", Ignore: mustPaths(t, "generatedAt")}
	for name, s := range map[string]*configServer{"sh-a": a, "sh-b": b, "bj-a": c} {
		f, err := ParseSource(s.URL+"/config", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		set.Regions = append(set.Regions, Region{Name: name, Fetcher: f})
	}
	reg, _ := newRegistry(t, set)

	out := scrape(t, reg)
	t.Run("Equal configurations in different formats and orders are consistent.", func(t *testing.T) {
		want(t, out, up, 1)
		want(t, out, consistent("services"), 1)
		for _, r := range []string{"sh-a", "sh-b", "bj-a"} {
			want(t, out, drifted("services", r), 0)
			want(t, out, fetchOK("services", r), 1)
		}
		if n := strings.Count(out, "carpool_config_hash_info{"); n != 3 {
			t.Fatalf("%d hash series, want 3\n%s", n, out)
		}
		promtoolCheck(t, out)
	})

	t.Run("A changed value flips consistent to 0 and names the region.", func(t *testing.T) {
		b.set(cfgOdd)
		out := scrape(t, reg)
		want(t, out, consistent("services"), 0)
		want(t, out, drifted("services", "sh-b"), 1)
		want(t, out, drifted("services", "sh-a"), 0)
		want(t, out, drifted("services", "bj-a"), 0)
		norm, _ := Normalize([]byte(cfgOdd), set.Ignore)
		want(t, out, `carpool_config_hash_info{hash="`+Hash(norm)[:16]+`",region="sh-b",source="services"}`, 1)
		b.set(cfgYAML)
		want(t, scrape(t, reg), consistent("services"), 1)
	})

	t.Run("An unreachable region is a fetch error, not drift, and consistency is not claimed.", func(t *testing.T) {
		c.setFail(true)
		out := scrape(t, reg)
		want(t, out, up, 0)
		want(t, out, fetchOK("services", "bj-a"), 0)
		want(t, out, fetchErrors("services", "bj-a"), 1)
		absent(t, out, drifted("services", "bj-a"))
		absent(t, out, consistent("services")) // the two fetched agree: unknown
		want(t, out, drifted("services", "sh-a"), 0)

		b.set(cfgOdd) // the fetched ones differ: inconsistent whatever bj-a holds
		out = scrape(t, reg)
		want(t, out, consistent("services"), 0)
		want(t, out, fetchErrors("services", "bj-a"), 2)
		// A tie (one against one): no majority, both count as drifted.
		want(t, out, drifted("services", "sh-a"), 1)
		want(t, out, drifted("services", "sh-b"), 1)
		promtoolCheck(t, out)

		b.set(cfgYAML)
		c.setFail(false)
		out = scrape(t, reg)
		want(t, out, up, 1)
		want(t, out, consistent("services"), 1)
		want(t, out, fetchErrors("services", "bj-a"), 2)
	})

	t.Run("A server that is gone is reported the same way and recovers.", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURL := dead.URL
		dead.Close()
		f, _ := ParseSource(deadURL, nil, 0)
		gone := Set{Source: "services", Ignore: set.Ignore, Regions: []Region{set.Regions[0], {Name: "gone", Fetcher: f}}}
		reg, col := newRegistry(t, gone)
		out := scrape(t, reg)
		want(t, out, up, 0)
		want(t, out, fetchOK("services", "gone"), 0)
		if err := col.LastError(); err == nil || !strings.Contains(err.Error(), "region gone") {
			t.Fatalf("error %v does not name the region", err)
		}
	})
}

func TestConfigDriftRules(t *testing.T) {
	fixed := func(body string) Fetcher {
		return FetcherFunc(func(context.Context) ([]byte, error) { return []byte(body), nil })
	}
	t.Run("The majority decides who drifted.", func(t *testing.T) {
		reg, _ := newRegistry(t, Set{Source: "s", Regions: []Region{
			{"a", fixed(cfgJSON)}, {"b", fixed(cfgJSON)}, {"c", fixed(cfgOdd)}, {"d", fixed(cfgJSON)},
		}})
		out := scrape(t, reg)
		want(t, out, consistent("s"), 0)
		want(t, out, drifted("s", "c"), 1)
		want(t, out, drifted("s", "a"), 0)
	})
	t.Run("A reference region decides, even against the majority.", func(t *testing.T) {
		reg, _ := newRegistry(t, Set{Source: "s", Reference: "c", Regions: []Region{
			{"a", fixed(cfgJSON)}, {"b", fixed(cfgJSON)}, {"c", fixed(cfgOdd)},
		}})
		out := scrape(t, reg)
		want(t, out, drifted("s", "c"), 0)
		want(t, out, drifted("s", "a"), 1)
		want(t, out, drifted("s", "b"), 1)
	})
	t.Run("A configuration that does not parse is a fetch error.", func(t *testing.T) {
		reg, _ := newRegistry(t, Set{Source: "s", Regions: []Region{{"a", fixed(cfgJSON)}, {"b", fixed("{not: [valid")}}})
		out := scrape(t, reg)
		want(t, out, up, 0)
		want(t, out, fetchOK("s", "b"), 0)
	})
	t.Run("Files are read on every scrape.", func(t *testing.T) {
		dir := t.TempDir()
		pa, pb := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.json")
		_ = os.WriteFile(pa, []byte(cfgYAML), 0o644)
		_ = os.WriteFile(pb, []byte(cfgJSON), 0o644)
		fa, _ := ParseSource(pa, nil, 0)
		fb, _ := ParseSource("file://"+pb, nil, 0)
		reg, _ := newRegistry(t, Set{Source: "f", Ignore: mustPaths(t, "generatedAt"), Regions: []Region{{"a", fa}, {"b", fb}}})
		want(t, scrape(t, reg), consistent("f"), 1)
		_ = os.WriteFile(pb, []byte(cfgOdd), 0o644)
		want(t, scrape(t, reg), consistent("f"), 0)
		_ = os.Remove(pa)
		out := scrape(t, reg)
		want(t, out, fetchOK("f", "a"), 0)
	})
	t.Run("A configuration over the size limit is refused.", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "big.json")
		_ = os.WriteFile(p, []byte(`{"pad":"`+strings.Repeat("x", 100)+`"}`), 0o644)
		f, _ := ParseSource(p, nil, 50)
		if _, err := f.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "larger than 50 bytes") {
			t.Fatalf("fetch: %v", err)
		}
	})
	t.Run("Bad configurations are refused with the field named.", func(t *testing.T) {
		for _, tc := range []struct {
			cfg  Config
			want string
		}{
			{Config{}, "no configuration set"},
			{Config{Sets: []Set{{Source: "s", Regions: []Region{{"a", fixed("")}}}}}, "at least two"},
			{Config{Sets: []Set{{Source: "s", Regions: []Region{{"a", fixed("")}, {"a", fixed("")}}}}}, "twice"},
			{Config{Sets: []Set{{Source: "s", Reference: "z", Regions: []Region{{"a", fixed("")}, {"b", fixed("")}}}}}, `reference region "z"`},
			{Config{Sets: []Set{{Source: "s", Regions: []Region{{"a", fixed("")}, {"b", nil}}}}}, "no fetcher"},
		} {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
			}
		}
	})
}

func TestFlags(t *testing.T) {
	parse := func(args ...string) (*Exporter, error) {
		var f Flags
		fs := pflag.NewFlagSet("configdrift", pflag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Build(nil)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"A region-config without = is named.":    {[]string{"--region-config", "sh-a", "--region-config", "b=/x"}, `--region-config "sh-a": want region=source`},
		"An unknown scheme is named.":            {[]string{"--region-config", "a=ftp://x/c", "--region-config", "b=/x"}, `scheme "ftp"`},
		"An empty ignore path segment is named.": {[]string{"--region-config", "a=/x", "--region-config", "b=/y", "--ignore", "meta..x"}, `--ignore "meta..x"`},
		"One region is not enough.":              {[]string{"--region-config", "a=/x"}, "at least two"},
		"A reference that is no region is named": {[]string{"--region-config", "a=/x", "--region-config", "b=/y", "--reference", "c"}, `reference region "c"`},
		"A zero size limit is named.":            {[]string{"--region-config", "a=/x", "--region-config", "b=/y", "--max-bytes", "0"}, "--max-bytes is 0"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build(%v) = %v, want %q", tc.args, err, tc.want)
			}
		})
	}
	t.Run("Good flags build an exporter that scrapes.", func(t *testing.T) {
		a, b := newConfigServer(t, cfgJSON), newConfigServer(t, cfgYAML)
		e, err := parse("--source", "services", "--region-config", "sh-a="+a.URL, "--region-config", "sh-b="+b.URL, "--ignore", "generatedAt")
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(e.Collectors...)
		out := scrape(t, reg)
		want(t, out, consistent("services"), 1)
		promtoolCheck(t, out)
		if err := e.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
