package drill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// The Chaos Mesh experiments in deploy/k8s/chaos are checked here, without
// a cluster: what the CRDs' schemas would refuse, and what ties them to the
// spec.

const chaosAPIVersion = "chaos-mesh.org/v1alpha1"

// chaosFields are the spec fields each kind accepts (the subset of the
// v1alpha1 CRDs the experiments may use); anything else is a typo.
var chaosFields = map[string][]string{
	"PodChaos":     {"selector", "mode", "value", "action", "duration", "gracePeriod", "containerNames"},
	"NetworkChaos": {"selector", "mode", "value", "action", "duration", "direction", "target", "externalTargets", "device", "delay", "loss", "duplicate", "corrupt", "bandwidth"},
	"TimeChaos":    {"selector", "mode", "value", "timeOffset", "clockIds", "containerNames", "duration"},
}

var (
	chaosModes      = []string{"one", "all", "fixed", "fixed-percent", "random-max-percent"}
	podActions      = []string{"pod-kill", "pod-failure", "container-kill"}
	networkActions  = []string{"netem", "delay", "loss", "duplicate", "corrupt", "partition", "bandwidth"}
	directions      = []string{"to", "from", "both"}
	clockIDs        = []string{"CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID", "CLOCK_THREAD_CPUTIME_ID", "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE", "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME", "CLOCK_REALTIME_ALARM", "CLOCK_BOOTTIME_ALARM"}
	selectorFields  = []string{"namespaces", "labelSelectors", "expressionSelectors", "annotationSelectors", "fieldSelectors", "nodeSelectors", "nodes", "pods", "podPhaseSelectors"}
	dns1123         = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	chaosDurationRe = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`)
)

// chaosExperiment is what the checks read of one document.
type chaosExperiment struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec map[string]any `yaml:"spec"`
}

// checkChaos returns every problem of the experiments in data, and the
// scenarios they cover.
func checkChaos(s *spec.Spec, data []byte) ([]string, []error) {
	var scenarios []string
	var errs []error
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var e chaosExperiment
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			if i == 0 {
				errs = append(errs, errors.New("no experiment"))
			}
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			break
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s %q: %s", e.Kind, e.Metadata.Name, fmt.Sprintf(format, args...)))
		}
		if e.APIVersion != chaosAPIVersion {
			bad("apiVersion %q, want %s", e.APIVersion, chaosAPIVersion)
		}
		known, ok := chaosFields[e.Kind]
		if !ok {
			bad("kind %q is not one of PodChaos, NetworkChaos, TimeChaos", e.Kind)
			continue
		}
		if !dns1123.MatchString(e.Metadata.Name) || e.Metadata.Namespace == "" {
			bad("metadata.name must be a DNS-1123 label and metadata.namespace set")
		}
		sc := e.Metadata.Annotations["carpoolsla.io/scenario"]
		if !slices.Contains(spec.Scenarios, sc) {
			bad("annotation carpoolsla.io/scenario %q is not a scenario of the spec (%s)", sc, strings.Join(spec.Scenarios, ", "))
		}
		scenarios = append(scenarios, sc)
		for k := range e.Spec {
			if !slices.Contains(known, k) {
				bad("spec.%s is not a %s field", k, e.Kind)
			}
		}
		checkMode(e.Spec, "spec", bad)
		checkSelector(s, e.Spec["selector"], "spec.selector", bad)
		if d, ok := e.Spec["duration"]; ok {
			checkDuration(d, "spec.duration", bad)
		}
		str := func(k string) string { v, _ := e.Spec[k].(string); return v }
		switch e.Kind {
		case "PodChaos":
			if !slices.Contains(podActions, str("action")) {
				bad("spec.action %q: use one of %s", str("action"), strings.Join(podActions, ", "))
			}
			if str("action") == "pod-failure" && e.Spec["duration"] == nil {
				bad("pod-failure needs spec.duration, or the pods stay failed")
			}
			if str("action") == "container-kill" && e.Spec["containerNames"] == nil {
				bad("container-kill needs spec.containerNames")
			}
		case "NetworkChaos":
			a := str("action")
			if !slices.Contains(networkActions, a) {
				bad("spec.action %q: use one of %s", a, strings.Join(networkActions, ", "))
			}
			if a == "delay" {
				d, _ := e.Spec["delay"].(map[string]any)
				if d == nil || d["latency"] == nil {
					bad("a delay needs spec.delay.latency")
				} else {
					checkDuration(d["latency"], "spec.delay.latency", bad)
					if j, ok := d["jitter"]; ok {
						checkDuration(j, "spec.delay.jitter", bad)
					}
				}
			}
			if a == "partition" {
				if !slices.Contains(directions, str("direction")) {
					bad("a partition needs spec.direction: to, from or both")
				}
				tg, _ := e.Spec["target"].(map[string]any)
				if tg == nil {
					bad("a partition needs spec.target (the pods it is cut from)")
				} else {
					checkMode(tg, "spec.target", bad)
					checkSelector(s, tg["selector"], "spec.target.selector", bad)
				}
			}
		case "TimeChaos":
			off := str("timeOffset")
			if _, err := time.ParseDuration(off); err != nil || off == "" {
				bad("spec.timeOffset %q: give a signed duration such as 2s or -500ms", off)
			}
			ids, _ := e.Spec["clockIds"].([]any)
			for _, id := range ids {
				if s, _ := id.(string); !slices.Contains(clockIDs, s) {
					bad("spec.clockIds: %v is not a clock id", id)
				}
			}
		}
	}
	return scenarios, errs
}

func checkMode(m map[string]any, at string, bad func(string, ...any)) {
	mode, _ := m["mode"].(string)
	if !slices.Contains(chaosModes, mode) {
		bad("%s.mode %q: use one of %s", at, mode, strings.Join(chaosModes, ", "))
	}
	if strings.HasPrefix(mode, "fixed") || strings.HasPrefix(mode, "random") {
		if m["value"] == nil {
			bad("%s.mode %s needs %s.value", at, mode, at)
		}
	}
}

// checkSelector wants a non-empty selector whose region and city labels
// name regions and cities of the spec.
func checkSelector(s *spec.Spec, v any, at string, bad func(string, ...any)) {
	sel, _ := v.(map[string]any)
	if len(sel) == 0 {
		bad("%s is missing: without one the experiment would hit every pod", at)
		return
	}
	for k := range sel {
		if !slices.Contains(selectorFields, k) {
			bad("%s.%s is not a selector field", at, k)
		}
	}
	labels, _ := sel["labelSelectors"].(map[string]any)
	for k, val := range labels {
		name, _ := val.(string)
		switch k {
		case "carpoolsla.io/region":
			if !slices.Contains(s.RegionNames(), name) {
				bad("%s: region %q is not in the spec", at, name)
			}
		case "carpoolsla.io/city":
			if !slices.Contains(cities(s), name) {
				bad("%s: city %q is not in the spec", at, name)
			}
		}
	}
	exprs, _ := sel["expressionSelectors"].([]any)
	for _, x := range exprs {
		m, _ := x.(map[string]any)
		if m["key"] == "carpoolsla.io/region" {
			vals, _ := m["values"].([]any)
			for _, v := range vals {
				if name, _ := v.(string); !slices.Contains(s.RegionNames(), name) {
					bad("%s: region %q is not in the spec", at, name)
				}
			}
		}
	}
}

func checkDuration(v any, at string, bad func(string, ...any)) {
	d, _ := v.(string)
	if !chaosDurationRe.MatchString(d) {
		bad("%s %v: give a duration such as 60s or 5m", at, v)
	}
}

// TestChaosExperiments checks every experiment in deploy/k8s/chaos, and
// that every scenario of the spec has one.
func TestChaosExperiments(t *testing.T) {
	s := shippedSpec(t)
	files, err := filepath.Glob("../../deploy/k8s/chaos/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no experiments: %v", err)
	}
	covered := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		scenarios, errs := checkChaos(s, b)
		for _, err := range errs {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
		for _, sc := range scenarios {
			covered[sc] = true
		}
	}
	for _, sc := range spec.Scenarios {
		if !covered[sc] {
			t.Errorf("scenario %s has no Chaos Mesh experiment in deploy/k8s/chaos", sc)
		}
	}
}

// TestChaosChecksCatchMistakes: each broken experiment is refused with the
// reason.
func TestChaosChecksCatchMistakes(t *testing.T) {
	s := shippedSpec(t)
	base := `apiVersion: chaos-mesh.org/v1alpha1
kind: %s
metadata: {name: x, namespace: carpool, annotations: {carpoolsla.io/scenario: %s}}
spec:
%s`
	sel := "  selector: {labelSelectors: {carpoolsla.io/region: sh-a}}\n"
	cases := map[string]struct{ kind, scenario, spec, want string }{
		"A delay without a latency.":           {"NetworkChaos", "latency_spike", "  action: delay\n  mode: all\n" + sel + "  delay: {jitter: 5ms}\n", "spec.delay.latency"},
		"A partition without a target.":        {"NetworkChaos", "region_down", "  action: partition\n  mode: all\n  direction: both\n" + sel, "spec.target"},
		"A pod-failure without a duration.":    {"PodChaos", "region_down", "  action: pod-failure\n  mode: all\n" + sel, "spec.duration"},
		"A misspelt field.":                    {"PodChaos", "region_down", "  action: pod-kill\n  mode: all\n  gracePeriods: 0\n" + sel, "spec.gracePeriods is not a PodChaos field"},
		"A region the spec does not have.":     {"PodChaos", "region_down", "  action: pod-kill\n  mode: all\n  selector: {labelSelectors: {carpoolsla.io/region: mars}}\n", `region "mars"`},
		"No selector at all.":                  {"PodChaos", "region_down", "  action: pod-kill\n  mode: all\n", "would hit every pod"},
		"A fixed mode without its value.":      {"PodChaos", "region_down", "  action: pod-kill\n  mode: fixed\n" + sel, "needs spec.value"},
		"A bad time offset.":                   {"TimeChaos", "clock_skew", "  mode: all\n  timeOffset: soon\n" + sel, "spec.timeOffset"},
		"An unknown scenario annotation.":      {"TimeChaos", "meteor", "  mode: all\n  timeOffset: 2s\n" + sel, "not a scenario of the spec"},
		"A duration Chaos Mesh cannot read.":   {"NetworkChaos", "latency_spike", "  action: delay\n  mode: all\n  duration: 5 minutes\n" + sel + "  delay: {latency: 1s}\n", "spec.duration"},
		"A kind that is not an experiment.":    {"Schedule", "region_down", "  mode: all\n", `kind "Schedule"`},
		"An unknown network action is refused": {"NetworkChaos", "region_down", "  action: explode\n  mode: all\n" + sel, "spec.action"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, errs := checkChaos(s, []byte(fmt.Sprintf(base, c.kind, c.scenario, c.spec)))
			if !strings.Contains(fmt.Sprint(errs), c.want) {
				t.Fatalf("errors %v, want one containing %q", errs, c.want)
			}
		})
	}
	if _, errs := checkChaos(s, []byte("apiVersion: v1\nkind: ConfigMap\n")); len(errs) == 0 {
		t.Fatal("a ConfigMap passed as an experiment")
	}
}
