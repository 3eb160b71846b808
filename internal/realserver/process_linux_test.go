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

// TestProcessDiesWithTheTestBinary runs this test binary again as a helper that starts a server and
// prints its pid, kills the helper with SIGKILL (no cleanup runs) and checks that the server died too.
func TestProcessDiesWithTheTestBinary(t *testing.T) {
	if os.Getenv("REALSERVER_HELPER") == "1" {
		// The parent's folder: this process dies without cleaning up its own.
		p := start(t, "orphan", os.Getenv("REALSERVER_HELPER_DIR"), "/bin/sleep", "60")
		os.Stdout.WriteString("pid " + strconv.Itoa(p.cmd.Process.Pid) + "\n")
		<-p.exited
		return
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestProcessDiesWithTheTestBinary$")
	helper.Env = append(os.Environ(), "REALSERVER_HELPER=1", "REALSERVER_HELPER_DIR="+t.TempDir())
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
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	WaitFor(t, 5*time.Second, "the orphaned server to die", func() (bool, error) { return !running(pid), nil })
}

// running reports whether pid is a live process (an exited one not yet reaped is not).
func running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	s = s[strings.LastIndexByte(s, ')')+2:]
	return !strings.HasPrefix(s, "Z")
}
