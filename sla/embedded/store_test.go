package embedded

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/source/sourcetest"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := map[string]struct {
		cfg  Config
		want string // "" when valid
	}{
		"A folder alone is a valid config.":                       {Config{Dir: dir}, ""},
		"A config without a folder is refused.":                   {Config{}, "Dir is empty"},
		"A negative retention is refused.":                        {Config{Dir: dir, Retention: -time.Hour}, "Retention -1h0m0s is negative"},
		"A scrape timeout past the interval is refused.":          {Config{Dir: dir, ScrapeInterval: time.Second, ScrapeTimeout: 2 * time.Second}, "ScrapeTimeout 2s is longer than ScrapeInterval 1s"},
		"A retention shorter than the scrape interval is refused": {Config{Dir: dir, Retention: time.Second, ScrapeInterval: 5 * time.Second}, "Retention 1s is shorter"},
		"A target without a job is refused.":                      {Config{Dir: dir, Targets: []Target{{URLs: []string{"http://127.0.0.1:1/metrics"}}}}, "Targets[0] has no Job"},
		"A job named twice is refused.": {Config{Dir: dir, Targets: []Target{{Job: "a"}, {Job: "a"}}},
			`job "a" appears twice`},
		"A target URL without a scheme is refused.": {Config{Dir: dir, Targets: []Target{{Job: "a", URLs: []string{"localhost/metrics"}}}},
			`must be http(s)://host:port[/path]`},
		"A reserved target label is refused.": {Config{Dir: dir, Targets: []Target{{Job: "a", Labels: map[string]string{"__address__": "x"}}}},
			`label name "__address__" is not a plain Prometheus label name`},
		"A rule file that does not exist is refused.": {Config{Dir: dir, RuleFiles: []string{filepath.Join(dir, "none.yml")}},
			"matches no file: generate the rules"},
		"An Alertmanager that is not a URL is refused.": {Config{Dir: dir, Alertmanagers: []string{"alertmanager:9093"}},
			"Alertmanagers: URL"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestConfigFromSpecTakesTheEngineSettings(t *testing.T) {
	t.Parallel()
	sp := loadSpec(t)
	cfg := ConfigFromSpec(sp, "/var/lib/carpoolsla")
	if cfg.ScrapeInterval != 5*time.Second || cfg.EvaluationInterval != 5*time.Second || cfg.Retention != 15*24*time.Hour || cfg.Dir != "/var/lib/carpoolsla" {
		t.Errorf("got %+v, want the shipped spec's 5s and 15d", cfg)
	}
}

func TestABadRuleFileFailsOpenWithItsProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	writeFile(t, rules, "groups:\n  - name: g\n    rules:\n      - record: x:y\n        expr: sum(rate(\n")
	_, err := Open(Config{Dir: filepath.Join(dir, "data"), RuleFiles: []string{rules}})
	if err == nil || !strings.Contains(err.Error(), "loading the rule files") || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("got %v, want the rule file's parse error", err)
	}
}

func TestSamplesSurviveAReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sp := loadSpec(t)
	sc := sourcetest.Carpool(sp, time.Now())
	st, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Append(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	before, err := st.Query(context.Background(), catalog.SLOAttainment.Name, sc.End())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	after, err := st.Query(context.Background(), catalog.SLOAttainment.Name, sc.End())
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 {
		t.Fatal("nothing written")
	}
	if d := sourcetest.Diff(before, after, 0); d != "" {
		t.Errorf("after reopening the folder:\n%s", d)
	}
}

// catalogTarget is a test target exposing catalog metrics through the
// telemetry package: request durations of region sh-a (a batch of
// requests is observed before every scrape, so rates are not zero) and an
// open breaker for sh-a.
func catalogTarget(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	durations := telemetry.NewHistogramVec(catalog.RequestDuration)
	breaker := telemetry.NewGaugeVec(catalog.BreakerState)
	reg.MustRegister(durations, breaker)
	breaker.WithLabelValues("sh-a").Set(catalog.BreakerOpen)
	ok := durations.WithLabelValues("sh-a", "order", "create_ride", "200", catalog.OutcomeOK)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 100 {
			ok.Observe(0.01 + float64(i)*0.004) // 10 ms … 406 ms
		}
		scrapes.Add(1)
		metrics.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &scrapes
}

// value returns the single sample of expr now, or an error.
func value(q source.Querier, expr string) (source.Sample, error) {
	vec, err := q.Query(context.Background(), expr, time.Time{})
	if err != nil {
		return source.Sample{}, err
	}
	if len(vec) != 1 {
		return source.Sample{}, fmt.Errorf("%s: %d samples %v, want 1", expr, len(vec), vec)
	}
	return vec[0], nil
}

