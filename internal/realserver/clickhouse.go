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
	bin  string // the server binary, kept for Start
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
	users = clickHouseUsers(users)
	if err := writeFiles(dir, map[string][]byte{"config.xml": cfg, "users.xml": users}); err != nil {
		t.Fatalf("starting clickhouse: %v", err)
	}
	c := &ClickHouse{
		Addr:    fmt.Sprintf("127.0.0.1:%d", tcpPort),
		HTTPURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort),
		Dir:     dir,
		bin:     bin,
	}
	c.launch(t)
	return c
}

// launch starts the server process on c's folder and ports and waits until it is ready.
func (c *ClickHouse) launch(t testing.TB) {
	t.Helper()
	c.proc = start(t, "clickhouse", c.Dir, c.bin, "--config-file="+filepath.Join(c.Dir, "config.xml"))
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
}

// running reports whether the server process has not exited.
func (c *ClickHouse) running() bool {
	select {
	case <-c.proc.exited:
		return false
	default:
		return true
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after the stop timeout) and keeps its folder, ports and
// data, so that Start brings the same server back: an outage in the middle of a test. Stopping a
// stopped server fails the test. The test's cleanup later notes that the process had already exited.
func (c *ClickHouse) Stop(t testing.TB) {
	t.Helper()
	if !c.running() {
		t.Fatal("stopping clickhouse: it is not running; Start it first")
	}
	c.proc.stop(t)
}

// Start starts a server that Stop stopped, on the same ports with the same data, and returns once it is
// ready. Starting a running server fails the test.
func (c *ClickHouse) Start(t testing.TB) {
	t.Helper()
	if c.running() {
		t.Fatal("starting clickhouse: it is running already; Stop it first")
	}
	c.launch(t)
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

// clickHouseUsers rewrites the packaged users.xml: the default profile's poll_interval drops from 10 s
// to 1 s. A native-protocol connection (clickhouse-go's pool keeps them) is polled for data that long
// before the server notices a SIGTERM, so with the default a stop waits out 10 s and is killed; Stop
// and the test's cleanup then take a second.
func clickHouseUsers(users []byte) []byte {
	s := string(users)
	if i := strings.Index(s, "<profiles>"); i >= 0 {
		if j := strings.Index(s[i:], "<default>"); j >= 0 {
			at := i + j + len("<default>")
			s = s[:at] + "\n            <poll_interval>1</poll_interval>" + s[at:]
		}
	}
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
