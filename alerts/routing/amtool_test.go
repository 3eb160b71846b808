package routing

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/config"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// lookTool finds a real Alertmanager binary or fails the test (never skips)
// saying how to install it.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(strings.Replace(amtoolHint, "amtool", name, 1))
	}
	return p
}

// writeConfig generates the configuration of s with its routing key file
// pointed at a real temporary file and writes it to a temporary directory.
func writeConfig(t *testing.T, s *spec.Spec) string {
	t.Helper()
	data, err := Config(withKeyFile(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "alertmanager.yml", data)
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a command and returns its exit code and output.
func run(t *testing.T, env []string, name string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", name, err)
	}
	return code, out.String(), errb.String()
}

func TestAmtoolCheckConfig(t *testing.T) {
	amtool := lookTool(t, "amtool")
	s := loadSpec(t)
	withCredentials := *s
	withCredentials.Alerting.Receivers.Chat.CredentialsFile = writeFile(t, "chat-token", []byte("chat-token\n"))
	withCredentials.Alerting.Receivers.Ticket.CredentialsFile = writeFile(t, "ticket-token", []byte("ticket-token\n"))
	withCredentials.Alerting.Receivers.PagerDuty.URL = "http://127.0.0.1:9097/v2/enqueue"

	t.Run("The generated configuration passes amtool check-config.", func(t *testing.T) {
		code, out, errOut := run(t, nil, amtool, "check-config", writeConfig(t, s))
		if code != 0 || !strings.Contains(out, "SUCCESS") {
			t.Fatalf("amtool check-config exited %d:\n%s%s", code, out, errOut)
		}
		for _, want := range []string{"2 inhibit rules", "3 receivers"} {
			if !strings.Contains(out, want) {
				t.Errorf("amtool check-config did not find %s:\n%s", want, out)
			}
		}
	})
	t.Run("With webhook bearer credentials and a PagerDuty URL it passes amtool check-config.", func(t *testing.T) {
		if code, out, errOut := run(t, nil, amtool, "check-config", writeConfig(t, &withCredentials)); code != 0 {
			t.Fatalf("amtool check-config exited %d:\n%s%s", code, out, errOut)
		}
	})
	t.Run("A field Alertmanager 0.25 does not know (webhook url_file) fails amtool check-config, though config.Load v0.35 takes it.", func(t *testing.T) {
		data, err := os.ReadFile(writeConfig(t, s))
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Replace(data, []byte("url: "+s.Alerting.Receivers.Chat.URL), []byte("url_file: /etc/alertmanager/secrets/chat-url"), 1)
		if bytes.Equal(bad, data) {
			t.Fatal("the chat url was not found to replace")
		}
		if _, err := config.Load(string(bad)); err != nil {
			t.Errorf("config.Load v0.35 rejects url_file (%v); this case shows that only the real 0.25 tool catches it", err)
		}
		code, out, errOut := run(t, nil, amtool, "check-config", writeFile(t, "bad.yml", bad))
		if code == 0 {
			t.Fatalf("amtool check-config accepted a config with url_file:\n%s", out)
		}
		if !strings.Contains(out+errOut, "url_file") {
			t.Errorf("amtool check-config failed without naming url_file:\n%s%s", out, errOut)
		}
	})
}

func TestAmtoolRoutesTest(t *testing.T) {
	amtool := lookTool(t, "amtool")
	env := []string{"AMTOOL=" + amtool}
	s := loadSpec(t)
	cfgFile := writeConfig(t, s)
	cases := RouteTests(s)

	t.Run("Every case passes amtool config routes test against the generated configuration.", func(t *testing.T) {
		code, out, errOut := run(t, env, "sh", writeFile(t, "routes-test.sh", RouteTestScript(s)), cfgFile)
		if code != 0 {
			t.Fatalf("routes-test.sh exited %d:\n%s%s", code, out, errOut)
		}
		for _, c := range cases {
			if !strings.Contains(out, "ok   "+c.Name+"\n") {
				t.Errorf("no ok line for %q", c.Name)
			}
		}
	})

	wrong := append([]RouteTest(nil), cases...)
	wrong[0].Want = []string{"chat"}
	tree := []byte(strings.Replace(readFile(t, cfgFile), `tier="P0"`, `tier="P9"`, 1))
	for name, tc := range map[string]struct {
		script []byte
		config string
		fails  string
	}{
		"A deliberately wrong expectation fails, at that case, before any other runs.": {
			script(s.File, wrong), cfgFile, wrong[0].Name},
		"A configuration whose P0 route goes elsewhere fails the generated script.": {
			RouteTestScript(s), writeFile(t, "wrong-tree.yml", tree), cases[0].Name},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, env, "sh", writeFile(t, "routes-test.sh", tc.script), tc.config)
			if code != 1 {
				t.Fatalf("routes-test.sh exited %d, want 1:\n%s%s", code, out, errOut)
			}
			if !strings.Contains(errOut, "FAIL "+tc.fails+":") || !strings.Contains(errOut, "Expected receivers did not match") {
				t.Errorf("the failure does not name %q with amtool's verdict:\n%s", tc.fails, errOut)
			}
			if out != "" {
				t.Errorf("cases ran after the first failure:\n%s", out)
			}
		})
	}

	t.Run("Without amtool the script exits 2 and says how to install it.", func(t *testing.T) {
		code, _, errOut := run(t, []string{"AMTOOL=/nonexistent/amtool"}, "sh", writeFile(t, "routes-test.sh", RouteTestScript(s)), cfgFile)
		if code != 2 || !strings.Contains(errOut, "apt-get install prometheus-alertmanager") {
			t.Errorf("exit %d, stderr %q; want 2 and the install hint", code, errOut)
		}
	})
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
