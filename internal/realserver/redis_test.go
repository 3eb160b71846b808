package realserver

import (
	"testing"
)

func TestStartRedis(t *testing.T) {
	t.Parallel()
	var r *Redis
	t.Run("server", func(t *testing.T) {
		r = StartRedis(t)
		f := func(command, want string) {
			t.Helper()
			got, err := redisCommand(r.Addr, command)
			if err != nil || got != want {
				t.Errorf("%s answered %q, %v; want %q", command, got, err, want)
			}
		}
		f("XADD orders * id 1", "$15") // the bulk string's length: a millisecond id, "-0"
		f("XGROUP CREATE orders sync 0", "+OK")
		f("CONFIG GET save", "*2")
	})
	select {
	case <-r.proc.exited:
	default:
		t.Fatal("redis still runs after its test's cleanup")
	}
	if _, err := redisCommand(r.Addr, "PING"); err == nil {
		t.Error("redis still answers after its test's cleanup")
	}
}
