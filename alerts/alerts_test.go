package alerts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func shippedSpec(t *testing.T) *spec.Spec {
	t.Helper()
	s, err := spec.Load("../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFiles(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for p, b := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func promtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(realserver.Binary(t, "promtool"), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRulesPassPromtool runs the real promtool 2.42 over the generated rules
// and their generated unit tests.
func TestRulesPassPromtool(t *testing.T) {
	files, err := Files(shippedSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, files)
	if out, err := promtool(t, dir, "check", "rules", RulesFile); err != nil || strings.Contains(out, "lint error") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := promtool(t, filepath.Join(dir, filepath.Dir(RuleTestsFile)), "test", "rules", filepath.Base(RuleTestsFile)); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestRuleTestsCatchABrokenRule proves the generated tests can fail: with the
// sync-lag threshold raised, the SyncLagHigh firing case must fail.
func TestRuleTestsCatchABrokenRule(t *testing.T) {
	s := shippedSpec(t)
	set, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := set.RulesYAML(s)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(rules), `"target_region", "(.*)") > 5`, `"target_region", "(.*)") > 500`, 1)
	if broken == string(rules) {
		t.Fatal("the sync-lag rule's threshold was not found; update the test")
	}
	tf := set.testFileFor("rules.yml")
	var keep []testGroup
	for _, g := range tf.Tests {
		if strings.HasPrefix(g.Name, catalog.AlertSyncLag.Name) {
			keep = append(keep, g)
		}
	}
	tf.Tests = keep
	tests, err := marshal("", tf)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string][]byte{"rules.yml": []byte(broken), "rules_test.yml": tests})
	out, err := promtool(t, dir, "test", "rules", "rules_test.yml")
	if err == nil {
		t.Fatalf("promtool test rules passed on a broken rule:\n%s", out)
	}
	if !strings.Contains(out, "SyncLagHigh fires") {
		t.Errorf("the failure does not name the SyncLagHigh case:\n%s", out)
	}
}

