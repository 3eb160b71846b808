package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// IsTerminal reports whether w is a terminal (a character device), where a
// live progress line belongs.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ProgressLine formats a progress snapshot as one line.
func ProgressLine(p Progress) string {
	errPct := 0.0
	if p.Requests > 0 {
		errPct = 100 * float64(p.Errors) / float64(p.Requests)
	}
	return fmt.Sprintf("%5.1fs/%v  rate %.1f/s (target %.1f/s)  started %d  dropped %d  requests %d  errors %d (%.2f%%)  p99 %s  workers %d/%d",
		p.Elapsed.Seconds(), p.Duration, p.AchievedRate, p.TargetRate, p.Started, p.Dropped, p.Requests, p.Errors, errPct,
		fmtMS(ms(p.P99)), p.Busy, p.Workers)
}

// ShowProgress rewrites a progress line on w every interval until ctx ends,
// then ends the line. Use it only when w is a terminal.
func ShowProgress(ctx context.Context, w io.Writer, e *Executor, interval time.Duration) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(w, "\r\033[K%s\n", ProgressLine(e.Progress()))
			return
		case <-t.C:
			fmt.Fprintf(w, "\r\033[K%s", ProgressLine(e.Progress()))
		}
	}
}
