package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// OutboxPath is the route of the outbox handler.
const OutboxPath = "/v1/replication/outbox"

// Defaults of HandlerConfig and HTTPSourceConfig.
const (
	DefaultMaxLimit         = 1000
	DefaultLimit            = 100
	DefaultMaxWait          = 10 * time.Second
	DefaultRequestTimeout   = 5 * time.Second
	DefaultMaxResponseBytes = 64 << 20
)

// HandlerConfig configures the outbox handler.
type HandlerConfig struct {
	// Outbox is the region's store. Required.
	Outbox OutboxReader
	// MaxLimit bounds the limit parameter; default DefaultMaxLimit.
	MaxLimit int
	// MaxWait bounds the wait parameter; default DefaultMaxWait.
	MaxWait time.Duration
	// Faults, when set, applies the region's faults for service
	// "replication" to every request (a down region drops the connection).
	Faults *faults.Injector
	// Logger receives internal errors; default discards.
	Logger *slog.Logger
}

func (c *HandlerConfig) defaults() {
	if c.MaxLimit == 0 {
		c.MaxLimit = DefaultMaxLimit
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration after defaults are filled in.
func (c HandlerConfig) Validate() error {
	switch {
	case c.Outbox == nil:
		return errors.New("outbox handler config: outbox is required")
	case c.MaxLimit < 1 || c.MaxLimit > store.MaxScanLimit:
		return fmt.Errorf("outbox handler config: max limit is %d; it must be in [1, %d]", c.MaxLimit, store.MaxScanLimit)
	case c.MaxWait < 0:
		return fmt.Errorf("outbox handler config: max wait is %v; it must not be negative", c.MaxWait)
	}
	return nil
}

// NewOutboxHandler serves a region's outbox for replicators in other
// processes:
//
//	GET /v1/replication/outbox?since=N&limit=M&wait=D
//
// answers a JSON Batch with up to M (default 100, at most MaxLimit) events
// after sequence number N (default 0), waiting up to D (a Go duration,
// default 0, at most MaxWait) for one when none is ready. Each event
// carries the W3C trace context of its write. Bad parameters answer 400
// with {"error", "field"}; an offset the outbox no longer holds answers 410
// and one beyond its high-water mark 409 (field "since"). Mount it at
// OutboxPath.
func NewOutboxHandler(cfg HandlerConfig) (http.Handler, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	src := NewLocalSource(cfg.Outbox)
	log := cfg.Logger.With("service", ServiceName, "region", cfg.Outbox.Region())
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "use GET", "method")
			return
		}
		q := r.URL.Query()
		since, err := uintParam(q, "since", 0, 1<<63)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), "since")
			return
		}
		limit, err := uintParam(q, "limit", DefaultLimit, uint64(cfg.MaxLimit))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), "limit")
			return
		}
		wait, err := durationParam(q, "wait", cfg.MaxWait)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), "wait")
			return
		}
		b, err := src.Pull(r.Context(), since, int(limit), wait)
		switch {
		case errors.Is(err, store.ErrTruncated):
			writeError(w, http.StatusGone, err.Error(), "since")
			return
		case errors.Is(err, store.ErrOffsetAhead):
			writeError(w, http.StatusConflict, err.Error(), "since")
			return
		case err != nil:
			log.Error("reading the outbox failed", "err", err)
			writeError(w, http.StatusInternalServerError, "reading the outbox failed", "")
			return
		}
		if b.Events == nil {
			b.Events = []store.Event{}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // values travel byte for byte
		if err := enc.Encode(b); err != nil {
			log.Error("encoding an outbox batch failed", "err", err)
			writeError(w, http.StatusInternalServerError, "encoding the outbox batch failed", "")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(buf.Bytes())
	})
	if cfg.Faults != nil {
		h = cfg.Faults.Middleware(ServiceName, h)
	}
	return h, nil
}

func uintParam(q url.Values, name string, def, maxV uint64) (uint64, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s must be a non-negative integer, got %q", name, s)
	}
	if v > maxV {
		return 0, fmt.Errorf("%s is %d; it must be at most %d", name, v, maxV)
	}
	return v, nil
}

func durationParam(q url.Values, name string, maxV time.Duration) (time.Duration, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s must be a non-negative Go duration such as \"2s\", got %q", name, s)
	}
	if v > maxV {
		return 0, fmt.Errorf("%s is %v; it must be at most %v", name, v, maxV)
	}
	return v, nil
}

// apiError is the JSON body of an error answer.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, code int, msg, field string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(apiError{Error: msg, Field: field})
}

// HTTPSourceConfig configures an HTTPSource.
type HTTPSourceConfig struct {
	// BaseURL is the source region's replication server, such as
	// "http://127.0.0.1:8081". Required.
	BaseURL string
	// Client sends the requests; default a new http.Client.
	Client *http.Client
	// RequestTimeout bounds a request beyond its long-poll wait; default
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxResponseBytes bounds a response body; default
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
}

// HTTPSource reads a source region's outbox over HTTP from its
// OutboxHandler. It implements Source.
type HTTPSource struct {
	cfg      HTTPSourceConfig
	endpoint string
}

// NewHTTPSource returns a Source reading the outbox served at cfg.BaseURL.
func NewHTTPSource(cfg HTTPSourceConfig) (*HTTPSource, error) {
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("replication HTTP source: base URL %q must be an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.RequestTimeout < 0 || cfg.MaxResponseBytes < 0 {
		return nil, errors.New("replication HTTP source: request timeout and max response bytes must not be negative")
	}
	return &HTTPSource{cfg: cfg, endpoint: strings.TrimRight(cfg.BaseURL, "/") + OutboxPath}, nil
}

// Pull implements Source. A 410 answer wraps store.ErrTruncated and a 409
// store.ErrOffsetAhead.
func (s *HTTPSource) Pull(ctx context.Context, offset uint64, limit int, wait time.Duration) (Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+s.cfg.RequestTimeout)
	defer cancel()
	q := url.Values{}
	q.Set("since", strconv.FormatUint(offset, 10))
	q.Set("limit", strconv.Itoa(limit))
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return Batch{}, fmt.Errorf("building the outbox request: %w", err)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return Batch{}, fmt.Errorf("requesting the outbox at %s: %w", s.endpoint, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, s.cfg.MaxResponseBytes+1)
	if resp.StatusCode != http.StatusOK {
		var e apiError
		raw, _ := io.ReadAll(io.LimitReader(body, 64<<10))
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		err := fmt.Errorf("outbox at %s answered %s: %s", s.endpoint, resp.Status, e.Error)
		switch resp.StatusCode {
		case http.StatusGone:
			err = fmt.Errorf("%w: %w", err, store.ErrTruncated)
		case http.StatusConflict:
			err = fmt.Errorf("%w: %w", err, store.ErrOffsetAhead)
		}
		return Batch{}, err
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return Batch{}, fmt.Errorf("reading the outbox answer from %s: %w", s.endpoint, err)
	}
	if int64(len(raw)) > s.cfg.MaxResponseBytes {
		return Batch{}, fmt.Errorf("the outbox answer from %s exceeds %d bytes; lower the limit", s.endpoint, s.cfg.MaxResponseBytes)
	}
	var b Batch
	if err := json.Unmarshal(raw, &b); err != nil {
		return Batch{}, fmt.Errorf("decoding the outbox answer from %s: %w", s.endpoint, err)
	}
	if len(b.Events) > limit {
		return Batch{}, fmt.Errorf("the outbox at %s returned %d events for a limit of %d", s.endpoint, len(b.Events), limit)
	}
	return b, nil
}
