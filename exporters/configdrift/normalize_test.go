package configdrift

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustPaths(t *testing.T, ss ...string) []Path {
	t.Helper()
	var out []Path
	for _, s := range ss {
		p, err := ParsePath(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestNormalize(t *testing.T) {
	base := `{"service": "order", "limits": {"qps": 100, "burst": 1.5}, "regions": ["sh-a", "sh-b"], "updated_at": "2026-11-25T10:00:00Z"}`
	tests := map[string]struct {
		other  string
		ignore []string
		same   bool
	}{
		"Key order does not matter.": {
			`{"updated_at": "2026-11-25T10:00:00Z", "regions": ["sh-a", "sh-b"], "limits": {"burst": 1.5, "qps": 100}, "service": "order"}`, nil, true},
		"Whitespace does not matter.": {
			"{\n\t\"service\":\"order\",\n  \"limits\" : {\"qps\":100,\"burst\":1.5},\"regions\":[\"sh-a\",\n\"sh-b\"],\"updated_at\":\"2026-11-25T10:00:00Z\"}\n\n", nil, true},
		"The same configuration in YAML, with comments, hashes the same.": {
			"# order service\nservice: order\nlimits:\n  burst: 1.5\n  qps: 100 # per region\nregions: [sh-a, sh-b]\nupdated_at: \"2026-11-25T10:00:00Z\"\n", nil, true},
		"One number has one spelling.": {
			`{"service": "order", "limits": {"qps": 100.0, "burst": 15e-1}, "regions": ["sh-a", "sh-b"], "updated_at": "2026-11-25T10:00:00Z"}`, nil, true},
		"A volatile field that is ignored does not matter.": {
			`{"service": "order", "limits": {"qps": 100, "burst": 1.5}, "regions": ["sh-a", "sh-b"], "updated_at": "2026-11-26T08:00:00Z"}`, []string{"updated_at"}, true},
		"A volatile field that is not ignored does.": {
			`{"service": "order", "limits": {"qps": 100, "burst": 1.5}, "regions": ["sh-a", "sh-b"], "updated_at": "2026-11-26T08:00:00Z"}`, nil, false},
		"A changed value differs.": {
			`{"service": "order", "limits": {"qps": 101, "burst": 1.5}, "regions": ["sh-a", "sh-b"], "updated_at": "2026-11-25T10:00:00Z"}`, []string{"updated_at"}, false},
		"A number and the same digits as a string differ.": {
			`{"service": "order", "limits": {"qps": "100", "burst": 1.5}, "regions": ["sh-a", "sh-b"], "updated_at": "2026-11-25T10:00:00Z"}`, nil, false},
		"Array order matters.": {
			`{"service": "order", "limits": {"qps": 100, "burst": 1.5}, "regions": ["sh-b", "sh-a"], "updated_at": "2026-11-25T10:00:00Z"}`, nil, false},
		"An added field differs.": {
			`{"service": "order", "limits": {"qps": 100, "burst": 1.5, "x": null}, "regions": ["sh-a", "sh-b"], "updated_at": "2026-11-25T10:00:00Z"}`, nil, false},
		"A path that matches nothing is harmless.": {
			base, []string{"no.such.field", "regions.7", "limits.qps.deeper"}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ign := mustPaths(t, tc.ignore...)
			a, err := Normalize([]byte(base), ign)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Normalize([]byte(tc.other), ign)
			if err != nil {
				t.Fatal(err)
			}
			if (Hash(a) == Hash(b)) != tc.same {
				t.Fatalf("same=%v, want %v:\n%s\n%s", Hash(a) == Hash(b), tc.same, a, b)
			}
		})
	}
}

func TestNormalizeIgnorePaths(t *testing.T) {
	in := `{"meta": {"generated": 1, "by": "ci"}, "regions": [{"name": "a", "seen": 1}, {"name": "b", "seen": 2}], "list": [1, 2, 3]}`
	f := func(ignore []string, want string) {
		t.Helper()
		got, err := Normalize([]byte(in), mustPaths(t, ignore...))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("ignoring %v:\n got %s\nwant %s", ignore, got, want)
		}
	}
	f(nil, `{"list":[1,2,3],"meta":{"by":"ci","generated":1},"regions":[{"name":"a","seen":1},{"name":"b","seen":2}]}`)
	f([]string{"meta.generated"}, `{"list":[1,2,3],"meta":{"by":"ci"},"regions":[{"name":"a","seen":1},{"name":"b","seen":2}]}`)
	f([]string{"regions.*.seen"}, `{"list":[1,2,3],"meta":{"by":"ci","generated":1},"regions":[{"name":"a"},{"name":"b"}]}`)
	f([]string{"list.1"}, `{"list":[1,3],"meta":{"by":"ci","generated":1},"regions":[{"name":"a","seen":1},{"name":"b","seen":2}]}`)
	f([]string{"*.generated", "list"}, `{"meta":{"by":"ci"},"regions":[{"name":"a","seen":1},{"name":"b","seen":2}]}`)
}

func TestNormalizeGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "services.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Normalize(in, mustPaths(t, "metadata.generatedAt"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "services.normalized.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != strings.TrimSpace(string(want)) {
		t.Fatalf("normalized:\n%s\nwant (testdata/services.normalized.json):\n%s", got, want)
	}
}

func TestNormalizeBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"Neither JSON nor YAML is an error.":  "{\"a\": [1, 2",
		"An empty document is an error.":      "",
		"Two JSON values are not one config.": "{}{}",
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := Normalize([]byte(in), nil); err == nil {
				t.Fatalf("Normalize(%q) = %s, want an error", in, got)
			}
		})
	}
	for _, p := range []string{"", "a..b", ".a", "a."} {
		if _, err := ParsePath(p); err == nil {
			t.Errorf("ParsePath(%q): no error", p)
		}
	}
}
