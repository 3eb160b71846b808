package report

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Defaults of Config.
const (
	DefaultMaxWindow       = 400 * 24 * time.Hour
	DefaultMaxIncidents    = 500
	DefaultMaxHours        = 31 * 24
	DefaultMaxPoints       = 2000
	DefaultQueryTimeout    = 30 * time.Second
	DefaultRefreshInterval = 5 * time.Second
	// MinTokenLength is the shortest bearer token accepted from the token file.
	MinTokenLength = 16
	maxBody        = 16 << 10
	maxQuery       = 4 << 10
)

// Config configures the report API and status page. Zero fields take the
// defaults above.
type Config struct {
	// Spec is the SLA spec (objectives, weights, credits, DR objectives).
	Spec *spec.Spec
	// History answers the report's questions about the past (required).
	History History
	// Live answers GET /api/v1/live; without it that route answers 503.
	Live Live
	// Faults takes POST /api/v1/faults; without it that route answers 503.
	Faults Faults
	// Drills takes POST /api/v1/drills (drill results for the RPO/RTO
	// compliance); without it that route answers 503.
	Drills DrillRecorder
	// TokenFile holds bearer tokens, one per line; blank lines and lines
	// starting with # are ignored. Without tokens every write is refused.
	TokenFile string
	// Tokens are more bearer tokens (for tests and embedding).
	Tokens []string
	// ReadAuth requires a token for reads too. Without it reads are
	// anonymous from loopback clients (and from anywhere with
	// AnonymousRemoteReads); the status page's HTML, its scripts and the
	// OpenAPI document are always public.
	ReadAuth             bool
	AnonymousRemoteReads bool
	// MaxWindow is the longest report window (default 400 days).
	MaxWindow time.Duration
	// MaxIncidents caps the incidents of one report (default 500).
	MaxIncidents int
	// MaxHours is the longest timeseries span in hours (default 744, 31 days).
	MaxHours int
	// MaxPoints caps the buckets of one timeseries (default 2000).
	MaxPoints int
	// QueryTimeout bounds each request's reads (default 30s).
	QueryTimeout time.Duration
	// RefreshInterval is how often the status page reloads (default 5s).
	RefreshInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives failed reads (default: discard).
	Log *slog.Logger
	// Registerer, when set, receives the API's request metrics.
	Registerer prometheus.Registerer
}

func (c *Config) defaults() {
	if c.MaxWindow == 0 {
		c.MaxWindow = DefaultMaxWindow
	}
	if c.MaxIncidents == 0 {
		c.MaxIncidents = DefaultMaxIncidents
	}
	if c.MaxHours == 0 {
		c.MaxHours = DefaultMaxHours
	}
	if c.MaxPoints == 0 {
		c.MaxPoints = DefaultMaxPoints
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every field that is wrong and what to do about it. It
// reads the token file.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("report: "+format, args...)) }
	if c.Spec == nil {
		add("Spec is nil; load the SLA spec (spec.Load) and pass it")
	}
	if c.History == nil {
		add("History is nil; pass the ClickHouse history (chstore.New) the report reads from")
	}
	if c.MaxWindow < 24*time.Hour {
		add("MaxWindow is %s; allow at least 24h (the default is 400 days)", c.MaxWindow)
	}
	if c.MaxIncidents < 1 {
		add("MaxIncidents is %d; allow at least 1 (the default is %d)", c.MaxIncidents, DefaultMaxIncidents)
	}
	if c.MaxHours < 1 {
		add("MaxHours is %d; allow at least 1 (the default is %d)", c.MaxHours, DefaultMaxHours)
	}
	if c.MaxPoints < 24 {
		add("MaxPoints is %d; allow at least 24 so a day fits in hourly points (the default is %d)", c.MaxPoints, DefaultMaxPoints)
	}
	if c.QueryTimeout < 0 {
		add("QueryTimeout is %s; give a positive timeout (the default is %s)", c.QueryTimeout, DefaultQueryTimeout)
	}
	if c.RefreshInterval < time.Second {
		add("RefreshInterval is %s; refresh the status page at most once a second (the default is %s)", c.RefreshInterval, DefaultRefreshInterval)
	}
	if c.ReadAuth && c.AnonymousRemoteReads {
		add("ReadAuth and AnonymousRemoteReads are both set; pick one")
	}
	if _, err := c.tokens(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tokens reads the token file and adds Tokens.
func (c *Config) tokens() ([]string, error) {
	var out []string
	if c.TokenFile != "" {
		data, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("report: reading TokenFile: %w (give a file with one bearer token per line)", err)
		}
		toks, err := ParseTokens(data)
		if err != nil {
			return nil, fmt.Errorf("report: TokenFile %s: %w", c.TokenFile, err)
		}
		out = append(out, toks...)
	}
	for i, t := range c.Tokens {
		if len(t) < MinTokenLength || strings.ContainsAny(t, " \t\r\n") {
			return nil, fmt.Errorf("report: Tokens[%d] is shorter than %d characters or holds white space; use a long random token", i, MinTokenLength)
		}
		out = append(out, t)
	}
	return out, nil
}

// NewToken returns a random bearer token (32 bytes, hex): what a demo on
// loopback prints for writes.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("report: generating a token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ParseTokens reads a token file: one token per line; blank lines and lines
// starting with # are skipped. A token shorter than MinTokenLength or with
// white space inside is an error naming its line.
func ParseTokens(data []byte) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < MinTokenLength || strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("line %d: a token must be at least %d characters without spaces; generate one with `openssl rand -hex 32`", n, MinTokenLength)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	return out, nil
}
