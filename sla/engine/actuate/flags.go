package actuate

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Flags are the pusher's command-line flags (`carpoolsla engine`).
type Flags struct {
	// Gateways are region=URL pairs, one per --gateway.
	Gateways  []string
	TokenFile string
	Timeout   time.Duration
	Attempts  int
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.Gateways, "gateway", nil, "a region's gateway to push route tables to, region=URL (repeat for every region; e.g. sh-a=http://127.0.0.1:18105)")
	fs.StringVar(&f.TokenFile, "admin-token-file", "", "file holding the gateways' admin bearer token (required with --gateway)")
	fs.DurationVar(&f.Timeout, "push-timeout", DefaultTimeout, "bound on one push attempt to one gateway")
	fs.IntVar(&f.Attempts, "push-attempts", DefaultAttempts, "attempts per gateway and table before the push counts as failed (network errors, timeouts and 5xx are retried with jittered backoff)")
}

// Enabled reports whether any gateway was given: without one the engine
// decides without pushing.
func (f *Flags) Enabled() bool { return len(f.Gateways) > 0 }

// Config turns the flags into a Config (without Registerer, Log or
// Client): it parses every --gateway and reads the token file. It does not
// validate the result; New does.
func (f *Flags) Config() (Config, error) {
	var errs []error
	cfg := Config{Timeout: f.Timeout, Attempts: f.Attempts}
	for _, g := range f.Gateways {
		region, u, ok := strings.Cut(g, "=")
		if !ok || strings.TrimSpace(region) == "" || strings.TrimSpace(u) == "" {
			errs = append(errs, fmt.Errorf("--gateway %q: write region=URL, e.g. sh-a=http://127.0.0.1:18105", g))
			continue
		}
		cfg.Gateways = append(cfg.Gateways, Gateway{Region: strings.TrimSpace(region), URL: strings.TrimSpace(u)})
	}
	switch {
	case f.TokenFile == "" && len(f.Gateways) > 0:
		errs = append(errs, errors.New("--admin-token-file is required with --gateway: the gateways' routing API needs their admin bearer token"))
	case f.TokenFile != "":
		b, err := os.ReadFile(f.TokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--admin-token-file: %w", err))
			break
		}
		cfg.Token = strings.TrimSpace(string(b))
		if cfg.Token == "" {
			errs = append(errs, fmt.Errorf("--admin-token-file %s is empty; put the gateways' admin token in it", f.TokenFile))
		}
	}
	if f.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--push-timeout is %s; give a positive duration such as 2s", f.Timeout))
	}
	if f.Attempts < 1 {
		errs = append(errs, fmt.Errorf("--push-attempts is %d; give at least 1", f.Attempts))
	}
	return cfg, errors.Join(errs...)
}
