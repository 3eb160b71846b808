package realserver

import (
	"strings"
	"testing"
)

const blackholeConfig = `
route:
  receiver: blackhole
receivers:
  - name: blackhole
`

func TestStartAlertmanager(t *testing.T) {
	t.Parallel()
	var a *Alertmanager
	t.Run("server", func(t *testing.T) {
		a = StartAlertmanager(t, []byte(blackholeConfig+"templates: ['{{DIR}}/tmpl/*.tmpl']\n"),
			map[string][]byte{"tmpl/page.tmpl": []byte(`{{ define "page" }}carpool{{ end }}`)})

		var status struct {
			Cluster struct {
				Status string `json:"status"`
			} `json:"cluster"`
			Config struct {
				Original string `json:"original"`
			} `json:"config"`
		}
		getJSON(t, a.URL+"/api/v2/status", &status)
		if want := "- " + a.Dir + "/tmpl/*.tmpl"; !strings.Contains(status.Config.Original, want) {
			t.Errorf("the loaded config\n%s\nlacks %q", status.Config.Original, want)
		}
		if status.Cluster.Status != "disabled" {
			t.Errorf("cluster status %q, want disabled (gossip off)", status.Cluster.Status)
		}
	})
	assertStopped(t, a.proc, a.URL+"/-/ready")
}

func TestStartAlertmanagerFailsWithItsLog(t *testing.T) {
	t.Parallel()
	msg := failure(t, func(tb testing.TB) {
		StartAlertmanager(tb, []byte("route:\n  receiver: nobody\n"), nil)
	})
	for _, want := range []string{
		"starting alertmanager: exited before it was ready: exit status 1",
		`undefined receiver \"nobody\" used in route`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failure\n%s\nlacks %q", msg, want)
		}
	}
}
