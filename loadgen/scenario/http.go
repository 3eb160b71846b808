package scenario

import (
	"context"
	"io"
	"net/http"

	"github.com/carpoolsla/carpoolsla/loadgen"
)

// HTTP is the http scenario: one GET of the target URL per iteration; any
// 2xx is a success.
type HTTP struct {
	client *http.Client
	url    string
}

// NewHTTP returns the http scenario for o.Target.
func NewHTTP(o Options) *HTTP {
	o.defaults()
	return &HTTP{client: o.HTTP, url: o.Target}
}

// Name is "http".
func (h *HTTP) Name() string { return "http" }

// Operations lists the one operation, "get".
func (h *HTTP) Operations() []string { return []string{"get"} }

// Run GETs the URL.
func (h *HTTP) Run(ctx context.Context, it *loadgen.Iteration) error {
	return it.Step(ctx, "get", func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
		if err != nil {
			return err
		}
		resp, err := h.client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode/100 != 2 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			drain(resp.Body)
			return loadgen.StatusError(resp.StatusCode, string(b))
		}
		drain(resp.Body)
		return nil
	})
}
