package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	if !json.Valid(OpenAPI()) {
		t.Fatal("openapi.json is not valid JSON")
	}
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("loading openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json does not validate: %v", err)
	}
	return doc
}

// docPath maps a route to its OpenAPI path.
func docPath(r Route) string {
	if r.Path == "/static/" {
		return "/static/{file}"
	}
	return r.Path
}

func TestTheOpenAPIDocumentIsValidAndListsExactlyTheRoutesServed(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi version %q, want 3.0.3", doc.OpenAPI)
	}
	var served, documented []string
	for _, r := range Routes() {
		served = append(served, r.Method+" "+docPath(r))
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	if !slices.Equal(served, documented) {
		t.Errorf("routes served %v\ndocumented     %v", served, documented)
	}
	// Writes need the bearer scheme; reads accept it.
	for _, r := range Routes() {
		op := doc.Paths.Find(docPath(r)).GetOperation(r.Method)
		hasBearer := op.Security != nil && slices.ContainsFunc(*op.Security, func(req openapi3.SecurityRequirement) bool { _, ok := req["bearer"]; return ok })
		if (r.Access != Public) != hasBearer {
			t.Errorf("%s %s: access %d but bearer security %v", r.Method, r.Path, r.Access, hasBearer)
		}
	}
}

func TestTheServedOpenAPIDocumentIsTheEmbeddedOne(t *testing.T) {
	h, _, _ := newTestHandler(t, nil)
	rec := do(h, "GET", "/api/v1/openapi.json", "", nil)
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), OpenAPI()) || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("GET /api/v1/openapi.json = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// withData fills the fake history with a little of everything.
func withData(h *fakeHistory) {
	m := testNow.Truncate(time.Hour)
	h.minutes = []MinuteCounts{
		{Minute: m, SLOs: []SLOCount{{Service: "order", SLO: "availability", Good: 49_990, Total: 50_000}, {Service: "payment", SLO: "availability", Good: 2500, Total: 2500}}},
		{Minute: m.Add(time.Minute), SLOs: []SLOCount{{Service: "order", SLO: "availability", Good: 50_000, Total: 50_000}}},
	}
	open := testNow.Add(-2 * time.Hour)
	h.events = BreakerHistory{Events: []BreakerEvent{
		{At: open, Region: "sh-a", From: "closed", To: "open", Reason: "p99 above 300ms"},
		{At: open.Add(90 * time.Second), Region: "sh-a", From: "open", To: "recovering"},
		{At: testNow.Add(-time.Minute), Region: "bj-a", From: "closed", To: "open", Reason: "health 41"},
	}}
	h.drills = []DrillStats{{Scenario: "region_down", Drills: 1, Passed: 1, WithinObjectives: 1, WorstRTOSeconds: 12, WorstRPOSeconds: 0.5}}
	h.buckets = []BucketCount{{Start: testNow.Truncate(time.Hour), Service: "order", SLO: "availability", Good: 10, Total: 10}}
}

func TestResponsesFollowTheOpenAPIDocument(t *testing.T) {
	text := func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(body)
		return string(b), err
	}
	for _, ct := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(ct, text)
	}
	doc := loadOpenAPI(t)
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	h, hist, _ := newTestHandler(t, nil)
	withData(hist)
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	cases := map[string]struct {
		method, target, body string
		hdr                  map[string]string
		code                 int
	}{
		"The month-to-date composite report.":             {"GET", "/api/v1/sla", "", nil, 200},
		"A service report over a window.":                 {"GET", "/api/v1/sla?scope=service&service=order&region=sh-a&from=2026-10-01T00:00:00Z&to=2026-10-15T00:00:00Z", "", nil, 200},
		"A region report for a month, two incidents max.": {"GET", "/api/v1/sla?scope=region&region=sh-a&month=2026-10&limit=2", "", nil, 200},
		"The CSV export.":                                 {"GET", "/api/v1/sla?format=csv", "", nil, 200},
		"A bad parameter.":                                {"GET", "/api/v1/sla?month=2026-13", "", nil, 400},
		"The timeseries.":                                 {"GET", "/api/v1/sla/timeseries?hours=6&step=30", "", nil, 200},
		"A bad timeseries step.":                          {"GET", "/api/v1/sla/timeseries?step=7", "", nil, 400},
		"The live status.":                                {"GET", "/api/v1/live", "", nil, 200},
		"A fault injected.":                               {"POST", "/api/v1/faults", `{"region":"sh-a","action":"inject","fault":{"service":"order","latency_ms":400,"error_rate":0.05}}`, auth, 200},
		"Faults cleared.":                                 {"POST", "/api/v1/faults", `{"region":"sh-b","action":"clear"}`, auth, 200},
		"A fault without a token.":                        {"POST", "/api/v1/faults", `{"region":"sh-a","action":"clear"}`, nil, 401},
		"A drill recorded.":                               {"POST", "/api/v1/drills", testDrillBody, auth, 200},
		"A drill of a region the spec lacks.":             {"POST", "/api/v1/drills", strings.Replace(testDrillBody, `"sh-a,sh-b"`, `"mars"`, 1), auth, 400},
		"A drill without a token.":                        {"POST", "/api/v1/drills", testDrillBody, nil, 401},
		"The status page.":                                {"GET", "/", "", nil, 200},
		"The status page's script.":                       {"GET", "/static/app.js", "", nil, 200},
		"A missing asset.":                                {"GET", "/static/nope.js", "", nil, 404},
		"This document.":                                  {"GET", "/api/v1/openapi.json", "", nil, 200},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			rec := do(h, c.method, c.target, c.body, c.hdr)
			if rec.Code != c.code {
				t.Fatalf("%s %s = %d %s, want %d", c.method, c.target, rec.Code, rec.Body, c.code)
			}
			req := httptest.NewRequest(c.method, "http://127.0.0.1"+c.target, strings.NewReader(c.body))
			if c.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("the document has no route for %s %s: %v", c.method, c.target, err)
			}
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
			if c.code < 400 {
				if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
					t.Errorf("the document refuses the request: %v", err)
				}
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(), Options: opts}
			out.SetBodyBytes(rec.Body.Bytes())
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Errorf("the response does not follow the document: %v\n%s", err, rec.Body)
			}
		})
	}
}

