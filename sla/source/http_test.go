package source

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestHTTPConfigValidation(t *testing.T) {
	t.Parallel()
	ok := "http://127.0.0.1:9090"
	cases := map[string]struct {
		cfg  HTTPConfig
		want string // "" when valid
	}{
		"A plain URL is valid.":                            {HTTPConfig{URL: ok}, ""},
		"A VictoriaMetrics cluster path is valid.":         {HTTPConfig{URL: "https://vmselect:8481/select/0/prometheus"}, ""},
		"An empty URL is refused and says what to give.":   {HTTPConfig{}, "URL (--prometheus) is empty: give the query API's base URL"},
		"A URL without a scheme is refused.":               {HTTPConfig{URL: "prometheus/x"}, "must start with http:// or https://"},
		"A URL ending in /api/v1 is refused.":              {HTTPConfig{URL: ok + "/api/v1/"}, "ends in /api/v1: drop it"},
		"A URL with a query is refused.":                   {HTTPConfig{URL: ok + "?x=1"}, "must not carry a query"},
		"A negative timeout is refused.":                   {HTTPConfig{URL: ok, Timeout: -time.Second}, "Timeout (--prometheus-timeout) -1s is negative"},
		"A backoff cap below the first wait is refused.":   {HTTPConfig{URL: ok, Backoff: time.Second, MaxBackoff: time.Millisecond}, "MaxBackoff 1ms is below Backoff 1s"},
		"A bearer token with basic auth is refused.":       {HTTPConfig{URL: ok, BearerTokenFile: "t", BasicAuthUser: "u"}, "use one of them"},
		"A basic auth password without a user is refused.": {HTTPConfig{URL: ok, BasicAuthPasswordFile: "p"}, "without BasicAuthUser"},
		"An Authorization header is refused.": {HTTPConfig{URL: ok, Headers: map[string]string{"authorization": "x"}},
			"sets Authorization: use the bearer token file or basic auth"},
		"A header name with a colon is refused.": {HTTPConfig{URL: ok, Headers: map[string]string{"X:Y": "v"}}, `bad name "X:Y"`},
		"A protocol header is refused.":          {HTTPConfig{URL: ok, Headers: map[string]string{"Content-Type": "x"}}, "HTTP client settings"},
		"A CA file with skip-verify is refused.": {HTTPConfig{URL: ok, CAFile: "ca", InsecureSkipVerify: true}, "not both"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestFlagsBuildTheConfig(t *testing.T) {
	t.Parallel()
	parse := func(t *testing.T, args ...string) (HTTPConfig, error) {
		t.Helper()
		var f Flags
		fs := pflag.NewFlagSet("engine", pflag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Config()
	}
	t.Run("Defaults give 10s, two retries after 100ms.", func(t *testing.T) {
		cfg, err := parse(t, "--prometheus=http://vm:8428")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Timeout != 10*time.Second || cfg.Retries != 2 || cfg.NoRetries || cfg.Backoff != 100*time.Millisecond || cfg.MaxBackoff != 2*time.Second {
			t.Errorf("%+v", cfg)
		}
	})
	t.Run("Every flag reaches the config.", func(t *testing.T) {
		cfg, err := parse(t, "--prometheus=https://vmselect:8481/select/0/prometheus", "--prometheus-timeout=3s",
			"--prometheus-retries=5", "--prometheus-retry-backoff=200ms", "--prometheus-basic-auth-user=sre",
			"--prometheus-basic-auth-password-file=/run/pw", "--prometheus-header=X-Scope-OrgID: carpool",
			"--prometheus-header", "X-Team:sre", "--prometheus-ca-file=/etc/ca.pem")
		if err != nil {
			t.Fatal(err)
		}
		want := HTTPConfig{URL: "https://vmselect:8481/select/0/prometheus", Timeout: 3 * time.Second, Retries: 5,
			Backoff: 200 * time.Millisecond, MaxBackoff: 4 * time.Second, BasicAuthUser: "sre", BasicAuthPasswordFile: "/run/pw",
			Headers: map[string]string{"X-Scope-OrgID": "carpool", "X-Team": "sre"}, CAFile: "/etc/ca.pem"}
		if fmt.Sprint(cfg) != fmt.Sprint(want) {
			t.Errorf("got  %+v\nwant %+v", cfg, want)
		}
	})
	t.Run("--prometheus-retries=0 turns retrying off.", func(t *testing.T) {
		cfg, err := parse(t, "--prometheus=http://p:9090", "--prometheus-retries=0")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.withDefaults().Retries != 0 {
			t.Errorf("retries %d", cfg.withDefaults().Retries)
		}
	})
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"A header without a colon is refused.":       {[]string{"--prometheus=http://p:9090", "--prometheus-header=X-Team"}, `--prometheus-header "X-Team" is not "Name: value"`},
		"A negative retry count is refused.":         {[]string{"--prometheus=http://p:9090", "--prometheus-retries=-1"}, "--prometheus-retries -1 is negative"},
		"A zero timeout is refused.":                 {[]string{"--prometheus=http://p:9090", "--prometheus-timeout=0s"}, "--prometheus-timeout 0s must be positive"},
		"A bad URL is refused with the flag's name.": {[]string{"--prometheus=p:9090"}, "(--prometheus)"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

// fakeAPI is a fake query API: it answers each request with the next reply
// (the last one repeats) and records the requests.
type fakeAPI struct {
	mu       sync.Mutex
	replies  []reply
	requests []*http.Request
	forms    []string
}

type reply struct {
	code int
	body string
	hang bool // block until the client gives up
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	a.mu.Lock()
	a.requests = append(a.requests, r)
	a.forms = append(a.forms, r.Form.Encode())
	rep := a.replies[min(len(a.requests), len(a.replies))-1]
	a.mu.Unlock()
	if rep.hang {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.code)
	fmt.Fprint(w, rep.body)
}

func (a *fakeAPI) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.requests)
}

const (
	vectorBody = `{"status":"success","data":{"resultType":"vector","result":[` +
		`{"metric":{"__name__":"carpool_sync_lag_seconds","source_region":"sh-a","target_region":"sh-b"},"value":[1700000000.5,"1.25"]},` +
		`{"metric":{},"value":[1700000000.5,"NaN"]}]}}`
	scalarBody  = `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}`
	matrixBody  = `{"status":"success","data":{"resultType":"matrix","result":[]}}`
	badDataBody = `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}`
	execBody    = `{"status":"error","errorType":"execution","error":"query processing would load too many samples"}`
)

// sleeps records the waits a client asked for instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func (s *sleeps) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// serve starts a fake API under prefix and returns a client for it.
func serve(t *testing.T, prefix string, cfg HTTPConfig, replies ...reply) (*HTTP, *fakeAPI, *sleeps) {
	t.Helper()
	a := &fakeAPI{replies: replies}
	mux := http.NewServeMux()
	mux.Handle(prefix+"/api/v1/query", a)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sl := &sleeps{}
	cfg.URL = srv.URL + prefix
	cfg.Sleep = sl.sleep
	h, err := NewHTTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, a, sl
}

var at = time.Unix(1700000000, 500_000_000)

func TestHTTPQueryResults(t *testing.T) {
	t.Parallel()
	t.Run("A vector keeps every label and value, NaN included.", func(t *testing.T) {
		h, a, _ := serve(t, "", HTTPConfig{}, reply{200, vectorBody, false})
		vec, err := h.Query(context.Background(), "carpool_sync_lag_seconds", at)
		if err != nil {
			t.Fatal(err)
		}
		SortVector(vec)
		if len(vec) != 2 || LabelString(vec[0].Labels) != `{__name__="carpool_sync_lag_seconds", source_region="sh-a", target_region="sh-b"}` ||
			vec[0].Value != 1.25 || !vec[0].T.Equal(at) || len(vec[1].Labels) != 0 || vec[1].Labels == nil || vec[1].Value == vec[1].Value {
			t.Errorf("got %+v", vec)
		}
		if form := a.forms[0]; !strings.Contains(form, "query=carpool_sync_lag_seconds") || !strings.Contains(form, "time=1700000000.5") || !strings.Contains(form, "timeout=10s") {
			t.Errorf("the request's form %q lacks the query, its time or the timeout", form)
		}
	})
	t.Run("A scalar comes back as one sample without labels.", func(t *testing.T) {
		h, _, _ := serve(t, "", HTTPConfig{}, reply{200, scalarBody, false})
		vec, err := h.Query(context.Background(), "scalar(x)", at)
		if err != nil {
			t.Fatal(err)
		}
		if len(vec) != 1 || vec[0].Value != 3 || vec[0].Labels == nil || len(vec[0].Labels) != 0 {
			t.Errorf("got %+v", vec)
		}
	})
	t.Run("A range vector is an error that says what to give.", func(t *testing.T) {
		h, _, _ := serve(t, "", HTTPConfig{}, reply{200, matrixBody, false})
		_, err := h.Query(context.Background(), "x[5m]", at)
		if err == nil || !strings.Contains(err.Error(), "the result is a matrix: give an expression that yields an instant vector or a scalar") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("A VictoriaMetrics cluster URL keeps its path.", func(t *testing.T) {
		h, a, _ := serve(t, "/select/0/prometheus", HTTPConfig{}, reply{200, scalarBody, false})
		if _, err := h.Query(context.Background(), "1", at); err != nil {
			t.Fatal(err)
		}
		if p := a.requests[0].URL.Path; p != "/select/0/prometheus/api/v1/query" {
			t.Errorf("path %q", p)
		}
	})
	t.Run("Check asks for vector(1) once.", func(t *testing.T) {
		h, a, _ := serve(t, "", HTTPConfig{}, reply{503, "", false})
		if err := h.Check(context.Background()); err == nil {
			t.Error("a 503 passed the check")
		}
		if a.count() != 1 || !strings.Contains(a.forms[0], "query=vector%281%29") {
			t.Errorf("%d requests, form %v", a.count(), a.forms)
		}
	})
}

func TestHTTPAuthAndHeaders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	password := filepath.Join(dir, "password")
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(token, "first\n")
	write(password, "s3cret")
	t.Run("The bearer token is read from its file on every request.", func(t *testing.T) {
		h, a, _ := serve(t, "", HTTPConfig{BearerTokenFile: token, Headers: map[string]string{"X-Scope-OrgID": "carpool"}},
			reply{200, scalarBody, false})
		if _, err := h.Query(context.Background(), "1", at); err != nil {
			t.Fatal(err)
		}
		write(token, "rotated")
		if _, err := h.Query(context.Background(), "1", at); err != nil {
			t.Fatal(err)
		}
		if got := a.requests[0].Header.Get("Authorization"); got != "Bearer first" {
			t.Errorf("first request: Authorization %q", got)
		}
		if got := a.requests[1].Header.Get("Authorization"); got != "Bearer rotated" {
			t.Errorf("after rotation: Authorization %q", got)
		}
		if got := a.requests[0].Header.Get("X-Scope-OrgID"); got != "carpool" {
			t.Errorf("X-Scope-OrgID %q", got)
		}
	})
	t.Run("Basic auth sends the user and the password from its file.", func(t *testing.T) {
		h, a, _ := serve(t, "", HTTPConfig{BasicAuthUser: "sre", BasicAuthPasswordFile: password}, reply{200, scalarBody, false})
		if _, err := h.Query(context.Background(), "1", at); err != nil {
			t.Fatal(err)
		}
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte("sre:s3cret"))
		if got := a.requests[0].Header.Get("Authorization"); got != want {
			t.Errorf("Authorization %q, want %q", got, want)
		}
	})
	t.Run("A missing token file fails the query without retrying.", func(t *testing.T) {
		h, a, sl := serve(t, "", HTTPConfig{BearerTokenFile: filepath.Join(dir, "none")}, reply{200, scalarBody, false})
		_, err := h.Query(context.Background(), "1", at)
		if err == nil || !strings.Contains(err.Error(), "none") {
			t.Errorf("got %v, want an error naming the file", err)
		}
		if a.count() != 0 || len(sl.waits()) != 0 {
			t.Errorf("%d requests and waits %v, want none", a.count(), sl.waits())
		}
	})
}

func TestHTTPRetries(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		cfg      HTTPConfig
		replies  []reply
		attempts int
		wantErr  string // "" for success
	}{
		"Two 503s then an answer succeed on the third attempt.": {
			HTTPConfig{}, []reply{{503, "unavailable", false}, {502, "bad gateway", false}, {200, scalarBody, false}}, 3, ""},
		"A 500 every time fails after the retries, saying how many attempts.": {
			HTTPConfig{Retries: 3}, []reply{{500, "boom", false}}, 4, "attempt 4 of 4): server_error: server error: 500"},
		"A bad_data error is not retried.": {
			HTTPConfig{}, []reply{{400, badDataBody, false}}, 1, "bad_data: 1:5: parse error"},
		"An execution error (422) is not retried.": {
			HTTPConfig{}, []reply{{422, execBody, false}}, 1, "execution: query processing would load too many samples"},
		"Another 4xx is not retried.": {
			HTTPConfig{}, []reply{{404, "not found", false}}, 1, "client_error: client error: 404"},
		"NoRetries makes a 503 final.": {
			HTTPConfig{Retries: 5, NoRetries: true}, []reply{{503, "", false}}, 1, "attempt 1 of 1"},
		"An attempt that outlives its timeout is retried, and then fails as timed out.": {
			HTTPConfig{Timeout: 50 * time.Millisecond, Retries: 1}, []reply{{0, "", true}}, 2, "the attempt timed out after 50ms"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h, a, sl := serve(t, "", c.cfg, c.replies...)
			_, err := h.Query(context.Background(), "up", at)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("failed: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, c.wantErr)
			}
			if a.count() != c.attempts {
				t.Errorf("%d attempts, want %d", a.count(), c.attempts)
			}
			if len(sl.waits()) != c.attempts-1 {
				t.Errorf("waits %v, want %d", sl.waits(), c.attempts-1)
			}
		})
	}
	t.Run("A refused connection is retried.", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		sl := &sleeps{}
		h, err := NewHTTP(HTTPConfig{URL: "http://" + addr, Sleep: sl.sleep})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.Query(context.Background(), "up", at)
		if err == nil || !strings.Contains(err.Error(), "connection refused") || !Transient(err) {
			t.Errorf("got %v, want a transient connection refused", err)
		}
		if len(sl.waits()) != DefaultRetries {
			t.Errorf("waits %v, want %d", sl.waits(), DefaultRetries)
		}
	})
	t.Run("A canceled caller is not retried.", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		h, a, sl := serve(t, "", HTTPConfig{}, reply{0, "", true})
		go func() {
			for a.count() == 0 && calls.Add(1) < 1000 {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
		}()
		_, err := h.Query(ctx, "up", at)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
		if a.count() != 1 || len(sl.waits()) != 0 {
			t.Errorf("%d attempts, waits %v", a.count(), sl.waits())
		}
	})
}

func TestBackoffGrowsWithJitterUpToItsCap(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		rand float64
		want []time.Duration
	}{
		"With the smallest jitter each wait is half its step.":  {0, []time.Duration{50, 100, 200, 400, 500, 500}},
		"With the largest jitter each wait is nearly its step.": {0.999999, []time.Duration{99, 199, 399, 799, 999, 999}},
	} {
		t.Run(name, func(t *testing.T) {
			h := &HTTP{cfg: HTTPConfig{URL: "http://p:9090", Backoff: 100 * time.Millisecond, MaxBackoff: time.Second,
				Rand: func() float64 { return c.rand }}.withDefaults()}
			for i, want := range c.want {
				if got := h.backoff(i).Truncate(time.Millisecond); got != want*time.Millisecond {
					t.Errorf("retry %d: waited %v, want %v", i+1, got, want*time.Millisecond)
				}
			}
		})
	}
}
