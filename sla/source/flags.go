package source

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Flags are the command-line flags of an external metric store. An empty
// --prometheus means "no external store": the command uses the embedded one.
type Flags struct {
	URL                   string
	Timeout               time.Duration
	Retries               int
	RetryBackoff          time.Duration
	BearerTokenFile       string
	BasicAuthUser         string
	BasicAuthPasswordFile string
	Headers               []string
	CAFile                string
	InsecureSkipVerify    bool
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.URL, "prometheus", "", "base URL of an external Prometheus-compatible query API (Prometheus, Thanos, VictoriaMetrics; a vmselect URL keeps its /select/<tenant>/prometheus path); empty: use the embedded store")
	fs.DurationVar(&f.Timeout, "prometheus-timeout", DefaultTimeout, "bound on one query attempt (request and server-side evaluation)")
	fs.IntVar(&f.Retries, "prometheus-retries", DefaultRetries, "retries of a query that failed transiently (5xx, timeout, refused connection); never for 4xx or bad_data; 0 turns retrying off")
	fs.DurationVar(&f.RetryBackoff, "prometheus-retry-backoff", DefaultBackoff, "wait before the first retry; doubles each retry up to 2s or 20× this, jittered")
	fs.StringVar(&f.BearerTokenFile, "prometheus-bearer-token-file", "", "file holding a bearer token sent as Authorization: Bearer (read on every request)")
	fs.StringVar(&f.BasicAuthUser, "prometheus-basic-auth-user", "", "HTTP basic auth user")
	fs.StringVar(&f.BasicAuthPasswordFile, "prometheus-basic-auth-password-file", "", "file holding the HTTP basic auth password (read on every request)")
	fs.StringArrayVar(&f.Headers, "prometheus-header", nil, `extra request header "Name: value", repeatable (such as "X-Scope-OrgID: carpool")`)
	fs.StringVar(&f.CAFile, "prometheus-ca-file", "", "CA certificate file to verify an https server (default: the system's roots)")
	fs.BoolVar(&f.InsecureSkipVerify, "prometheus-insecure-skip-verify", false, "do not verify an https server's certificate")
}

// External reports whether an external store was asked for (--prometheus set).
func (f *Flags) External() bool { return f.URL != "" }

// Config turns the flags into a validated HTTPConfig.
func (f *Flags) Config() (HTTPConfig, error) {
	cfg := HTTPConfig{
		URL:                   f.URL,
		Timeout:               f.Timeout,
		Retries:               f.Retries,
		NoRetries:             f.Retries == 0,
		Backoff:               f.RetryBackoff,
		BearerTokenFile:       f.BearerTokenFile,
		BasicAuthUser:         f.BasicAuthUser,
		BasicAuthPasswordFile: f.BasicAuthPasswordFile,
		CAFile:                f.CAFile,
		InsecureSkipVerify:    f.InsecureSkipVerify,
	}
	if f.Timeout <= 0 {
		return cfg, fmt.Errorf("source: --prometheus-timeout %v must be positive, such as 10s", f.Timeout)
	}
	if f.Retries < 0 {
		return cfg, fmt.Errorf("source: --prometheus-retries %d is negative: give 0 (no retries) or more", f.Retries)
	}
	if f.RetryBackoff <= 0 {
		return cfg, fmt.Errorf("source: --prometheus-retry-backoff %v must be positive, such as 100ms", f.RetryBackoff)
	}
	cfg.MaxBackoff = max(DefaultMaxBackoff, 20*f.RetryBackoff)
	for _, h := range f.Headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return cfg, fmt.Errorf(`source: --prometheus-header %q is not "Name: value"`, h)
		}
		if cfg.Headers == nil {
			cfg.Headers = map[string]string{}
		}
		cfg.Headers[name] = strings.TrimSpace(value)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}
