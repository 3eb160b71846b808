package realserver

import (
	"net"
	"strings"
	"testing"
)

func TestStartMariaDB(t *testing.T) {
	t.Parallel()
	var m *MariaDB
	t.Run("server", func(t *testing.T) {
		m = StartMariaDB(t, MariaDBOptions{Config: "server-id=7\nlog-bin\nbinlog-format=ROW"})
		if got := m.Query(t, "SELECT @@server_id, @@log_bin, @@binlog_format, @@port"); got != "7\t1\tROW\t"+strings.Split(m.Addr, ":")[1]+"\n" {
			t.Errorf("the server's variables: %q", got)
		}
		m.Query(t, "CREATE DATABASE carpool; CREATE TABLE carpool.heartbeat (id INT PRIMARY KEY, ts TIMESTAMP(6))")
		m.Query(t, "INSERT INTO carpool.heartbeat VALUES (1, NOW(6))")
		if got := m.Query(t, "SELECT COUNT(*) FROM carpool.heartbeat"); got != "1\n" {
			t.Errorf("COUNT(*) = %q", got)
		}
		if want := "root@tcp(" + m.Addr + ")/"; m.DSN != want {
			t.Errorf("DSN %q, want %q", m.DSN, want)
		}
	})
	select {
	case <-m.proc.exited:
	default:
		t.Fatal("mariadb still runs after its test's cleanup")
	}
	if conn, err := net.Dial("tcp", m.Addr); err == nil {
		conn.Close()
		t.Error("mariadb still answers after its test's cleanup")
	}
}
