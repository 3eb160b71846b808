package report

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed web
var webFS embed.FS

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document of the API (served at
// /api/v1/openapi.json).
func OpenAPI() []byte { return bytes.Clone(openAPIDoc) }

var pageTmpl = template.Must(template.ParseFS(webFS, "web/index.html"))

// csp keeps the page to its own origin: no CDN, no inline script, no
// external fetch.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

type pageData struct {
	RefreshMS int64
	ReadAuth  bool
	Regions   []string
	Services  []string
}

func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	err := pageTmpl.Execute(&buf, pageData{
		RefreshMS: h.cfg.RefreshInterval.Milliseconds(),
		ReadAuth:  h.cfg.ReadAuth,
		Regions:   h.cfg.Spec.RegionNames(),
		Services:  serviceNames(h.cfg.Spec),
	})
	if err != nil {
		// The template is embedded and tested; this is a programming error.
		writeError(w, http.StatusInternalServerError, "", "rendering the status page: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	if name == "" || name == "index.html" || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		writeError(w, http.StatusNotFound, "", "no such file")
		return
	}
	data, err := fs.ReadFile(webFS, "web/"+name)
	if err != nil {
		writeError(w, http.StatusNotFound, "", "no such file")
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
}

func (h *Handler) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}