func TestAuthorization(t *testing.T) {
	good := map[string]string{"Authorization": "Bearer " + testToken}
	bad := map[string]string{"Authorization": "Bearer not-the-right-token-at-all"}
	remote := map[string]string{"remote": "192.0.2.7:5555"}
	remoteGood := map[string]string{"remote": "192.0.2.7:5555", "Authorization": "Bearer " + testToken}
	clearBody := `{"region":"sh-a","action":"clear"}`
	cases := map[string]struct {
		mod          func(*Config)
		method, path string
		hdr          map[string]string
		code         int
	}{
		"Anonymous reads from loopback are allowed by default.":         {nil, "GET", "/api/v1/sla", nil, 200},
		"Anonymous reads from another host need a token.":               {nil, "GET", "/api/v1/live", remote, 401},
		"Reads from another host with a token are allowed.":             {nil, "GET", "/api/v1/live", remoteGood, 200},
		"AnonymousRemoteReads opens reads to every host.":               {func(c *Config) { c.AnonymousRemoteReads = true }, "GET", "/api/v1/live", remote, 200},
		"ReadAuth requires a token on loopback too.":                    {func(c *Config) { c.ReadAuth = true }, "GET", "/api/v1/sla/timeseries", nil, 401},
		"ReadAuth accepts a good token.":                                {func(c *Config) { c.ReadAuth = true }, "GET", "/api/v1/sla/timeseries", good, 200},
		"ReadAuth refuses a wrong token with 403.":                      {func(c *Config) { c.ReadAuth = true }, "GET", "/api/v1/sla", bad, 403},
		"The status page stays public under ReadAuth.":                  {func(c *Config) { c.ReadAuth = true }, "GET", "/", remote, 200},
		"The OpenAPI document stays public under ReadAuth.":             {func(c *Config) { c.ReadAuth = true }, "GET", "/api/v1/openapi.json", remote, 200},
		"A write without a token is refused with 401, even on loopback": {nil, "POST", "/api/v1/faults", nil, 401},
		"A write with a wrong token is refused with 403.":               {nil, "POST", "/api/v1/faults", bad, 403},
		"A write with a good token goes through.":                       {nil, "POST", "/api/v1/faults", good, 200},
		"A write from another host with a good token goes through.":     {nil, "POST", "/api/v1/faults", remoteGood, 200},
		"A Basic authorization is not a bearer token.":                  {nil, "POST", "/api/v1/faults", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401},
		"Writes are off when the server has no token.":                  {func(c *Config) { c.Tokens = nil }, "POST", "/api/v1/faults", good, 403},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			h, _, _ := newTestHandler(t, c.mod)
			body := ""
			if c.method == "POST" {
				body = clearBody
			}
			rec := do(h, c.method, c.path, body, c.hdr)
			if rec.Code != c.code {
				t.Fatalf("%s %s = %d %s, want %d", c.method, c.path, rec.Code, rec.Body, c.code)
			}
			if c.code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
			if c.code >= 400 {
				var e errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Errorf("error body %q is not {\"error\": ...}", rec.Body)
				}
			}
		})
	}
}

