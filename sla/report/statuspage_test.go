package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/html"

	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/report/memhistory"
)

// chromiumBin finds headless Chromium, or fails the test with how to install it.
func chromiumBin(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	t.Fatal("chromium not found: run `deploy/local/install.sh chromium` as root (apt-get install chromium)")
	return ""
}

// chromium runs headless Chromium once at a window size and returns its
// standard output (the DOM for --dump-dom).
func chromium(t *testing.T, width, height int, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
		"--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--log-level=3", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--window-size=%d,%d", width, height),
		"--virtual-time-budget=8000",
	}
	cmd := exec.CommandContext(ctx, chromiumBin(t), append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// renderCLI loads the page with Chromium's command line, as the brief and
// ENV-FACTS describe it: --dump-dom after --virtual-time-budget (the page's
// fetches complete in virtual time), then --screenshot at the window size.
func renderCLI(t *testing.T, url string, width, height int) (dom, shot []byte) {
	t.Helper()
	dom = chromium(t, width, height, "--dump-dom", url)
	file := filepath.Join(t.TempDir(), "page.png")
	chromium(t, width, height, "--screenshot="+file, url)
	shot, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	return dom, shot
}

// renderCDP loads the page through the DevTools protocol with the viewport
// emulated (a phone, touch and meta viewport honoured). Chromium clamps a
// headless window to at least 500 CSS pixels wide (--window-size=390,844
// lays the page out 500 wide and crops the screenshot), so a phone's width
// needs Emulation.setDeviceMetricsOverride.
func renderCDP(t *testing.T, url string, width, height int) (dom, shot []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumBin(t)), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("hide-scrollbars", true), chromedp.WindowSize(width, height),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	fail := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("chromium (DevTools) at %dx%d: %s: %v", width, height, step, err)
		}
	}
	fail("loading the page", chromedp.Do(browser,
		chromedp.EmulateViewport(int64(width), int64(height), chromedp.EmulateMobile, chromedp.EmulateScale(1)),
		chromedp.Navigate(url),
	))
	_, err := chromedp.Run(browser, chromedp.Poll[bool](`document.body.dataset.loaded === "true"`, chromedp.WithPollingTimeout(60*time.Second)))
	fail("waiting for the page's first refresh", err)
	html, err := chromedp.Run(browser, chromedp.Evaluate[string]("document.documentElement.outerHTML"))
	fail("reading the DOM", err)
	shot, err = chromedp.Run(browser, chromedp.CaptureScreenshot())
	fail("taking the screenshot", err)
	return []byte(html), shot
}

// liveFixture is what the fake engine reports.
func liveFixture() report.LiveStatus {
	c := func(f float64) *float64 { return &f }
	return report.LiveStatus{
		At: at(10, 1, 1, 29, 55), Panic: false, CompositePercent: c(99.3751),
		Regions: []report.LiveRegion{
			{Name: "r1", Health: 96.5, Breaker: report.BreakerClosed, Weight: 73.4, CompositePercent: c(99.9312),
				Components: map[string]float64{"sync_lag": 100, "api_success": 88.25, "stream_consistency": 100, "config_consistency": 100}},
			{Name: "r2", Health: 41.25, Breaker: report.BreakerOpen, Weight: 0, CompositePercent: nil,
				Components: map[string]float64{"sync_lag": 12.5, "api_success": 0, "stream_consistency": 100, "config_consistency": 100}},
		},
	}
}

type fixedLive struct{ st report.LiveStatus }

func (f fixedLive) Live(ctx context.Context) (report.LiveStatus, error) { return f.st, nil }

