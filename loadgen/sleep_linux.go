//go:build linux

package loadgen

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// preciseTimer sleeps by reading a timerfd through the runtime's poller:
// the goroutine parks (no thread is blocked), and an idle poller wakes it
// within microseconds of the deadline, where the runtime's own timers round
// a sub-millisecond wait of an idle process up to 1 ms.
type preciseTimer struct {
	fd  int
	f   *os.File
	buf [8]byte
}

func newPreciseTimer() sleeper {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return runtimeTimer{}
	}
	return &preciseTimer{fd: fd, f: os.NewFile(uintptr(fd), "loadgen-timerfd")}
}

func (t *preciseTimer) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(t.fd, 0, &spec, nil); err != nil {
		time.Sleep(d)
		return
	}
	// The read returns at the timerfd's expiry, which wakes a poller idle in
	// epoll_wait at once, or at the read deadline, the same instant on the
	// runtime's timers, which a busy scheduler checks at every switch:
	// whichever comes first.
	_ = t.f.SetReadDeadline(time.Now().Add(d))
	_, _ = t.f.Read(t.buf[:])
}

func (t *preciseTimer) close() { _ = t.f.Close() }
