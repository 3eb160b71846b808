package telemetry

import (
	"bufio"
	"net"
	"net/http"
)

// StatusRecorder is an http.ResponseWriter that remembers the status a
// handler wrote and whether it took the connection over (a WebSocket
// upgrade, or the fault injector dropping it). It passes Flush and Hijack
// through, and Unwrap lets http.ResponseController reach the writer below.
// Middleware that measures requests (server spans, request histograms, the
// gateway's per-region outcomes) wraps the writer with it.
type StatusRecorder struct {
	http.ResponseWriter
	code     int
	hijacked bool
}

// NewStatusRecorder wraps w.
func NewStatusRecorder(w http.ResponseWriter) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w}
}

// WriteHeader implements http.ResponseWriter. The first final status (or
// 101 Switching Protocols) is the one recorded.
func (w *StatusRecorder) WriteHeader(code int) {
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *StatusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Status is the status written: 200 when the handler wrote nothing, 101
// when it hijacked the connection without writing one.
func (w *StatusRecorder) Status() int {
	switch {
	case w.code != 0:
		return w.code
	case w.hijacked:
		return http.StatusSwitchingProtocols
	}
	return http.StatusOK
}

// Hijacked reports whether the handler took the connection over.
func (w *StatusRecorder) Hijacked() bool { return w.hijacked }

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *StatusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher when the underlying writer does.
func (w *StatusRecorder) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController calls to flush.
func (w *StatusRecorder) FlushError() error {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker when the underlying writer does.
func (w *StatusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, brw, err
}
