package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/services/faults"
)

func drillTokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFaultCommand drives `carpoolsla fault` against a real fault admin API
// (services/faults' handler) and checks the region's injector after each
// step.
func TestFaultCommand(t *testing.T) {
	in := &faults.Injector{}
	srv := httptest.NewServer(faults.Handler(in, "s3cret"))
	defer srv.Close()
	tok := drillTokenFile(t, "s3cret")
	common := []string{"--spec", "../../deploy/sla.yaml", "--region", "sh-b", "--faults", "sh-b=" + srv.URL, "--admin-token-file", tok}
	fault := func(action string, extra ...string) (int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append(append([]string{"fault", action}, common...), extra...), &out, &errb)
		return code, out.String() + errb.String()
	}
	steps := []struct {
		name   string
		action string
		args   []string
		code   int
		says   string
		after  func() bool
	}{
		{"A latency fault lands on the order service.", "inject", []string{"--kind", "latency", "--value", "450ms"}, 0, "injected latency 450ms on order in sh-b",
			func() bool { return in.For("order").Latency.Fixed.D() == 450*time.Millisecond }},
		{"A down fault is added; the latency stays.", "inject", []string{"--kind", "down"}, 0, `"down": true`,
			func() bool { return in.Down() && in.For("order").Latency.Fixed.D() == 450*time.Millisecond }},
		{"An error rate as a percentage is a share.", "inject", []string{"--kind", "errors", "--value", "5%", "--service", "*"}, 0, "errors 5% on *",
			func() bool { return in.For("pricing").ErrorRate == 0.05 }},
		{"A skew takes a signed duration.", "inject", []string{"--kind", "skew", "--value", "-2s"}, 0, `"clock_skew": "-2s"`,
			func() bool { return in.State().ClockSkew.D() == -2*time.Second }},
		{"Status shows every fault.", "status", nil, 0, `"replication_stalled": false`, func() bool { return in.Down() }},
		{"Clearing one kind leaves the others.", "clear", []string{"--kind", "down"}, 0, "cleared down in sh-b",
			func() bool { return !in.Down() && in.For("order").Latency.Fixed.D() == 450*time.Millisecond }},
		{"Clearing the latency keeps the service's other fault.", "clear", []string{"--kind", "latency", "--service", "*"}, 0, "cleared latency",
			func() bool { return in.For("pricing").ErrorRate == 0.05 }},
		{"Clearing without a kind clears everything.", "clear", nil, 0, "cleared every fault in sh-b",
			func() bool { s := in.State(); return !s.Down && s.ClockSkew == 0 && len(s.Services) == 0 }},
		{"An unknown kind is a usage error naming the kinds.", "inject", []string{"--kind", "fire"}, 2, "use one of latency, errors, down, stall, skew", nil},
		{"A bad latency says what to write.", "inject", []string{"--kind", "latency", "--value", "soon"}, 2, "a positive duration such as 400ms", nil},
		{"An error rate above 100 % is refused.", "inject", []string{"--kind", "errors", "--value", "150%"}, 2, "in (0, 1]", nil},
		{"Down takes no value.", "inject", []string{"--kind", "down", "--value", "3"}, 2, "down takes no value", nil},
		{"Inject needs a kind.", "inject", nil, 2, "--kind is required", nil},
	}
	for _, s := range steps {
		code, out := fault(s.action, s.args...)
		if code != s.code || !strings.Contains(out, s.says) {
			t.Errorf("%s exit %d (want %d), output:\n%s\nwant it to contain %q", s.name, code, s.code, out, s.says)
			continue
		}
		if s.after != nil && !s.after() {
			t.Errorf("%s the injector holds %+v", s.name, in.State())
		}
	}
}

func TestFaultCommandBadInput(t *testing.T) {
	srv := httptest.NewServer(faults.Handler(&faults.Injector{}, "s3cret"))
	defer srv.Close()
	good, wrong := drillTokenFile(t, "s3cret"), drillTokenFile(t, "nope")
	spec := []string{"--spec", "../../deploy/sla.yaml"}
	cases := map[string]struct {
		args []string
		code int
		says string
	}{
		"A wrong token exits 1 and says which flag holds it.": {[]string{"fault", "inject", "--region", "sh-a", "--kind", "down", "--faults", "sh-a=" + srv.URL, "--admin-token-file", wrong}, 1, "--admin-token-file"},
		"An unknown region names the spec's regions.":         {[]string{"fault", "status", "--region", "mars", "--base-port", "18100", "--admin-token-file", good}, 2, "no fault admin URL for region \"mars\""},
		"A region is required.":                               {[]string{"fault", "status", "--base-port", "18100", "--admin-token-file", good}, 2, "--region is required: one of sh-a, sh-b, bj-a"},
		"A --faults flag without a URL says how to write it.": {[]string{"fault", "status", "--region", "sh-a", "--faults", "sh-a", "--admin-token-file", good}, 2, "REGION=http://HOST:PORT"},
		"A --faults flag for an unknown region is refused.":   {[]string{"fault", "status", "--region", "sh-a", "--faults", "xx=http://h", "--admin-token-file", good}, 2, "is not a region"},
		"The token is required.":                              {[]string{"fault", "status", "--region", "sh-a", "--base-port", "18100"}, 2, "--admin-token-file is required"},
		"A missing token file is named.":                      {[]string{"fault", "status", "--region", "sh-a", "--base-port", "18100", "--admin-token-file", "/nonexistent"}, 2, "--admin-token-file"},
		"An unreachable admin API exits 1 with the URL.":      {[]string{"fault", "status", "--region", "sh-a", "--faults", "sh-a=http://127.0.0.1:1", "--admin-token-file", good}, 1, "http://127.0.0.1:1/admin/faults"},
		"Status takes no kind.":                               {[]string{"fault", "status", "--region", "sh-a", "--base-port", "18100", "--admin-token-file", good, "--kind", "down"}, 2, "unknown flag"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append(c.args, spec...), &out, &errb)
			if all := out.String() + errb.String(); code != c.code || !strings.Contains(all, c.says) {
				t.Errorf("exit %d (want %d), output:\n%s\nwant it to contain %q", code, c.code, all, c.says)
			}
		})
	}
}
