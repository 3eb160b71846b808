package realserver

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPostgresProcessDiesWithTheTestBinary is TestProcessDiesWithTheTestBinary for startAs: a server
// started under the postgres user's credentials (when the test runs as root) must still die with the
// test binary, which holds because the kernel applies the credentials before the parent-death signal.
func TestPostgresProcessDiesWithTheTestBinary(t *testing.T) {
	if os.Getenv("REALSERVER_PG_HELPER") == "1" {
		cred, err := postgresCredential()
		if err != nil {
			t.Fatal(err)
		}
		p := startAs(t, "orphan", os.Getenv("REALSERVER_PG_HELPER_DIR"), cred, "/bin/sleep", "60")
		os.Stdout.WriteString("pid " + strconv.Itoa(p.cmd.Process.Pid) + "\n")
		<-p.exited
		return
	}
	dir, err := os.MkdirTemp("", "pgorphan")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil { // the postgres user must be able to enter it
		t.Fatal(err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestPostgresProcessDiesWithTheTestBinary$")
	helper.Env = append(os.Environ(), "REALSERVER_PG_HELPER=1", "REALSERVER_PG_HELPER_DIR="+dir)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var line string
	for scan := bufio.NewScanner(out); scan.Scan(); {
		if line = scan.Text(); strings.HasPrefix(line, "pid ") {
			break
		}
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "pid "))
	if err != nil {
		_ = helper.Process.Kill()
		_ = helper.Wait()
		t.Fatalf("reading the helper's server pid from %q: %v", line, err)
	}
	if !running(pid) {
		t.Fatalf("the helper's server (pid %d) is not running", pid)
	}
	if cred, _ := postgresCredential(); cred != nil {
		if uid := procUID(t, pid); uid != int(cred.Uid) {
			t.Errorf("the server runs as uid %d, want the postgres user's %d", uid, cred.Uid)
		}
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	WaitFor(t, 5*time.Second, "the orphaned server to die", func() (bool, error) { return !running(pid), nil })
}

// procUID reads the real uid of pid from /proc/pid/status.
func procUID(t *testing.T, pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	t.Fatal("no Uid line in /proc status")
	return -1
}
