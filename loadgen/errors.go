package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// Error kinds the executor and the scenarios report. gRPC failures are
// "grpc_" plus the lower-case code name (grpc_unavailable,
// grpc_deadline_exceeded, ...).
const (
	KindHTTP5xx      = "http_5xx"
	KindHTTP4xx      = "http_4xx"
	KindHTTPOther    = "http_other" // an unexpected 1xx or 3xx
	KindTimeout      = "timeout"
	KindConnRefused  = "conn_refused"
	KindConnReset    = "conn_reset"
	KindConnError    = "conn_error"
	KindWSClosed     = "ws_closed"
	KindWSErrorReply = "ws_error_reply"
	KindBadResponse  = "bad_response"
	KindOther        = "other"
)

// Error is a failed request with its kind. Scenarios return it (or any
// error, which Kind classifies) from a step.
type Error struct {
	Kind string
	// Status is the HTTP status of a StatusError (0 otherwise).
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Kind + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an Error of a kind.
func Errorf(kind, format string, args ...any) error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// StatusError is an HTTP answer with an unexpected status: http_5xx,
// http_4xx or http_other.
func StatusError(code int, body string) error {
	kind := KindHTTPOther
	switch {
	case code >= 500:
		kind = KindHTTP5xx
	case code >= 400:
		kind = KindHTTP4xx
	}
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return &Error{Kind: kind, Status: code, Err: fmt.Errorf("HTTP %d: %s", code, body)}
}

// Kind classifies a request's error: the kind of an *Error in its chain;
// otherwise timeout (a deadline or a network timeout), conn_refused,
// conn_reset (reset, broken pipe or an unexpected EOF), conn_error (any
// other network error) or other.
func Kind(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindConnRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF):
		return KindConnReset
	}
	var op *net.OpError
	if errors.As(err, &op) || errors.As(err, &ne) {
		return KindConnError
	}
	return KindOther
}
