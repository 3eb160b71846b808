package embedded

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"

	grafanaregexp "github.com/grafana/regexp"
	"github.com/prometheus/common/route"
	promconfig "github.com/prometheus/prometheus/config"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"
)

// PrometheusVersion is the version of the Prometheus packages the store is
// built from (module github.com/prometheus/prometheus v0.316.0), reported
// by /api/v1/status/buildinfo. A test keeps it in step with go.mod.
const PrometheusVersion = "3.16.0"

// APIPaths are the query API paths Handler serves, under /api/v1; the
// label values path is /api/v1/label/<name>/values. Beyond the query subset
// come the read-only paths a Grafana Prometheus datasource asks for:
// buildinfo (its health check), metadata (the metric browser's help and
// types), exemplars (empty: the store keeps none), rules and alerts.
var APIPaths = []string{"/query", "/query_range", "/labels", "/label/<name>/values", "/series",
	"/status/buildinfo", "/metadata", "/query_exemplars", "/rules", "/alerts"}

// labelValuesPath matches /api/v1/label/<name>/values.
var labelValuesPath = regexp.MustCompile(`^/api/v1/label/[^/]+/values$`)

// apiHandler serves the subset of Prometheus' HTTP API that dashboards and
// the engine use, with Prometheus' own API code (web/api/v1), so the JSON
// envelope, the parameter parsing and the error types are Prometheus'.
type apiHandler struct {
	store  *Store
	router *route.Router
}

func newAPIHandler(s *Store) (*apiHandler, error) {
	cfg := s.cfg
	api := apiv1.NewAPI(
		s.engine,
		s.db,
		nil, // no remote write
		s.db,
		func(context.Context) apiv1.ScrapePoolsRetriever { return s.scraper },
		func(context.Context) apiv1.TargetRetriever { return s.scraper },
		func(context.Context) apiv1.AlertmanagerRetriever { return s.notifier },
		func() promconfig.Config {
			s.mu.Lock()
			defer s.mu.Unlock()
			return *s.promCfg
		},
		map[string]string{},
		apiv1.GlobalURLOptions{},
		s.readyHandler,
		nil, // no TSDB admin endpoints
		cfg.Dir,
		false, // admin off
		false, // search off
		0,
		cfg.Logger.With("component", "api"),
		func(context.Context) apiv1.RulesRetriever { return s.ruler },
		0, 0, 0, // remote read is not served
		false,
		grafanaregexp.MustCompile(".*"), // CORS: any origin, as Prometheus by default
		nil,
		&apiv1.PrometheusVersion{
			Version:   PrometheusVersion,
			Revision:  "carpoolsla-embedded",
			Branch:    "embedded",
			BuildUser: "carpoolsla",
			GoVersion: runtime.Version(),
		},
		nil, nil,
		s.gatherer,
		s.reg,
		nil,
		false, nil, false, false, false,
		cfg.LookbackDelta,
		false, false,
		nil,
		nil,
		apiv1.OpenAPIOptions{IncludePaths: []string{"/query", "/labels", "/label", "/series", "/status/buildinfo", "/metadata", "/rules", "/alerts"}},
		nil,
		false,
		cfg.QueryTimeout,
	)
	if api == nil {
		return nil, fmt.Errorf("embedded: building the query API failed")
	}
	r := route.New()
	api.Register(r.WithPrefix("/api/v1"))
	return &apiHandler{store: s, router: r}, nil
}

// readyHandler answers 503 once the store is closed (its TSDB is gone), as
// Prometheus does while its TSDB is not open. Queries are answered from Open
// on, before Run.
func (s *Store) readyHandler(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.open.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "Service Unavailable")
			return
		}
		f(w, r)
	}
}

// ServeHTTP routes the API subset to Prometheus' handlers; any other path
// is 404.
func (h *apiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/-/ready":
		if h.store.Ready() {
			fmt.Fprintln(w, "Prometheus Server is Ready.")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "Service Unavailable")
	case p == "/-/healthy":
		fmt.Fprintln(w, "Prometheus Server is Healthy.")
	case strings.HasPrefix(p, "/api/v1/") && (allowed(strings.TrimPrefix(p, "/api/v1")) || labelValuesPath.MatchString(p)):
		h.router.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

func allowed(p string) bool {
	return p != "/label/<name>/values" && slices.Contains(APIPaths, p)
}

// Handler serves the store's query API subset (see APIPaths) under
// /api/v1, in Prometheus' JSON envelope and with its error types, from Open
// to Close (then 503), plus /-/ready (200 while Run runs: scraping and
// evaluating; else 503) and /-/healthy. Point a Grafana
// Prometheus datasource at the URL this is mounted on.
func (s *Store) Handler() http.Handler { return s.api }