func TestTokensComeFromAFileWithComments(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	if err := os.WriteFile(file, []byte("# operators\n\n  first-token-0123456789  \n# retired: old\nsecond-token-abcdefghij\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, _, _ := newTestHandler(t, func(c *Config) { c.Tokens, c.TokenFile = nil, file })
	for _, tok := range []string{"first-token-0123456789", "second-token-abcdefghij"} {
		if rec := do(h, "POST", "/api/v1/faults", `{"region":"sh-a","action":"clear"}`, map[string]string{"Authorization": "Bearer " + tok}); rec.Code != 200 {
			t.Errorf("token %q: %d %s", tok, rec.Code, rec.Body)
		}
	}
	if rec := do(h, "POST", "/api/v1/faults", `{"region":"sh-a","action":"clear"}`, map[string]string{"Authorization": "Bearer # operators"}); rec.Code != 403 {
		t.Errorf("a comment line worked as a token: %d", rec.Code)
	}
	tok, err := NewToken()
	if err != nil || len(tok) != 64 {
		t.Fatalf("NewToken = %q, %v", tok, err)
	}
	if toks, err := ParseTokens([]byte(tok + "\n")); err != nil || toks[0] != tok {
		t.Errorf("a generated token does not parse back: %v %v", toks, err)
	}
	if _, err := ParseTokens([]byte("short\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a short token: %v, want an error naming line 1", err)
	}
}

func TestConfigValidateSaysWhatIsWrong(t *testing.T) {
	s := testSpec(t)
	cases := map[string]struct {
		cfg  Config
		says string
	}{
		"A config without a spec is refused.":         {Config{History: &fakeHistory{}}, "Spec is nil"},
		"A config without a history is refused.":      {Config{Spec: s}, "History is nil"},
		"A window cap under a day is refused.":        {Config{Spec: s, History: &fakeHistory{}, MaxWindow: time.Hour}, "MaxWindow"},
		"A refresh faster than a second is refused.":  {Config{Spec: s, History: &fakeHistory{}, RefreshInterval: time.Millisecond}, "RefreshInterval"},
		"ReadAuth with anonymous reads contradicts.":  {Config{Spec: s, History: &fakeHistory{}, ReadAuth: true, AnonymousRemoteReads: true}, "pick one"},
		"A missing token file is refused.":            {Config{Spec: s, History: &fakeHistory{}, TokenFile: "/nonexistent/tokens"}, "TokenFile"},
		"A short token is refused.":                   {Config{Spec: s, History: &fakeHistory{}, Tokens: []string{"abc"}}, "Tokens[0]"},
		"A timeseries point cap under a day refused.": {Config{Spec: s, History: &fakeHistory{}, MaxPoints: 3}, "MaxPoints"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Errorf("New = %v; want an error saying %q", err, c.says)
			}
		})
	}
}

