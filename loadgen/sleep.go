package loadgen

import "time"

// sleeper sleeps short waits precisely (see Config.PreciseWindow).
type sleeper interface {
	sleep(d time.Duration)
	close()
}

// runtimeTimer is the fallback: the runtime's own timers.
type runtimeTimer struct{}

func (runtimeTimer) sleep(d time.Duration) { time.Sleep(d) }
func (runtimeTimer) close()                {}
