package repair

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Admin routes of the Handler.
const (
	ResumePath = "/admin/repair/resume"
	StatusPath = "/admin/repair/status"
)

// Handler serves the job's admin endpoints, each behind the bearer token
// (Config.AdminToken):
//
//	POST /admin/repair/resume   closes the breaker (Resume) and answers the State as JSON
//	GET  /admin/repair/status   answers the State as JSON
//
// Without a configured token both answer 403. Mount it at /admin/repair/
// of the exporter's server.
func (j *Job) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(ResumePath, j.admin(http.MethodPost, func() State { return j.Resume() }))
	mux.HandleFunc(StatusPath, j.admin(http.MethodGet, j.State))
	return mux
}

func (j *Job) admin(method string, do func() State) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			http.Error(w, r.URL.Path+" takes "+method, http.StatusMethodNotAllowed)
			return
		}
		if j.cfg.AdminToken == "" {
			http.Error(w, "the repair admin API is off: start the exporter with an admin token", http.StatusForbidden)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(j.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="carpoolsla repair"`)
			http.Error(w, "a valid bearer token is required", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(do())
	}
}

// ResumeRemote calls POST /admin/repair/resume of the exporter at baseURL
// (such as http://127.0.0.1:9107) with the bearer token, and returns the
// job's state after it: what a `resume` command runs. client nil uses
// http.DefaultClient.
func ResumeRemote(ctx context.Context, client *http.Client, baseURL, token string) (State, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if token == "" {
		return State{}, errors.New("resuming auto-repair: the admin token is empty")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+ResumePath, nil)
	if err != nil {
		return State{}, fmt.Errorf("resuming auto-repair: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return State{}, fmt.Errorf("resuming auto-repair: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return State{}, fmt.Errorf("resuming auto-repair: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var s State
	if err := json.Unmarshal(body, &s); err != nil {
		return State{}, fmt.Errorf("resuming auto-repair: the answer is not a state: %w", err)
	}
	return s, nil
}
