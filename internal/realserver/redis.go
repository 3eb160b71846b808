package realserver

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a Redis server started for one test: no persistence, no password.
type Redis struct {
	Addr string // 127.0.0.1:port
	Dir  string // its working folder and redis.log

	proc *process
}

// StartRedis starts redis-server on a free 127.0.0.1 port without snapshots or an append-only file. It
// returns once PING answers PONG; the test's cleanup stops it.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := Binary(t, "redis-server")
	dir := t.TempDir()
	port := FreePort(t)
	r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir}
	r.proc = start(t, "redis", dir, bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--dir", dir)
	r.proc.waitReady(t, func() error {
		reply, err := redisCommand(r.Addr, "PING")
		if err == nil && reply != "+PONG" {
			err = fmt.Errorf("PING answered %q", reply)
		}
		return err
	})
	return r
}

// redisCommand sends one inline command and returns the first line of the reply, enough for a
// readiness check.
func redisCommand(addr, command string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte(command + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
