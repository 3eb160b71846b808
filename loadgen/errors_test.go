package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestKindClassifiesFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	_, refused := http.Get("http://" + closedAddr + "/")

	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+closedAddr, nil)
	_, timedOut := http.DefaultClient.Do(req)

	cases := map[string]struct {
		err  error
		want string
	}{
		"A refused connection is conn_refused.":     {refused, KindConnRefused},
		"A request past its deadline is a timeout.": {timedOut, KindTimeout},
		"A 503 is http_5xx.":                        {StatusError(503, "busy"), KindHTTP5xx},
		"A 404 is http_4xx.":                        {StatusError(404, ""), KindHTTP4xx},
		"A 302 is http_other.":                      {StatusError(302, ""), KindHTTPOther},
		"A kind survives wrapping.":                 {fmt.Errorf("step: %w", Errorf("grpc_unavailable", "down")), "grpc_unavailable"},
		"Another network error is conn_error.":      {&net.OpError{Op: "read", Err: errors.New("x")}, KindConnError},
		"An unknown error is other.":                {errors.New("boom"), KindOther},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Kind(c.err); got != c.want {
				t.Errorf("Kind(%v) = %s, want %s", c.err, got, c.want)
			}
		})
	}
	var e *Error
	if !errors.As(StatusError(404, "no"), &e) || e.Status != 404 {
		t.Errorf("StatusError keeps the status: %+v", e)
	}
}
