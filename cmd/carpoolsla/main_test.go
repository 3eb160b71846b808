package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := map[string]struct {
		args     []string
		code     int
		contains string
	}{
		"The shipped spec is valid.": {[]string{"validate", "--spec", "../../deploy/sla.yaml"}, 0, "valid (3 regions, 5 services, 8 SLOs)"},
		"A broken spec exits 1 with located messages.": {[]string{"validate", "--spec", "../../sla/spec/testdata/broken/health_weights.yaml"}, 1,
			"health_weights.yaml:84:3: health.components: weights of health.components sum to 0.95; they must sum to 1"},
		"A missing spec exits 1 and says which flag to use.": {[]string{"validate", "--spec", "nope.yaml"}, 1, "pass --spec"},
		"An unknown flag is a usage error.":                  {[]string{"validate", "--nope"}, 2, "unknown flag"},
		"Help works on every subcommand.":                    {[]string{"generate", "--help"}, 0, "--check"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, &out, &errb)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errb.String())
			}
			if all := out.String() + errb.String(); !strings.Contains(all, c.contains) {
				t.Errorf("output does not contain %q:\n%s", c.contains, all)
			}
		})
	}
}

func TestEveryBrokenSpecFailsValidate(t *testing.T) {
	files, _ := filepath.Glob("../../sla/spec/testdata/broken/*.yaml")
	if len(files) == 0 {
		t.Fatal("no broken specs")
	}
	for _, f := range files {
		var out, errb bytes.Buffer
		if code := run([]string{"validate", "--spec", f}, &out, &errb); code != 1 || !strings.HasPrefix(errb.String(), f+":") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and located messages", f, code, errb.String())
		}
	}
}

func TestGenerateThenCheck(t *testing.T) {
	root := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"generate", "--spec", "../../deploy/sla.yaml", "--root", root}, &out, &errb); code != 0 {
		t.Fatalf("generate exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"Generated", "P0 → pagerduty", "Dashboards: 4"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"generate", "--spec", "../../deploy/sla.yaml", "--root", root, "--check"}, &out, &errb); code != 0 {
		t.Fatalf("check after generate exit %d: %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"generate", "--spec", "../../deploy/sla.yaml", "--root", t.TempDir(), "--check"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "stale") {
		t.Fatalf("check on an empty root: exit %d, %s", code, errb.String())
	}
}

func TestServicesBadInput(t *testing.T) {
	cases := map[string]struct {
		args     []string
		contains string
	}{
		"An unknown region names the valid ones.":    {[]string{"services", "--spec", "../../deploy/sla.yaml", "--region", "mars"}, "use one of sh-a, sh-b, bj-a"},
		"A peer without a URL says how to write it.": {[]string{"services", "--spec", "../../deploy/sla.yaml", "--region", "sh-a", "--peer", "sh-b"}, "NAME=http://HOST:PORT"},
		"A peer naming itself is refused.":           {[]string{"services", "--spec", "../../deploy/sla.yaml", "--region", "sh-a", "--peer", "sh-a=http://127.0.0.1:1"}, "another region"},
		"A region without peers is refused.":         {[]string{"services", "--spec", "../../deploy/sla.yaml", "--region", "sh-a"}, "no --peer given"},
		"A missing token file is an error.":          {[]string{"services", "--spec", "../../deploy/sla.yaml", "--all", "--admin-token-file", "/nonexistent"}, "--admin-token-file"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(c.args, &out, &errb); code != 1 || !strings.Contains(errb.String(), c.contains) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errb.String(), c.contains)
			}
		})
	}
}

func TestExporterBadFlags(t *testing.T) {
	cases := map[string]struct {
		args     []string
		contains string
	}{
		"synclag without a backend says which to pick.":     {[]string{"exporter", "synclag"}, "--backend is required"},
		"streamlag without a region asks for it.":           {[]string{"exporter", "streamlag"}, "--region is required"},
		"probe without targets asks for name=url.":          {[]string{"exporter", "probe", "--region", "sh-a"}, "name=url"},
		"verify without DSNs shows their form.":             {[]string{"exporter", "verify"}, "mysql://user:password@host:3306/db"},
		"rto without region APIs asks for them.":            {[]string{"exporter", "rto"}, "--region-api is required"},
		"configdrift with one region needs two.":            {[]string{"exporter", "configdrift", "--region-config", "sh-a=/etc/x.yaml"}, "at least two"},
		"A bad listen address is an error naming the flag.": {[]string{"exporter", "probe", "--region", "sh-a", "--target", "sh-b=http://127.0.0.1:1", "--listen", "nope"}, "--listen"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(c.args, &out, &errb); code != 1 || !strings.Contains(errb.String(), c.contains) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errb.String(), c.contains)
			}
		})
	}
}
