package report

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// DrillRecord is the body of POST /api/v1/drills: one drill's result as
// `carpoolsla drill` measures it, the row ClickHouse's drill_results holds.
// The report's RPO/RTO compliance counts it from then on. A duration or the
// success ratio the drill could not measure is NotMeasured (-1), as the
// drill runner writes it.
type DrillRecord struct {
	// EventID names the drill run; recording the same id again keeps one.
	EventID  string    `json:"event_id"`
	TS       time.Time `json:"ts"` // the fault's time
	Scenario string    `json:"scenario"`
	// Region is the faulted regions, comma-separated.
	Region        string  `json:"region"`
	Passed        bool    `json:"passed"`
	RTOSeconds    float64 `json:"rto_seconds"`
	RPOSeconds    float64 `json:"rpo_seconds"`
	DetectSeconds float64 `json:"detect_seconds"`
	DecideSeconds float64 `json:"decide_seconds"`
	ShiftSeconds  float64 `json:"shift_seconds"`
	SuccessRatio  float64 `json:"success_ratio"`
	// Report is the drill's Markdown report (optional).
	Report string `json:"report,omitempty"`
}

// DrillRecorder stores drill results for the report's history (the
// in-process history, or ClickHouse's drill_results).
type DrillRecorder interface {
	RecordDrill(ctx context.Context, d DrillRecord) error
}

// NotMeasured marks a drill figure that was not measured.
const NotMeasured = -1.0

// Limits of a drill record.
const (
	maxDrillBody   = 256 << 10
	maxDrillReport = 200 << 10
	// drillFuture is how far ahead of the server's clock a drill's time
	// may be (clocks differ a little between machines).
	drillFuture = 5 * time.Minute
)

var drillNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Validate checks a drill record against the spec's regions; the error
// names the offending field.
func (d DrillRecord) Validate(regions []string, now time.Time) *ParamError {
	bad := func(field, format string, args ...any) *ParamError {
		return &ParamError{Param: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case d.EventID == "" || len(d.EventID) > 128 || strings.ContainsFunc(d.EventID, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		return bad("event_id", "give the drill run's id: 1 to 128 printable characters without spaces")
	case d.TS.IsZero():
		return bad("ts", "give the fault's time in RFC 3339, e.g. 2026-11-25T10:00:00Z")
	case d.TS.After(now.Add(drillFuture)):
		return bad("ts", "%s is more than %s ahead of this server's clock (%s)", d.TS.Format(time.RFC3339), drillFuture, now.UTC().Format(time.RFC3339))
	case !drillNameRE.MatchString(d.Scenario):
		return bad("scenario", "%q is not a scenario name: lower-case letters, digits, _ . -, up to 64, e.g. region_down", clip(d.Scenario))
	case d.Region == "":
		return bad("region", "give the faulted regions, comma-separated; use %s", strings.Join(regions, ", "))
	case len(d.Report) > maxDrillReport:
		return bad("report", "the report is %d bytes; keep it under %d", len(d.Report), maxDrillReport)
	}
	for r := range strings.SplitSeq(d.Region, ",") {
		if !slices.Contains(regions, strings.TrimSpace(r)) {
			return bad("region", "%q is not a region of the spec; use %s", clip(r), strings.Join(regions, ", "))
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"rto_seconds", d.RTOSeconds}, {"rpo_seconds", d.RPOSeconds}, {"detect_seconds", d.DetectSeconds}, {"decide_seconds", d.DecideSeconds}, {"shift_seconds", d.ShiftSeconds}} {
		if f.v != NotMeasured && (math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 || f.v > 7*24*3600) {
			return bad(f.name, "%v is not a duration in seconds between 0 and a week (or -1: not measured)", f.v)
		}
	}
	if d.SuccessRatio != NotMeasured && (math.IsNaN(d.SuccessRatio) || d.SuccessRatio < 0 || d.SuccessRatio > 1) {
		return bad("success_ratio", "%v is not a ratio between 0 and 1 (or -1: not measured)", d.SuccessRatio)
	}
	return nil
}

func (h *Handler) serveDrills(w http.ResponseWriter, r *http.Request) {
	if err := noParams(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Param, err.Msg)
		return
	}
	if h.cfg.Drills == nil {
		writeError(w, http.StatusServiceUnavailable, "", "drill results are not recorded on this server")
		return
	}
	var d DrillRecord
	if !decodeBody(w, r, maxDrillBody, &d, "a drill record",
		`{"event_id":"d1","ts":"2026-11-25T10:00:00Z","scenario":"region_down","region":"sh-a","passed":true,"rto_seconds":12,"rpo_seconds":0,"success_ratio":1}`) {
		return
	}
	if perr := d.Validate(h.cfg.Spec.RegionNames(), h.cfg.Now()); perr != nil {
		writeError(w, http.StatusBadRequest, perr.Param, perr.Msg)
		return
	}
	d.TS = d.TS.UTC()
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	if err := h.cfg.Drills.RecordDrill(ctx, d); err != nil {
		h.readFailed(w, r, "recording the drill result", err)
		return
	}
	d.Report = "" // the answer confirms the record, it need not echo the report
	writeJSON(w, http.StatusOK, d)
}
