package realserver

import (
	"net"
	"strings"
	"testing"
)

func TestStartClickHouse(t *testing.T) {
	t.Parallel()
	var c *ClickHouse
	t.Run("server", func(t *testing.T) {
		c = StartClickHouse(t)
		c.Query(t, "CREATE TABLE events (ts DateTime, region String) ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY ts")
		c.Query(t, "INSERT INTO events VALUES ('2026-05-01 10:00:00', 'eu'), ('2026-05-02 10:00:00', 'us')")
		if got := c.Query(t, "SELECT region, count() FROM events GROUP BY region ORDER BY region"); got != "eu\t1\nus\t1\n" {
			t.Errorf("SELECT answered %q", got)
		}
		conn, err := net.Dial("tcp", c.Addr)
		if err != nil {
			t.Fatalf("the native port does not answer: %v", err)
		}
		conn.Close()
		msg := failure(t, func(tb testing.TB) { c.Query(tb, "SELECT nothing FROM nowhere") })
		if !strings.Contains(msg, "500 Internal Server Error") && !strings.Contains(msg, "404 Not Found") {
			t.Errorf("a bad query failed with %q", msg)
		}
	})
	assertStopped(t, c.proc, c.HTTPURL+"/ping")
}

func TestClickHouseConfig(t *testing.T) {
	in := `<yandex>
    <logger>
        <log>/var/log/clickhouse-server/clickhouse-server.log</log>
    </logger>
    <http_port>8123</http_port>
    <tcp_port>9000</tcp_port>
    <!-- <tcp_port_secure>9440</tcp_port_secure> -->
    <interserver_http_port>9009</interserver_http_port>
    <path>/var/lib/clickhouse/</path>
    <tmp_path>/var/lib/clickhouse/tmp/</tmp_path>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>`
	want := `<yandex>
    <logger>
        <console>1</console>
        <log>/d/log/clickhouse-server.log</log>
    </logger>
    <http_port>2</http_port>
    <tcp_port>1</tcp_port>
    <!-- <tcp_port_secure>9440</tcp_port_secure> -->
    <interserver_http_port>3</interserver_http_port>
    <path>/d/data/</path>
    <tmp_path>/d/data/tmp/</tmp_path>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>`
	if got := string(clickHouseConfig([]byte(in), "/d", 1, 2, 3)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestClickHouseStopAndStartKeepTheData(t *testing.T) {
	t.Parallel()
	c := StartClickHouse(t)
	c.Query(t, "CREATE TABLE kept (n UInt32) ENGINE = MergeTree ORDER BY n")
	c.Query(t, "INSERT INTO kept VALUES (1), (2)")
	c.Stop(t)
	if err := httpOK(c.HTTPURL + "/ping"); err == nil {
		t.Fatal("a stopped server still answers /ping")
	}
	msg := failure(t, func(tb testing.TB) { c.Stop(tb) })
	if !strings.Contains(msg, "not running") {
		t.Errorf("stopping a stopped server failed with %q", msg)
	}
	c.Start(t)
	if got := c.Query(t, "SELECT count() FROM kept"); got != "2\n" {
		t.Errorf("after a restart the table holds %q rows, want 2", got)
	}
	msg = failure(t, func(tb testing.TB) { c.Start(tb) })
	if !strings.Contains(msg, "running already") {
		t.Errorf("starting a running server failed with %q", msg)
	}
}

func TestClickHouseUsersPollsEverySecond(t *testing.T) {
	in := `<yandex>
    <profiles>
        <default>
            <max_memory_usage>10000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
        </default>
    </users>
</yandex>`
	want := `<yandex>
    <profiles>
        <default>
            <poll_interval>1</poll_interval>
            <max_memory_usage>10000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
        </default>
    </users>
</yandex>`
	if got := string(clickHouseUsers([]byte(in))); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