func TestCSVComesFromFormatOrAccept(t *testing.T) {
	h, hist, _ := newTestHandler(t, nil)
	withData(hist)
	for name, c := range map[string]struct {
		target string
		hdr    map[string]string
		csv    bool
	}{
		"format=csv gives CSV.":                         {"/api/v1/sla?format=csv", nil, true},
		"Accept: text/csv gives CSV.":                   {"/api/v1/sla", map[string]string{"Accept": "application/json;q=0.5, text/csv"}, true},
		"format=json wins over Accept: text/csv.":       {"/api/v1/sla?format=json", map[string]string{"Accept": "text/csv"}, false},
		"Without either the report is JSON.":            {"/api/v1/sla", nil, false},
		"Accept: application/json gives JSON.":          {"/api/v1/sla", map[string]string{"Accept": "application/json"}, false},
		"A service report in CSV names the service.":    {"/api/v1/sla?scope=service&service=order&format=csv", nil, true},
		"A region report in CSV carries its region.":    {"/api/v1/sla?scope=region&region=sh-b&format=csv", nil, true},
		"A window report in CSV has a window filename.": {"/api/v1/sla?from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z&format=csv", nil, true},
	} {
		t.Run(name, func(t *testing.T) {
			rec := do(h, "GET", c.target, "", c.hdr)
			if rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			isCSV := strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv")
			if isCSV != c.csv {
				t.Fatalf("Content-Type %q, want CSV %v", rec.Header().Get("Content-Type"), c.csv)
			}
			if c.csv {
				rows, err := csv.NewReader(rec.Body).ReadAll()
				if err != nil || !slices.Equal(rows[0], CSVHeader) {
					t.Fatalf("CSV %v header %v: %v", rows, rows[0], err)
				}
				if !strings.Contains(rec.Header().Get("Content-Disposition"), ".csv") {
					t.Errorf("Content-Disposition %q", rec.Header().Get("Content-Disposition"))
				}
			}
		})
	}
}

func TestFaultsAreValidatedAndForwarded(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	h, _, faults := newTestHandler(t, nil)
	rec := do(h, "POST", "/api/v1/faults", `{"region":"bj-a","action":"inject","fault":{"service":"pricing","latency_ms":250,"error_rate":0.1,"down":false,"clock_skew_ms":-500}}`, auth)
	if rec.Code != 200 {
		t.Fatalf("inject = %d %s", rec.Code, rec.Body)
	}
	rec = do(h, "POST", "/api/v1/faults", `{"region":"sh-b","action":"clear","fault":{"down":true}}`, auth)
	if rec.Code != 200 {
		t.Fatalf("clear = %d %s", rec.Code, rec.Body)
	}
	want := []faultCall{
		{Region: "bj-a", Fault: FaultRequest{Service: "pricing", LatencyMS: 250, ErrorRate: 0.1, ClockSkewMS: -500}},
		{Region: "sh-b", Clear: true},
	}
	if !slices.Equal(faults.calls, want) {
		t.Errorf("forwarded %+v, want %+v", faults.calls, want)
	}

	for name, c := range map[string]struct{ body, param string }{
		"An unknown region is refused.":             {`{"region":"mars","action":"clear"}`, "region"},
		"An unknown action is refused.":             {`{"region":"sh-a","action":"explode"}`, "action"},
		"An error rate above 1 is refused.":         {`{"region":"sh-a","action":"inject","fault":{"error_rate":1.5}}`, "fault.error_rate"},
		"A latency above a minute is refused.":      {`{"region":"sh-a","action":"inject","fault":{"latency_ms":60001}}`, "fault.latency_ms"},
		"A negative latency is refused.":            {`{"region":"sh-a","action":"inject","fault":{"latency_ms":-1}}`, "fault.latency_ms"},
		"A clock skew above an hour is refused.":    {`{"region":"sh-a","action":"inject","fault":{"clock_skew_ms":3600001}}`, "fault.clock_skew_ms"},
		"An unknown service is refused.":            {`{"region":"sh-a","action":"inject","fault":{"service":"taxi"}}`, "fault.service"},
		"An unknown field is refused.":              {`{"region":"sh-a","action":"inject","fault":{"latency":"1s"}}`, "body"},
		"A body that is not JSON is refused.":       {`region=sh-a`, "body"},
		"Two JSON values are refused.":              {`{"region":"sh-a","action":"clear"}{}`, "body"},
		"A body over 16 KiB is refused.":            {`{"region":"` + strings.Repeat("a", 20<<10) + `"}`, "body"},
		"A query parameter on a write is refused.":  {`{"region":"sh-a","action":"clear"}`, "dry"},
		"An empty body is refused.":                 {``, "body"},
		"A region given as a number is refused.":    {`{"region":1,"action":"clear"}`, "body"},
		"An error rate that is not a number fails.": {`{"region":"sh-a","action":"inject","fault":{"error_rate":"x"}}`, "body"},
	} {
		t.Run(name, func(t *testing.T) {
			target := "/api/v1/faults"
			if c.param == "dry" {
				target += "?dry=1"
			}
			rec := do(h, "POST", target, c.body, auth)
			var e errorBody
			_ = json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code != 400 || e.Param != c.param {
				t.Errorf("= %d %s; want 400 naming %q", rec.Code, rec.Body, c.param)
			}
		})
	}
	if n := len(faults.calls); n != 2 {
		t.Errorf("%d calls forwarded; refused requests must not reach the regions", n)
	}
}

