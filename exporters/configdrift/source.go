package configdrift

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// DefaultMaxBytes bounds a fetched configuration.
const DefaultMaxBytes = 16 << 20

// Fetcher fetches one region's raw configuration.
type Fetcher interface {
	Fetch(ctx context.Context) ([]byte, error)
}

// FetcherFunc adapts a function (an in-process configuration) to Fetcher.
type FetcherFunc func(ctx context.Context) ([]byte, error)

// Fetch implements Fetcher.
func (f FetcherFunc) Fetch(ctx context.Context) ([]byte, error) { return f(ctx) }

// FileFetcher reads a file on every fetch.
type FileFetcher struct {
	Path     string
	MaxBytes int64 // default DefaultMaxBytes
}

// Fetch implements Fetcher.
func (f FileFetcher) Fetch(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Path, err)
	}
	defer fh.Close()
	b, err := readLimited(fh, f.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Path, err)
	}
	return b, nil
}

// HTTPFetcher GETs a URL on every fetch; anything but 200 is an error.
type HTTPFetcher struct {
	URL      string
	Client   *http.Client // default http.DefaultClient; the scrape's context bounds it
	MaxBytes int64        // default DefaultMaxBytes
}

// Fetch implements Fetcher.
func (f HTTPFetcher) Fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", f.URL, err)
	}
	req.Header.Set("Accept", "application/json, application/yaml;q=0.9, */*;q=0.5")
	req.Header.Set("User-Agent", "carpoolsla-configdrift-exporter")
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", f.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("fetching %s: status %s", f.URL, resp.Status)
	}
	b, err := readLimited(resp.Body, f.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", f.URL, err)
	}
	return b, nil
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes; raise the limit if it is meant to be", limit)
	}
	return b, nil
}

// ParseSource makes the Fetcher of a source: an http:// or https:// URL, a
// file:// URL, or a file path.
func ParseSource(src string, client *http.Client, maxBytes int64) (Fetcher, error) {
	src = strings.TrimSpace(src)
	if src == "" {
		return nil, errors.New("an empty source; give a file path or an http(s) URL")
	}
	if !strings.Contains(src, "://") {
		return FileFetcher{Path: src, MaxBytes: maxBytes}, nil
	}
	u, err := url.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", src, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("source %q has no host", src)
		}
		return HTTPFetcher{URL: src, Client: client, MaxBytes: maxBytes}, nil
	case "file":
		if u.Path == "" {
			return nil, fmt.Errorf("source %q has no path", src)
		}
		return FileFetcher{Path: u.Path, MaxBytes: maxBytes}, nil
	default:
		return nil, fmt.Errorf("source %q: scheme %q is not http, https or file", src, u.Scheme)
	}
}
