//go:build !linux

package loadgen

func newPreciseTimer() sleeper { return runtimeTimer{} }
