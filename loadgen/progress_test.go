package loadgen_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/loadgen"
)

// TestProgressLineFollowsTheRun shows the live line during a run: it is
// rewritten in place (\r) and ends with a newline and the final numbers.
func TestProgressLineFollowsTheRun(t *testing.T) {
	srv := newStallServer(t)
	ex, err := loadgen.New(loadgen.Config{Schedule: loadgen.Constant(100, time.Second), Scenarios: httpScenario(t, srv.URL, 20), Workers: 5})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); loadgen.ShowProgress(ctx, &buf, ex, 200*time.Millisecond) }()
	if err := ex.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	out := buf.String()
	if n := strings.Count(out, "\r"); n < 3 {
		t.Errorf("%d progress updates in a 1s run every 200ms:\n%q", n, out)
	}
	last := out[strings.LastIndex(out, "\r")+1:]
	for _, want := range []string{"started 100", "dropped 0", "requests 100", "errors 0 (0.00%)", "rate 100.0/s"} {
		if !strings.Contains(last, want) {
			t.Errorf("the final line lacks %q: %q", want, last)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Error("the progress line is not ended")
	}
	p := ex.Progress()
	if !p.Done || p.Started != 100 || p.Elapsed < 990*time.Millisecond {
		t.Errorf("progress after the run: %+v", p)
	}
}

func TestOnlyATerminalGetsTheProgressLine(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if loadgen.IsTerminal(f) || loadgen.IsTerminal(&bytes.Buffer{}) {
		t.Error("a file or a buffer was taken for a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !loadgen.IsTerminal(tty) {
			t.Error("/dev/tty is a terminal")
		}
	}
}