func TestEveryAlertIsGeneratedAndTestedBothWays(t *testing.T) {
	set, err := Build(shippedSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range catalog.Alerts() {
		var rules int
		for _, r := range set.alertRules {
			if r.Alert.Name == a.Name {
				rules++
			}
		}
		if rules == 0 {
			t.Errorf("alert %s is in the catalog but not generated", a.Name)
		}
		var fire, silent int
		for _, c := range set.alertTests {
			if c.Alert != a.Name {
				continue
			}
			if len(c.Want) > 0 {
				fire++
			} else {
				silent++
			}
		}
		if fire == 0 || silent == 0 {
			t.Errorf("alert %s has %d firing and %d silent test cases; it needs both", a.Name, fire, silent)
		}
	}
}

func TestEveryAlertCarriesTheContractLabelsAndAnnotations(t *testing.T) {
	set, err := Build(shippedSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range set.alertTests {
		for _, w := range c.Want {
			for _, l := range []string{catalog.AlertLabelSeverity, catalog.AlertLabelTier, catalog.AlertLabelTeam, catalog.AlertLabelRegion, catalog.AlertLabelService, catalog.AlertLabelSLO} {
				if w.ExpLabels[l] == "" {
					t.Errorf("%s: alert has no %s label: %v", c.Name, l, w.ExpLabels)
				}
			}
			for _, a := range []string{catalog.AnnotationSummary, catalog.AnnotationDescription, catalog.AnnotationRunbook, catalog.AnnotationDashboard} {
				v := w.ExpAnnotations[a]
				if v == "" || strings.Contains(v, "template error") || strings.Contains(v, "<no value>") {
					t.Errorf("%s: annotation %s is %q", c.Name, a, v)
				}
			}
		}
	}
}

func TestPrometheusRuleHoldsTheSameRules(t *testing.T) {
	s := shippedSpec(t)
	set, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	out, err := set.PrometheusRuleYAML(s)
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       yaml.Node
	}
	if err := yaml.Unmarshal(out, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Fatalf("got %s %s", pr.APIVersion, pr.Kind)
	}
	groups, err := yaml.Marshal(&pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	parsed, errs := rulefmt.Parse(groups, false, model.UTF8Validation, promqlParser, nil)
	if len(errs) > 0 {
		t.Fatalf("spec.groups does not parse as Prometheus rules: %v", errs)
	}
	n := 0
	for _, g := range parsed.Groups {
		n += len(g.Rules)
	}
	want := 0
	for _, g := range set.Groups {
		want += len(g.Rules)
	}
	if n != want {
		t.Errorf("PrometheusRule holds %d rules, the rule file %d", n, want)
	}
}

func TestBadPromQLIsRejected(t *testing.T) {
	if err := checkExpr("test", "sum(rate(x[5m])"); err == nil || !strings.Contains(err.Error(), "does not parse") {
		t.Fatalf("got %v", err)
	}
	if err := checkExpr("test", "sum(rate(x[5m]))"); err != nil {
		t.Fatal(err)
	}
}

func TestNum(t *testing.T) {
	f := func(in float64, want string) {
		t.Helper()
		if got := num(in); got != want {
			t.Errorf("num(%v) = %q, want %q", in, got, want)
		}
	}
	f((100-99.99)/100, "0.0001")
	f(14.4*0.0005, "0.0072")
	f(0.35, "0.35")
	f(5, "5")
}

func TestRunbooksCoverEveryAlert(t *testing.T) {
	books, err := Runbooks(shippedSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range catalog.Alerts() {
		b, ok := books[RunbooksDir+"/"+a.Name+".md"]
		if !ok {
			t.Errorf("no runbook for %s", a.Name)
			continue
		}
		if !strings.Contains(string(b), "## First steps") || !strings.Contains(string(b), "```promql") {
			t.Errorf("runbook of %s lacks steps or rules", a.Name)
		}
	}
}

// TestLongWindowsAreRecordedInTheSlowGroup keeps the rule cost bounded: no
// rule of the default-interval recording group reads a range longer than
// LongWindow, the long group has its own interval, and in it only the tier
// reads raw samples, over TierWindow.
func TestLongWindowsAreRecordedInTheSlowGroup(t *testing.T) {
	set, err := Build(shippedSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, g := range set.Groups {
		found[g.Name] = true
		for _, r := range g.Rules {
			if r.Record == "" {
				continue
			}
			expr, err := promqlParser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			longest, longestRaw := time.Duration(0), time.Duration(0)
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if m, ok := n.(*parser.MatrixSelector); ok {
					longest = max(longest, m.Range)
					if vs, ok := m.VectorSelector.(*parser.VectorSelector); ok && !strings.HasPrefix(vs.Name, "carpool:") {
						longestRaw = max(longestRaw, m.Range)
					}
				}
				return nil
			})
			if g.Name == GroupRecording && longest > LongWindow {
				t.Errorf("%s reads a %s range in %s, which is evaluated every scrape interval", r.Record, longest, g.Name)
			}
			// Long windows sum the recorded tier; only the tier reads raw
			// samples, over TierWindow.
			if g.Name == GroupRecordingLong && longestRaw > TierWindow {
				t.Errorf("%s reads raw samples over %s; windows over %s must read the recorded tier (%s, %s)",
					r.Record, longestRaw, LongWindow, catalog.SLIBadEventsRate.Name, catalog.SLIEventsRate.Name)
			}
		}
		if g.Name == GroupRecordingLong && time.Duration(g.Interval) != LongInterval {
			t.Errorf("%s has interval %s, want %s", g.Name, time.Duration(g.Interval), LongInterval)
		}
	}
	if !found[GroupRecordingLong] {
		t.Error("the shipped spec's 30-day SLO windows produced no long recording group")
	}
}
