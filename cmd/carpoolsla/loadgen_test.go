package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/loadgen"
)

// runLoadgenCmd runs `carpoolsla loadgen args...` as main's run would, and
// returns the exit code and output.
func runLoadgenCmd(t *testing.T, hooks loadgenHooks, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newLoadgenWith(&out, &errb, hooks)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	code := 0
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			errb.WriteString(err.Error())
			code = 2
		}
	}
	return code, out.String(), errb.String()
}

// scriptedServer takes 20 ms per request and fails every tenth with a 500.
func scriptedServer(t *testing.T) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		if n.Add(1)%10 == 0 {
			http.Error(w, "scripted failure", 500)
			return
		}
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestLoadgenThresholdsSetTheExitCode runs the command against a server
// whose latency (20 ms) and error rate (10 %) are known: thresholds that
// hold exit 0, one that does not exits 99 and says which, and bad input
// exits 2 naming what is wrong.
func TestLoadgenThresholdsSetTheExitCode(t *testing.T) {
	cases := map[string]struct {
		args     []string
		code     int
		contains []string
	}{
		"Thresholds that hold exit 0.": {
			[]string{"--threshold", "p50>=20ms", "--threshold", "p99<2s", "--threshold", "error_rate<0.2", "--threshold", "dropped==0",
				"--threshold", "http:achieved_rate>=45"},
			0, []string{"ok   p50>=20ms", "ok   error_rate<0.2", "http_5xx=5", "target 50.0/s"}},
		"A latency threshold that fails exits 99.": {
			[]string{"--threshold", "p99<10ms", "--threshold", "error_rate<0.2"},
			99, []string{"FAIL p99<10ms", "ok   error_rate<0.2", "1 of 2 thresholds failed"}},
		"An error-rate threshold that fails exits 99.": {
			[]string{"--threshold", "error_rate<0.05%"},
			99, []string{"FAIL error_rate<0.05%", "measured 0.1"}},
		"A threshold that cannot be read exits 2 and names it.": {
			[]string{"--threshold", "p99<8x0ms"},
			2, []string{`threshold "p99<8x0ms": value "8x0ms" is not a duration`}},
		"A threshold on a scenario not in the mix exits 2.": {
			[]string{"--threshold", "ride:p99<1s"},
			2, []string{"names scenario ride, which is not in --scenario http=1"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := scriptedServer(t)
			base := []string{"--target", srv.URL, "--scenario", "http", "--rate", "50", "--duration", "1s"}
			code, out, errOut := runLoadgenCmd(t, loadgenHooks{}, append(base, c.args...)...)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			for _, want := range c.contains {
				if !strings.Contains(out+errOut, want) {
					t.Errorf("output lacks %q:\n%s%s", want, out, errOut)
				}
			}
		})
	}
}

func TestLoadgenUsageErrors(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"No rate or duration says what to give.":   {[]string{"--target", "http://127.0.0.1:1"}, "give --rate"},
		"Both --ramp and --duration are refused.":  {[]string{"--target", "http://x", "--ramp", "5:1s", "--duration", "1s"}, "not both"},
		"A bad ramp names the stage.":              {[]string{"--target", "http://x", "--ramp", "5:1s,oops"}, `ramp stage 2 "oops"`},
		"An unknown scenario lists the known ones": {[]string{"--target", "http://x", "--rate", "1", "--duration", "1s", "--scenario", "walk"}, "ride, drivers, quote, http"},
		"quote without pricing's address says so.": {[]string{"--target", "http://x", "--rate", "1", "--duration", "1s", "--scenario", "quote"}, "--pricing-addr"},
		"A bad --out says the form.":               {[]string{"--target", "http://x", "--rate", "1", "--duration", "1s", "--out", "csv=x"}, "json=FILE"},
		"A bad --center says the form.":            {[]string{"--target", "http://x", "--rate", "1", "--duration", "1s", "--center", "north"}, "lat,lng"},
		"Workers above the maximum are refused.":   {[]string{"--target", "http://x", "--rate", "1", "--duration", "1s", "--workers", "10", "--max-workers", "5"}, "--max-workers"},
		"A negative start delay is refused.":       {[]string{"--target", "http://x", "--rate", "1", "--duration", "1s", "--max-start-delay", "-1s"}, "--max-start-delay"},
		"A start delay over a minute is refused.":  {[]string{"--target", "http://x", "--rate", "1", "--duration", "1s", "--max-start-delay", "2m"}, "max start delay"},
		"A bad push URL is refused.":               {[]string{"--target", "http://x", "--rate", "1", "--duration", "1s", "--push-url", "vm:8428"}, "import endpoint"},
		"An unknown flag is a usage error.":        {[]string{"--nope"}, "unknown flag"},
		"merge needs files.":                       {[]string{"merge"}, "requires at least 1 arg"},
		"merge of a missing file names it.":        {[]string{"merge", "nope.json"}, "nope.json"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runLoadgenCmd(t, loadgenHooks{}, c.args...)
			if code != 2 || !strings.Contains(out+errOut, c.want) {
				t.Errorf("exit %d, output %q; want 2 and %q", code, out+errOut, c.want)
			}
		})
	}
}

