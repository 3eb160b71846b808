package report

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// ParamError is a request input the API rejects: it answers 400 with
// {"error": Msg, "param": Param}.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Msg }

func paramErr(param, format string, args ...any) *ParamError {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// Scope says what a report covers.
type Scope string

// Scopes of a report.
const (
	// ScopeComposite: every service in every region (the global composite).
	ScopeComposite Scope = "composite"
	// ScopeService: one service, in every region or in one.
	ScopeService Scope = "service"
	// ScopeRegion: every service in one region; downtime is breaker-open time.
	ScopeRegion Scope = "region"
)

// Query is a validated report request.
type Query struct {
	Scope   Scope
	Service string // scope service
	Region  string // scope region; optional for scope service
	// From and To bound the window [From, To).
	From, To time.Time
	// Month is the calendar month (2026-10) when the window is one.
	Month string
	// Limit caps the incidents returned (DefaultMaxIncidents when not positive).
	Limit int
	// CSV asks for the CSV export.
	CSV bool
}

// TimeseriesQuery is a validated timeseries request.
type TimeseriesQuery struct {
	Scope   Scope
	Service string
	Region  string
	// Hours is the span, Step the bucket width.
	Hours int
	Step  time.Duration
	// From and To bound the buckets: To is the end of the bucket holding
	// now, From = To - Hours.
	From, To time.Time
}

// Limits bound what one request may ask for.
type Limits struct {
	// MaxWindow is the longest report window (default 400 days).
	MaxWindow time.Duration
	// MaxIncidents caps the incidents of one report (default 500).
	MaxIncidents int
	// MaxHours is the longest timeseries span (default 31 days).
	MaxHours int
	// MaxPoints caps the buckets of one timeseries (default 2000).
	MaxPoints int
}

// ClickHouse's DateTime holds seconds from 1970 to 2105: windows must fit.
var (
	minTime = time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2105, 12, 31, 0, 0, 0, 0, time.UTC)
)

var (
	reportParams     = []string{"scope", "service", "region", "month", "from", "to", "format", "limit"}
	timeseriesParams = []string{"scope", "service", "region", "hours", "step"}
	monthRe          = regexp.MustCompile(`^(\d{4})-(\d{2})$`)
)

// checkParams refuses a parameter that is not known or given twice.
func checkParams(v url.Values, known []string) *ParamError {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !slices.Contains(known, k) {
			return paramErr(clip(k), "is not a parameter of this endpoint; use %s", strings.Join(known, ", "))
		}
		if len(v[k]) > 1 {
			return paramErr(clip(k), "is given %d times; give it once", len(v[k]))
		}
	}
	return nil
}

// clip shortens a parameter name echoed back in an error, and names an
// empty one.
func clip(s string) string {
	if s == "" {
		return "(empty name)"
	}
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.ToValidUTF8(s, "?")
}

// parseScope reads scope, service and region against the spec.
func parseScope(v url.Values, s *spec.Spec) (Scope, string, string, *ParamError) {
	scope := Scope(v.Get("scope"))
	if scope == "" {
		scope = ScopeComposite
	}
	service, region := v.Get("service"), v.Get("region")
	services := serviceNames(s)
	regions := s.RegionNames()
	if _, ok := v["service"]; ok && !slices.Contains(services, service) {
		return "", "", "", paramErr("service", "%q is not a service of the spec; use one of %s", clip(service), strings.Join(services, ", "))
	}
	if _, ok := v["region"]; ok && !slices.Contains(regions, region) {
		return "", "", "", paramErr("region", "%q is not a region of the spec; use one of %s", clip(region), strings.Join(regions, ", "))
	}
	switch scope {
	case ScopeComposite:
		if service != "" {
			return "", "", "", paramErr("service", "does not apply to scope=composite; use scope=service&service=%s", service)
		}
		if region != "" {
			return "", "", "", paramErr("region", "does not apply to scope=composite; use scope=region&region=%s for one region's composite", region)
		}
	case ScopeService:
		if service == "" {
			return "", "", "", paramErr("service", "is required with scope=service; use one of %s", strings.Join(services, ", "))
		}
	case ScopeRegion:
		if region == "" {
			return "", "", "", paramErr("region", "is required with scope=region; use one of %s", strings.Join(regions, ", "))
		}
		if service != "" {
			return "", "", "", paramErr("service", "does not apply to scope=region; use scope=service&service=%s&region=%s for one service in one region", service, region)
		}
	default:
		return "", "", "", paramErr("scope", "%q is not a scope; use composite, service or region", clip(string(scope)))
	}
	return scope, service, region, nil
}