func TestUpstreamFailures(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	f := func(name string, mod func(*Config), hist error, method, target string, code int) {
		t.Helper()
		h, fh, _ := newTestHandler(t, mod)
		fh.err = hist
		body := ""
		if method == "POST" {
			body = `{"region":"sh-a","action":"clear"}`
		}
		if rec := do(h, method, target, body, auth); rec.Code != code {
			t.Errorf("%s: %s %s = %d %s, want %d", name, method, target, rec.Code, rec.Body, code)
		}
	}
	f("ClickHouse failing is a bad gateway.", nil, errors.New("connection refused"), "GET", "/api/v1/sla", 502)
	f("ClickHouse timing out is a gateway timeout.", nil, context.DeadlineExceeded, "GET", "/api/v1/sla/timeseries", 504)
	f("No live source is 503.", func(c *Config) { c.Live = nil }, nil, "GET", "/api/v1/live", 503)
	f("The engine failing is a bad gateway.", func(c *Config) { c.Live = &fakeLive{err: errors.New("engine stopped")} }, nil, "GET", "/api/v1/live", 502)
	f("No fault forwarder is 503.", func(c *Config) { c.Faults = nil }, nil, "POST", "/api/v1/faults", 503)
	f("A region refusing the fault is a bad gateway.", func(c *Config) { c.Faults = &fakeFaults{err: errors.New("401 from region")} }, nil, "POST", "/api/v1/faults", 502)
	f("An unknown path is 404.", nil, nil, "GET", "/api/v2/sla", 404)
	f("A wrong method is 405.", nil, nil, "DELETE", "/api/v1/sla", 405)
	f("A GET on the faults route is 405.", nil, nil, "GET", "/api/v1/faults", 405)
	f("A path traversal in assets is 404.", nil, nil, "GET", "/static/../openapi.json", 404)
	f("A query string over 4 KiB is refused.", nil, nil, "GET", "/api/v1/sla?month="+strings.Repeat("9", 5000), 414)
}

func TestRequestsAreCountedByRouteAndCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, _, _ := newTestHandler(t, func(c *Config) { c.Registerer = reg })
	do(h, "GET", "/api/v1/sla", "", nil)
	do(h, "GET", "/api/v1/sla?month=x", "", nil)
	do(h, "GET", "/api/v1/sla?month=y", "", nil)
	do(h, "GET", "/nowhere/"+strings.Repeat("x", 10), "", nil)
	want := `
# HELP carpool_report_requests_total Requests the SLA report API answered, by route and HTTP status code.
# TYPE carpool_report_requests_total counter
carpool_report_requests_total{code="200",route="/api/v1/sla"} 1
carpool_report_requests_total{code="400",route="/api/v1/sla"} 2
carpool_report_requests_total{code="404",route="other"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "carpool_report_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "carpool_report_request_duration_seconds"); n != 2 {
		t.Errorf("%d duration series, want 2 (two routes)", n)
	}
}

func TestTheStatusPageIsSelfContained(t *testing.T) {
	h, _, _ := newTestHandler(t, func(c *Config) { c.RefreshInterval = 7 * time.Second })
	rec := do(h, "GET", "/", "", nil)
	page := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("GET / = %d, CSP %q", rec.Code, rec.Header().Get("Content-Security-Policy"))
	}
	for _, want := range []string{`data-refresh-ms="7000"`, `<option>sh-a</option>`, `<option>payment</option>`, `src="/static/app.js"`, `href="/static/app.css"`, `name="viewport"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	for _, asset := range []string{"/static/app.js", "/static/app.css"} {
		rec := do(h, "GET", asset, "", nil)
		if rec.Code != 200 || rec.Body.Len() == 0 {
			t.Errorf("GET %s = %d", asset, rec.Code)
		}
		page += rec.Body.String()
	}
	// No CDN, no external fetch: every URL the page uses is its own.
	for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
		for _, line := range strings.Split(page, "\n") {
			if strings.Contains(line, bad) && !strings.Contains(line, "http://www.w3.org/2000/svg") {
				t.Errorf("the page refers outside itself: %s", strings.TrimSpace(line))
			}
		}
	}
}
