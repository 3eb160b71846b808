package realserver

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// clickHouseConfigDir holds the packaged config.xml and users.xml that StartClickHouse copies.
const clickHouseConfigDir = "/etc/clickhouse-server"

// ClickHouse is a ClickHouse server started for one test. User "default", no password.
type ClickHouse struct {
	Addr    string // native protocol (clickhouse-go): 127.0.0.1:port
	HTTPURL string // HTTP interface: http://127.0.0.1:port
	Dir     string // config.xml, users.xml, data/, log/ and clickhouse.log

	proc *process
}

// StartClickHouse starts clickhouse-server with a copy of the packaged config whose paths lead into a
// t.TempDir folder and whose ports are free ones on 127.0.0.1 (it binds ::1 as well, whatever the
// config says). It returns once /ping answers and the native port accepts connections; the test's
// cleanup stops it.
func StartClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	bin := Binary(t, "clickhouse-server")
	dir := t.TempDir()
	tcpPort, httpPort, interserverPort := FreePort(t), FreePort(t), FreePort(t)
	cfg, err := os.ReadFile(filepath.Join(clickHouseConfigDir, "config.xml"))
	if err != nil {
		t.Fatalf("starting clickhouse: %v: reinstall it with `make stack-deps` (deploy/local/install.sh clickhouse)", err)
	}
	users, err := os.ReadFile(filepath.Join(clickHouseConfigDir, "users.xml"))
	if err != nil {
		t.Fatalf("starting clickhouse: %v: reinstall it with `make stack-deps` (deploy/local/install.sh clickhouse)", err)
	}
	cfg = clickHouseConfig(cfg, dir, tcpPort, httpPort, interserverPort)
	if err := writeFiles(dir, map[string][]byte{"config.xml": cfg, "users.xml": users}); err != nil {
		t.Fatalf("starting clickhouse: %v", err)
	}
	c := &ClickHouse{
		Addr:    fmt.Sprintf("127.0.0.1:%d", tcpPort),
		HTTPURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		Dir:     dir,
	}
	c.proc = start(t, "clickhouse", dir, bin, "--config-file="+filepath.Join(dir, "config.xml"))
	c.proc.waitReady(t, func() error {
		if err := httpOK(c.HTTPURL + "/ping"); err != nil {
			return err
		}
		// A port it cannot bind is only logged: check the native one as well.
		conn, err := net.DialTimeout("tcp", c.Addr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	return c
}

var (
	clickHouseTCPPort         = regexp.MustCompile(`<tcp_port>\d+</tcp_port>`)
	clickHouseHTTPPort        = regexp.MustCompile(`<http_port>\d+</http_port>`)
	clickHouseInterserverPort = regexp.MustCompile(`<interserver_http_port>\d+</interserver_http_port>`)
)

// clickHouseConfig rewrites the packaged config.xml: data under dir/data, logs under dir/log (warnings
// and errors to the console as well, so they reach clickhouse.log), and the given ports.
func clickHouseConfig(cfg []byte, dir string, tcpPort, httpPort, interserverPort int) []byte {
	s := string(cfg)
	s = strings.ReplaceAll(s, "/var/lib/clickhouse/", dir+"/data/")
	s = strings.ReplaceAll(s, "/var/log/clickhouse-server/", dir+"/log/")
	s = strings.Replace(s, "<logger>", "<logger>\n        <console>1</console>", 1)
	s = clickHouseTCPPort.ReplaceAllString(s, fmt.Sprintf("<tcp_port>%d</tcp_port>", tcpPort))
	s = clickHouseHTTPPort.ReplaceAllString(s, fmt.Sprintf("<http_port>%d</http_port>", httpPort))
	s = clickHouseInterserverPort.ReplaceAllString(s,
		fmt.Sprintf("<interserver_http_port>%d</interserver_http_port>", interserverPort))
	return []byte(s)
}

// Query runs one SQL statement over the HTTP interface and returns what it answers (TabSeparated for a
// SELECT). An error fails the test.
func (c *ClickHouse) Query(t testing.TB, sql string) string {
	t.Helper()
	resp, err := httpClient.Post(c.HTTPURL+"/?"+url.Values{"database": {"default"}}.Encode(), "text/plain",
		strings.NewReader(sql))
	if err != nil {
		t.Fatalf("clickhouse query %q: %v", sql, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("clickhouse query %q: %v", sql, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("clickhouse query %q: %s: %s", sql, resp.Status, bytes.TrimSpace(body))
	}
	return string(body)
}
