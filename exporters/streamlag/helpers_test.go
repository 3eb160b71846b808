package streamlag

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// registry returns a fresh registry holding s wrapped by the shared frame.
func registry(t *testing.T, s exporters.Scraper) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(s, 5*time.Second, nil))
	return reg
}

func newCollector(s exporters.Scraper) *exporters.Collector {
	return exporters.NewCollector(s, 5*time.Second, nil)
}

// scrape serves /metrics once and returns the text.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	w := httptest.NewRecorder()
	exporters.Handler(reg).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

// value returns the value of series (name{labels} exactly as exposed) in a
// scrape, and whether it is there.
func value(out, series string) (float64, bool) {
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

// lagSeries names the two series of a group.
func lagSeries(region, stream, group string) (messages, seconds string) {
	l := `{group="` + group + `",region="` + region + `",stream="` + stream + `"}` // sorted, as exposed
	return "carpool_stream_lag_messages" + l, "carpool_stream_lag_seconds" + l
}

// wantLag checks a group's two series in a scrape.
func wantLag(t *testing.T, out, region, stream, group string, messages, seconds float64) {
	t.Helper()
	ms, ss := lagSeries(region, stream, group)
	m, ok1 := value(out, ms)
	s, ok2 := value(out, ss)
	if !ok1 || !ok2 || m != messages || s < seconds-0.001 || s > seconds+0.001 {
		t.Fatalf("%s/%s: messages %v (%v) seconds %v (%v), want %v and %v\n%s", stream, group, m, ok1, s, ok2, messages, seconds, out)
	}
}

func wantUp(t *testing.T, out string, up float64) {
	t.Helper()
	if v, ok := value(out, `carpool_exporter_up{exporter="streamlag"}`); !ok || v != up {
		t.Fatalf("up %v (%v), want %v\n%s", v, ok, up, out)
	}
}

// promtoolCheck runs the real `promtool check metrics` over a scrape.
func promtoolCheck(t *testing.T, out string) {
	t.Helper()
	cmd := exec.Command(realserver.Binary(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(out)
	if b, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(b)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n%s", err, b, out)
	}
}

// proxy forwards TCP connections from a fixed 127.0.0.1 port to a server;
// down closes the port and every connection through it (the server looks
// down), up opens the same port again.
type proxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.DialTimeout("tcp", p.target, time.Second)
			if err != nil {
				_ = c.Close()
				continue
			}
			if !p.track(c, s) {
				return
			}
			p.wg.Go(func() { _, _ = io.Copy(s, c); _ = s.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, s); _ = c.Close() })
		}
	})
}

// track records a connection pair; false (and both closed) once down.
func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = true
	}
	return true
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) up() {
	p.t.Helper()
	var ln net.Listener
	var err error
	// The port was ours a moment ago; it may linger briefly.
	realserver.WaitFor(p.t, 5*time.Second, "the proxy's port "+p.addr+" again", func() (bool, error) {
		ln, err = net.Listen("tcp", p.addr)
		return err == nil, err
	})
	p.serve(ln)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

var errBoom = errors.New("boom")

func registryB(s exporters.Scraper) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewCollector(s, 5*time.Second, nil))
	return reg
}