// ParseQuery validates the query string of GET /api/v1/sla. Without month,
// from and to, the window is the current calendar month (UTC).
func ParseQuery(v url.Values, s *spec.Spec, now time.Time, lim Limits) (Query, *ParamError) {
	if err := checkParams(v, reportParams); err != nil {
		return Query{}, err
	}
	scope, service, region, perr := parseScope(v, s)
	if perr != nil {
		return Query{}, perr
	}
	q := Query{Scope: scope, Service: service, Region: region, Limit: lim.MaxIncidents}
	switch f := v.Get("format"); f {
	case "", "json":
	case "csv":
		q.CSV = true
	default:
		return Query{}, paramErr("format", "%q is not a format; use json or csv", clip(f))
	}
	if l, ok := v["limit"]; ok {
		n, err := strconv.Atoi(l[0])
		if err != nil || n < 1 || n > lim.MaxIncidents {
			return Query{}, paramErr("limit", "%q is not a number of incidents from 1 to %d", clip(l[0]), lim.MaxIncidents)
		}
		q.Limit = n
	}
	_, hasMonth := v["month"]
	_, hasFrom := v["from"]
	_, hasTo := v["to"]
	switch {
	case hasMonth && (hasFrom || hasTo):
		p := "from"
		if !hasFrom {
			p = "to"
		}
		return Query{}, paramErr(p, "cannot be combined with month; give month=YYYY-MM or from and to")
	case hasMonth:
		from, err := parseMonth(v.Get("month"))
		if err != nil {
			return Query{}, err
		}
		q.From, q.To, q.Month = from, from.AddDate(0, 1, 0), v.Get("month")
	case hasFrom != hasTo:
		if !hasFrom {
			return Query{}, paramErr("from", "is missing; give both from and to (RFC 3339, e.g. 2026-10-01T00:00:00Z)")
		}
		return Query{}, paramErr("to", "is missing; give both from and to (RFC 3339, e.g. 2026-11-01T00:00:00Z)")
	case hasFrom:
		from, err := parseTime("from", v.Get("from"))
		if err != nil {
			return Query{}, err
		}
		to, err := parseTime("to", v.Get("to"))
		if err != nil {
			return Query{}, err
		}
		if !to.After(from) {
			return Query{}, paramErr("to", "is not after from; give a window with to > from")
		}
		if to.Sub(from) > lim.MaxWindow {
			return Query{}, paramErr("to", "the window is %s long; ask for at most %s (split a longer period into several reports)", fmtDays(to.Sub(from)), fmtDays(lim.MaxWindow))
		}
		q.From, q.To = from, to
	default:
		y, m, _ := now.UTC().Date()
		q.From = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		q.To = q.From.AddDate(0, 1, 0)
		q.Month = q.From.Format("2006-01")
	}
	return q, nil
}

func parseMonth(s string) (time.Time, *ParamError) {
	m := monthRe.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, paramErr("month", "%q is not a month; write YYYY-MM (UTC calendar month), e.g. 2026-10", clip(s))
	}
	year, _ := strconv.Atoi(m[1])
	mon, _ := strconv.Atoi(m[2])
	if mon < 1 || mon > 12 {
		return time.Time{}, paramErr("month", "%q has no month %02d; months run 01 to 12", s, mon)
	}
	t := time.Date(year, time.Month(mon), 1, 0, 0, 0, 0, time.UTC)
	if t.Before(minTime) || !t.AddDate(0, 1, 0).Before(maxTime) {
		return time.Time{}, paramErr("month", "%q is outside what the history can hold; give a month from 1970-02 to 2105-11", s)
	}
	return t, nil
}

func parseTime(param, s string) (time.Time, *ParamError) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, paramErr(param, "%q is not an RFC 3339 time; write e.g. 2026-10-01T00:00:00Z", clip(s))
	}
	t = t.UTC()
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, paramErr(param, "%s is outside what the history can hold; give a time from 1970-01-02 to 2105-12-31", s)
	}
	return t, nil
}

func fmtDays(d time.Duration) string {
	days := d.Hours() / 24
	if days == float64(int64(days)) {
		return strconv.FormatInt(int64(days), 10) + " days"
	}
	return strconv.FormatFloat(days, 'f', 2, 64) + " days"
}

// Timeseries steps: a step divides a day, so buckets line up on days.
var stepMinutes = []int{1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440}

// ParseTimeseries validates the query string of GET /api/v1/sla/timeseries.
// hours defaults to 24 and step (minutes) to 60.
func ParseTimeseries(v url.Values, s *spec.Spec, now time.Time, lim Limits) (TimeseriesQuery, *ParamError) {
	if err := checkParams(v, timeseriesParams); err != nil {
		return TimeseriesQuery{}, err
	}
	scope, service, region, perr := parseScope(v, s)
	if perr != nil {
		return TimeseriesQuery{}, perr
	}
	q := TimeseriesQuery{Scope: scope, Service: service, Region: region, Hours: 24, Step: time.Hour}
	if h, ok := v["hours"]; ok {
		n, err := strconv.Atoi(h[0])
		if err != nil || n < 1 || n > lim.MaxHours {
			return TimeseriesQuery{}, paramErr("hours", "%q is not a number of hours from 1 to %d", clip(h[0]), lim.MaxHours)
		}
		q.Hours = n
	}
	if st, ok := v["step"]; ok {
		n, err := strconv.Atoi(st[0])
		if err != nil || !slices.Contains(stepMinutes, n) {
			return TimeseriesQuery{}, paramErr("step", "%q is not a step; give minutes that divide a day: %s", clip(st[0]), joinInts(stepMinutes))
		}
		q.Step = time.Duration(n) * time.Minute
	}
	span := time.Duration(q.Hours) * time.Hour
	if span%q.Step != 0 {
		return TimeseriesQuery{}, paramErr("step", "%s does not divide %d hours; pick a step that does", q.Step, q.Hours)
	}
	if n := int(span / q.Step); n > lim.MaxPoints {
		return TimeseriesQuery{}, paramErr("step", "%d hours in steps of %s make %d points; at most %d: use a longer step", q.Hours, q.Step, n, lim.MaxPoints)
	}
	q.To = now.UTC().Truncate(q.Step).Add(q.Step)
	q.From = q.To.Add(-span)
	return q, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

func serviceNames(s *spec.Spec) []string {
	out := make([]string, len(s.Services))
	for i, svc := range s.Services {
		out[i] = svc.Name
	}
	return out
}