// testids indexes the elements of a DOM by data-testid (the first of each).
func testids(t *testing.T, dom []byte) (map[string]*html.Node, *html.Node) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*html.Node{}
	var body *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if n.Data == "body" {
				body = n
			}
			if id := attr(n, "data-testid"); id != "" {
				if _, dup := out[id]; !dup {
					out[id] = n
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out, body
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}

func count(root *html.Node, match func(*html.Node) bool) int {
	n := 0
	var walk func(*html.Node)
	walk = func(x *html.Node) {
		if x.Type == html.ElementNode && match(x) {
			n++
		}
		for c := x.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	return n
}

func pct(v *float64, digits int) string {
	if v == nil {
		return "–"
	}
	return jsFixed(*v, digits) + " %"
}

// jsFixed formats x as JavaScript's Number.prototype.toFixed does: from the
// exact binary value, a tie rounding away from zero (41.25 → "41.3", where
// Go's %.1f gives "41.2").
func jsFixed(x float64, digits int) string {
	neg := x < 0
	if neg {
		x = -x
	}
	scale := new(big.Float).SetPrec(512).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil))
	n := new(big.Float).SetPrec(512).SetFloat64(x)
	n.Mul(n, scale).Add(n, big.NewFloat(0.5))
	i, _ := n.Int(nil)
	s := i.String()
	if digits > 0 {
		for len(s) <= digits {
			s = "0" + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if neg && strings.Trim(s, "0.") != "" {
		s = "-" + s
	}
	return s
}

func TestTheStatusPageShowsTheAPIsNumbersOnALaptopAndAPhone(t *testing.T) {
	st := history(t)
	now := at(10, 1, 1, 30, 0)
	h, err := report.New(report.Config{
		Spec: fixtureSpec(t), History: st, Live: fixedLive{liveFixture()}, Tokens: []string{"status-page-token-0123456789"},
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // 127.0.0.1
	defer srv.Close()
	api := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var rep report.SLAReport
	var live report.LiveStatus
	var ts report.Timeseries
	api("/api/v1/sla", &rep)
	api("/api/v1/live", &live)
	api("/api/v1/sla/timeseries?hours=24", &ts)

	for _, size := range []struct {
		name          string
		width, height int
		render        func(t *testing.T, url string, width, height int) (dom, shot []byte)
	}{{"laptop", 1280, 800, renderCLI}, {"phone", 390, 844, renderCDP}} {
		t.Run(fmt.Sprintf("At %dx%d (%s).", size.width, size.height, size.name), func(t *testing.T) {
			dom, data := size.render(t, srv.URL+"/", size.width, size.height)
			el, body := testids(t, dom)
			if body == nil || attr(body, "data-loaded") != "true" {
				t.Fatalf("the page did not finish loading; DOM:\n%s", dom)
			}
			if s := el["status"]; s == nil || !strings.HasPrefix(text(s), "updated") {
				t.Fatalf("status line %q, want \"updated …\" (no API error)", text(s))
			}
			// value checks one element: data-value must be the API's number, the text its rendering.
			value := func(id string, want *float64, wantText string) {
				t.Helper()
				n := el[id]
				if n == nil {
					t.Errorf("no element %s", id)
					return
				}
				got := attr(n, "data-value")
				if want == nil {
					if got != "" {
						t.Errorf("%s data-value %q, want empty (null)", id, got)
					}
				} else if f, err := strconv.ParseFloat(got, 64); err != nil || f != *want {
					t.Errorf("%s data-value %q, want %v", id, got, *want)
				}
				if text(n) != wantText {
					t.Errorf("%s shows %q, want %q", id, text(n), wantText)
				}
			}
			f := func(x float64) *float64 { return &x }

			value("sla-attainment", rep.SLA.AttainmentPercent, pct(rep.SLA.AttainmentPercent, 4))
			value("sla-objective", rep.SLA.ObjectivePercent, pct(rep.SLA.ObjectivePercent, 2))
			value("sla-credit", f(rep.SLA.CreditPercent), strconv.FormatFloat(rep.SLA.CreditPercent, 'f', -1, 64)+" %")
			value("sla-downtime", f(rep.DowntimeMinutes), strconv.FormatFloat(rep.DowntimeMinutes, 'f', -1, 64)+" min")
			value("sla-incidents", f(float64(rep.IncidentsTotal)), strconv.Itoa(rep.IncidentsTotal))
			value("dr-summary", f(float64(rep.DR.WithinObjectives)), fmt.Sprintf("%d / %d", rep.DR.WithinObjectives, rep.DR.Drills))
			if got := attr(el["sla-met"], "data-value"); got != strconv.FormatBool(rep.SLA.Met) {
				t.Errorf("sla-met %q, want %v", got, rep.SLA.Met)
			}
			if !strings.Contains(text(el["sla-met"]), "order/availability") {
				t.Errorf("sla-met %q does not name the key SLO that vetoed", text(el["sla-met"]))
			}
			for _, s := range rep.SLOs {
				id := "slo-" + s.Service + "-" + s.SLO
				value(id+"-attainment", s.AttainmentPercent, pct(s.AttainmentPercent, 4))
				value(id+"-budget", s.ErrorBudgetUsed, jsFixed(100**s.ErrorBudgetUsed, 1)+" %")
				value(id+"-bad-minutes", f(float64(s.BadMinutes)), strconv.Itoa(s.BadMinutes))
				value(id+"-objective", f(s.ObjectivePercent), strconv.FormatFloat(s.ObjectivePercent, 'f', -1, 64)+" %")
				if got := attr(el[id+"-met"], "data-value"); got != strconv.FormatBool(s.Met) {
					t.Errorf("%s-met %q, want %v", id, got, s.Met)
				}
			}
			for _, s := range rep.Services {
				value("service-"+s.Service+"-attainment", s.AttainmentPercent, pct(s.AttainmentPercent, 4))
				value("service-"+s.Service+"-downtime", f(float64(s.DowntimeMinutes)), strconv.Itoa(s.DowntimeMinutes))
			}
			value("live-composite", live.CompositePercent, pct(live.CompositePercent, 4))
			for _, r := range live.Regions {
				p := "region-" + r.Name
				value(p+"-health", f(r.Health), jsFixed(r.Health, 1))
				value(p+"-weight", f(r.Weight), jsFixed(r.Weight, 1))
				value(p+"-composite", r.CompositePercent, pct(r.CompositePercent, 4))
				if n := el[p+"-breaker"]; n == nil || attr(n, "data-value") != r.Breaker || text(n) != r.Breaker {
					t.Errorf("%s-breaker does not show %q", p, r.Breaker)
				}
				for name, score := range r.Components {
					value(p+"-component-"+name, f(score), jsFixed(score, 0))
				}
			}
			if n := count(el["incident-list"], func(n *html.Node) bool { return attr(n, "data-testid") == "incident" }); n != len(rep.Incidents) {
				t.Errorf("%d incidents listed, want %d", n, len(rep.Incidents))
			}
			// The chart: one line per series, with as many points as the API has values.
			for _, s := range ts.Series {
				points := 0
				for _, v := range s.Values {
					if v != nil {
						points++
					}
				}
				found := count(el["chart"], func(n *html.Node) bool {
					return n.Data == "path" && attr(n, "data-series") == s.Name && attr(n, "data-points") == strconv.Itoa(points)
				})
				if found != 1 || points == 0 {
					t.Errorf("series %s: %d paths with %d points, want 1 (points must not be 0)", s.Name, found, points)
				}
			}
			// Readable on this screen: nothing wider than the viewport.
			vw, _ := strconv.Atoi(attr(body, "data-viewport-width"))
			sw, _ := strconv.Atoi(attr(body, "data-scroll-width"))
			if vw != size.width || sw > vw {
				t.Errorf("viewport %d px wide, page %d px wide; want %d and no sideways scroll", vw, sw, size.width)
			}

			shot := filepath.Join(t.TempDir(), size.name+".png")
			if err := os.WriteFile(shot, data, 0o644); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("the screenshot is not a PNG: %v", err)
			}
			if b := img.Bounds(); b.Dx() != size.width || b.Dy() != size.height {
				t.Errorf("screenshot %dx%d, want %dx%d", b.Dx(), b.Dy(), size.width, size.height)
			}
			// Not a blank page: many distinct colours.
			colours := map[uint32]bool{}
			for y := 0; y < img.Bounds().Dy(); y += 4 {
				for x := 0; x < img.Bounds().Dx(); x += 4 {
					r, g, b, _ := img.At(x, y).RGBA()
					colours[r>>8<<16|g>>8<<8|b>>8] = true
				}
			}
			if len(colours) < 20 {
				t.Errorf("the screenshot has %d colours; it looks blank", len(colours))
			}
			if dir := os.Getenv("REPORT_SCREENSHOTS"); dir != "" {
				_ = os.WriteFile(filepath.Join(dir, size.name+".png"), data, 0o644)
			}
			t.Logf("screenshot %s (%d bytes)", shot, len(data))
		})
	}
}

func TestJSFixedRoundsAsJavaScriptDoes(t *testing.T) {
	// Node: (41.25).toFixed(1) "41.3", (12.5).toFixed(0) "13", (1.005).toFixed(2) "1.00" (1.005 is
	// 1.00499999999999989… in binary), (99.97).toFixed(4) "99.9700", (0.05).toFixed(1) "0.1", (-2.5).toFixed(0) "-3".
	for x, want := range map[float64]map[int]string{41.25: {1: "41.3"}, 12.5: {0: "13"}, 1.005: {2: "1.00"}, 99.97: {4: "99.9700"}, 0.05: {1: "0.1"}, -2.5: {0: "-3"}, 0: {2: "0.00"}} {
		for d, w := range want {
			if got := jsFixed(x, d); got != w {
				t.Errorf("jsFixed(%v, %d) = %q, want %q", x, d, got, w)
			}
		}
	}
}

// faultyLive is a live source whose regions show the faults in force, and
// the fault forwarder that sets them: as the demo's regions and engine do.
type faultyLive struct {
	mu     sync.Mutex
	st     report.LiveStatus
	posted []report.FaultAction
}

func (f *faultyLive) Live(ctx context.Context) (report.LiveStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.Regions = slices.Clone(f.st.Regions)
	return st, nil
}

func (f *faultyLive) set(region string, faults []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.st.Regions {
		if f.st.Regions[i].Name == region {
			f.st.Regions[i].Faults = faults
		}
	}
}

func (f *faultyLive) Inject(ctx context.Context, region string, fr report.FaultRequest) error {
	f.mu.Lock()
	f.posted = append(f.posted, report.FaultAction{Region: region, Action: "inject", Fault: fr})
	f.mu.Unlock()
	f.set(region, []string{fmt.Sprintf("%s: +%dms latency", fr.Service, fr.LatencyMS)})
	return nil
}

func (f *faultyLive) Clear(ctx context.Context, region string) error {
	f.mu.Lock()
	f.posted = append(f.posted, report.FaultAction{Region: region, Action: "clear"})
	f.mu.Unlock()
	f.set(region, []string{})
	return nil
}

// A fault typed into the status page's form, with the token, reaches the
// fault forwarder, and the page shows it in the region's card at its next
// refresh (1 s here); Clear takes it away. Without the token the form says
// it was refused. Headless Chromium drives the form.
func TestAFaultFromTheStatusPageShowsOnThePageWithinSeconds(t *testing.T) {
	st, err := memhistory.New(memhistory.Config{}) // the history plays no part here
	if err != nil {
		t.Fatal(err)
	}
	now := at(10, 1, 1, 30, 0)
	lv := &faultyLive{st: liveFixture()}
	lv.set("r1", []string{})
	const token = "status-page-token-0123456789"
	h, err := report.New(report.Config{Spec: fixtureSpec(t), History: st, Live: lv, Faults: lv, Tokens: []string{token},
		RefreshInterval: time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumBin(t)), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 800),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(browser, actions...); err != nil {
			t.Fatalf("chromium: %s: %v", what, err)
		}
	}
	textOf := func(testid string) string {
		t.Helper()
		// One evaluation reads the element and its text together: the page
		// rebuilds the region cards at every refresh, so a node looked up
		// first may be gone by the time its text is asked for.
		s, err := chromedp.Run(browser, chromedp.Evaluate[string](
			`(() => { const e = document.querySelector('[data-testid="`+testid+`"]'); return e ? e.textContent.trim() : ""; })()`))
		if err != nil {
			t.Fatalf("chromium: reading %s: %v", testid, err)
		}
		return s
	}
	// waitText polls the page until the element's text satisfies ok.
	waitText := func(testid string, within time.Duration, ok func(string) bool) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		for {
			s := textOf(testid)
			if ok(s) {
				return s, time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("%s shows %q after %v", testid, s, within)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	step("loading the page", chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="region-r1-faults"]`)))
	if got := textOf("region-r1-faults"); got != "none" {
		t.Fatalf("r1's faults before any: %q, want none", got)
	}

	// Without the token the form says it was refused, and nothing is forwarded.
	step("filling the form", chromedp.SetValue(chromedp.CSS(`select[name="region"]`), "r1"),
		chromedp.SetValue(chromedp.CSS(`select[name="service"]`), "order"),
		chromedp.SetValue(chromedp.CSS(`input[name="latency_ms"]`), "400"),
		chromedp.Click(chromedp.CSS(`#fault-form button[type="submit"]`)))
	if got, _ := waitText("fault-result", 10*time.Second, func(s string) bool { return s != "" }); !strings.Contains(got, "refused") {
		t.Fatalf("the form without a token says %q, want refused", got)
	}
	// With it, the fault is forwarded and shows in r1's card at the next refresh.
	step("injecting with the token", chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), token),
		chromedp.Click(chromedp.CSS(`#fault-form button[type="submit"]`)))
	got, took := waitText("region-r1-faults", 10*time.Second, func(s string) bool { return s != "none" })
	if got != "order: +400ms latency" {
		t.Fatalf("r1's card shows %q, want the injected fault", got)
	}
	t.Logf("the page showed the injected fault %v after the form was sent", took.Round(10*time.Millisecond))
	if r := textOf("fault-result"); r != "inject sent to r1" {
		t.Errorf("form result %q", r)
	}
	step("clearing", chromedp.Click(chromedp.CSS(`#fault-clear`)))
	waitText("region-r1-faults", 10*time.Second, func(s string) bool { return s == "none" })

	lv.mu.Lock()
	posted := slices.Clone(lv.posted)
	lv.mu.Unlock()
	want := []report.FaultAction{{Region: "r1", Action: "inject", Fault: report.FaultRequest{Service: "order", LatencyMS: 400}}, {Region: "r1", Action: "clear"}}
	if !reflect.DeepEqual(posted, want) {
		t.Fatalf("forwarded %+v\nwant      %+v", posted, want)
	}
}