func TestScrapesEvaluatesTheGeneratedRulesAndAlertsAlertmanager(t *testing.T) {
	t.Parallel()
	am := realserver.StartAlertmanager(t, []byte("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"), nil)
	target, _ := catalogTarget(t)
	st := runStore(t, Config{
		ScrapeInterval: time.Second,
		RuleFiles:      []string{"../../deploy/generated/prometheus/rules.yml"},
		Alertmanagers:  []string{am.URL},
		ResendDelay:    time.Second,
		ExternalLabels: map[string]string{"store": "embedded"},
		Targets: []Target{{Job: "carpool", URLs: []string{target.URL + "/metrics"},
			Labels: map[string]string{"region": "sh-a"}}},
	})

	t.Run("The target is scraped with its job and labels.", func(t *testing.T) {
		waitFor(t, 15*time.Second, "the first scrape", func() (bool, error) {
			s, err := value(st, `up{job="carpool"}`)
			return err == nil && s.Value == 1, err
		})
		s, err := value(st, `carpool_breaker_state{job="carpool"}`)
		if err != nil {
			t.Fatal(err)
		}
		if s.Value != catalog.BreakerOpen || s.Labels["region"] != "sh-a" || !strings.HasPrefix(target.URL, "http://"+s.Labels["instance"]) {
			t.Errorf("got %v", s)
		}
	})
	t.Run("A recorded series of the generated rules appears with a value.", func(t *testing.T) {
		waitFor(t, 20*time.Second, catalog.RegionLatencyP99.Name, func() (bool, error) {
			s, err := value(st, catalog.RegionLatencyP99.Name+`{region="sh-a"}`)
			// 100 observations spread evenly over 10–406 ms: the P99 lies
			// in the 0.3–0.5 s bucket.
			return err == nil && s.Value > 0.3 && s.Value <= 0.5, err
		})
	})
	t.Run("The open breaker's alert reaches Alertmanager with the external labels.", func(t *testing.T) {
		waitFor(t, 20*time.Second, "RegionBreakerOpen in Alertmanager", func() (bool, error) {
			resp, err := http.Get(am.URL + "/api/v2/alerts")
			if err != nil {
				return false, err
			}
			defer resp.Body.Close()
			var alerts []struct {
				Labels       map[string]string `json:"labels"`
				GeneratorURL string            `json:"generatorURL"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
				return false, err
			}
			for _, a := range alerts {
				if a.Labels["alertname"] == "RegionBreakerOpen" && a.Labels["region"] == "sh-a" && a.Labels["store"] == "embedded" {
					return true, nil
				}
			}
			return false, fmt.Errorf("alerts so far: %v", alerts)
		})
	})
}

func TestApplyTargetsReplacesTheJobsAtRunTime(t *testing.T) {
	t.Parallel()
	first, _ := catalogTarget(t)
	second, secondScrapes := catalogTarget(t)
	st := runStore(t, Config{
		ScrapeInterval: time.Second,
		Targets:        []Target{{Job: "first", URLs: []string{first.URL + "/metrics"}}},
	})
	waitFor(t, 15*time.Second, "the first job's scrape", func() (bool, error) {
		s, err := value(st, `up{job="first"}`)
		return err == nil && s.Value == 1, err
	})
	if err := st.ApplyTargets([]Target{{Job: "second", URLs: []string{second.URL + "/metrics?format=text"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the second job's scrape", func() (bool, error) {
		s, err := value(st, `up{job="second"}`)
		return err == nil && s.Value == 1 && secondScrapes.Load() > 0, err
	})
	// The first job is no longer scraped: its last sample ages. (Like
	// Prometheus on a config reload, a removed job gets no staleness
	// markers; its series fade after the lookback.)
	waitFor(t, 15*time.Second, "the first job's scrapes to stop", func() (bool, error) {
		s, err := value(st, `time() - timestamp(up{job="first"})`)
		return err == nil && s.Value > 3, err
	})
	if got := st.Targets(); len(got) != 1 || got[0].Job != "second" {
		t.Errorf("Targets() = %v", got)
	}
	if err := st.ApplyTargets([]Target{{Job: ""}}); err == nil {
		t.Error("a job without a name was applied")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFlagsBuildTheConfigFromTheSpec(t *testing.T) {
	t.Parallel()
	sp := loadSpec(t)
	parse := func(args ...string) (Config, error) {
		var f Flags
		fs := pflag.NewFlagSet("engine", pflag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Config(sp, []Target{{Job: "region", URLs: []string{"http://127.0.0.1:9101/metrics"}}})
	}
	t.Run("Rule files, Alertmanagers and the folder reach the config, intervals come from the spec.", func(t *testing.T) {
		cfg, err := parse("--store-dir=/tmp/x", "--store-rules=../../deploy/generated/prometheus/rules.yml",
			"--store-alertmanager=http://127.0.0.1:9093", "--store-alertmanager=http://127.0.0.1:9094/am")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Dir != "/tmp/x" || len(cfg.RuleFiles) != 1 || len(cfg.Alertmanagers) != 2 || cfg.ScrapeInterval != 5*time.Second ||
			cfg.Retention != 15*24*time.Hour || len(cfg.Targets) != 1 {
			t.Errorf("%+v", cfg)
		}
	})
	t.Run("An empty --store-rules turns rules off.", func(t *testing.T) {
		cfg, err := parse("--store-rules=")
		if err != nil || len(cfg.RuleFiles) != 0 {
			t.Errorf("%v %v", cfg.RuleFiles, err)
		}
	})
	t.Run("The default rules path is relative to the repository root.", func(t *testing.T) {
		if _, err := parse(); err == nil || !strings.Contains(err.Error(), DefaultRulesFile) {
			t.Errorf("from the package folder the default rules file should not be found: %v", err)
		}
	})
}
