package realserver

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

func TestStartNATS(t *testing.T) {
	t.Parallel()
	var n *NATS
	t.Run("server", func(t *testing.T) {
		n = StartNATS(t)
		conn, err := net.Dial("tcp", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		info, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"jetstream":true`) {
			t.Errorf("the server introduced itself with %q, want INFO with JetStream", info)
		}
		var jsz struct {
			Config struct {
				StoreDir string `json:"store_dir"`
			} `json:"config"`
		}
		getJSON(t, n.MonitorURL+"/jsz", &jsz)
		if want := n.Dir + "/data/jetstream"; jsz.Config.StoreDir != want {
			t.Errorf("JetStream stores in %q, want %q", jsz.Config.StoreDir, want)
		}
	})
	assertStopped(t, n.proc, n.MonitorURL+"/healthz")
}