// TestLoadgenJSONMergeAndRecord: two runs write JSON summaries (--json and
// --out json=FILE); `loadgen merge` combines them, its counts are the sums
// and its thresholds set the exit code; each run is handed to the recorder.
func TestLoadgenJSONMergeAndRecord(t *testing.T) {
	srv := scriptedServer(t)
	dir := t.TempDir()
	var recorded []loadgen.Run
	hooks := loadgenHooks{Recorder: loadgen.RecorderFunc(func(_ context.Context, r loadgen.Run) error {
		recorded = append(recorded, r)
		return nil
	})}
	a := filepath.Join(dir, "a.json")
	code, out, errOut := runLoadgenCmd(t, hooks, "--target", srv.URL, "--scenario", "http", "--rate", "40", "--duration", "1s",
		"--json", "--out", "json="+a, "--run-id", "run-a", "--threshold", "error_rate<0.2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sa loadgen.Summary
	if err := json.Unmarshal([]byte(out), &sa); err != nil {
		t.Fatalf("--json did not print JSON: %v\n%s", err, out)
	}
	if sa.RunID != "run-a" || sa.Requests != 40 || sa.Histogram == nil || sa.Histogram.Count() != 40 || !sa.Passed {
		t.Errorf("summary a: run %s, %d requests, passed %v", sa.RunID, sa.Requests, sa.Passed)
	}
	b := filepath.Join(dir, "b.json")
	if code, _, errOut := runLoadgenCmd(t, hooks, "--target", srv.URL, "--scenario", "http", "--rate", "20", "--duration", "1s",
		"--out", "json="+b, "--run-id", "run-b"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if len(recorded) != 2 || recorded[0].EventID != "run-a" || recorded[0].Requests != 40 || recorded[1].Requests != 20 ||
		recorded[0].Target != srv.URL || recorded[0].Scenario != "http=1" || !recorded[0].Passed {
		t.Errorf("recorded %+v", recorded)
	}

	code, out, errOut = runLoadgenCmd(t, loadgenHooks{}, "merge", a, b, "--json", "--threshold", "requests==60")
	if code != 0 {
		t.Fatalf("merge exit %d: %s", code, errOut)
	}
	var m loadgen.Summary
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if m.Runs != 2 || m.Requests != 60 || m.Errors != 6 || m.TargetRate != 60 || m.Histogram.Count() != 60 || m.RunID != "run-a+run-b" {
		t.Errorf("merged: runs %d, requests %d, errors %d, target %v/s", m.Runs, m.Requests, m.Errors, m.TargetRate)
	}
	if code, out, _ := runLoadgenCmd(t, loadgenHooks{}, "merge", a, b, "--threshold", "error_rate<0.05"); code != 99 || !strings.Contains(out, "2 runs merged") {
		t.Errorf("merge with a failing threshold: exit %d\n%s", code, out)
	}
}
