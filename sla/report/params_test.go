package report

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

var testLimits = Limits{MaxWindow: DefaultMaxWindow, MaxIncidents: DefaultMaxIncidents, MaxHours: DefaultMaxHours, MaxPoints: DefaultMaxPoints}

func TestParseQueryRejectsBadInputNamingTheParameter(t *testing.T) {
	s := testSpec(t)
	cases := map[string]struct {
		query, param, says string
	}{
		"An unknown parameter is named.":                     {"monht=2026-10", "monht", "not a parameter"},
		"A parameter given twice is refused.":                {"month=2026-10&month=2026-11", "month", "given 2 times"},
		"A scope that does not exist is refused.":            {"scope=planet", "scope", "composite, service or region"},
		"Scope service needs a service.":                     {"scope=service", "service", "required with scope=service"},
		"Scope region needs a region.":                       {"scope=region", "region", "required with scope=region"},
		"A service the spec does not list is refused.":       {"scope=service&service=taxi", "service", "not a service of the spec"},
		"A region the spec does not list is refused.":        {"scope=region&region=mars", "region", "not a region of the spec"},
		"The composite takes no service.":                    {"service=order", "service", "does not apply to scope=composite"},
		"The composite takes no region.":                     {"region=sh-a", "region", "scope=region"},
		"Scope region takes no service.":                     {"scope=region&region=sh-a&service=order", "service", "does not apply to scope=region"},
		"A month must be YYYY-MM.":                           {"month=2026-1", "month", "YYYY-MM"},
		"Month 13 does not exist.":                           {"month=2026-13", "month", "months run 01 to 12"},
		"Month 00 does not exist.":                           {"month=2026-00", "month", "months run 01 to 12"},
		"A month before 1970 cannot be held.":                {"month=1969-12", "month", "outside what the history can hold"},
		"Month and from cannot be combined.":                 {"month=2026-10&from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z", "from", "cannot be combined with month"},
		"Month and to cannot be combined.":                   {"month=2026-10&to=2026-10-02T00:00:00Z", "to", "cannot be combined with month"},
		"From without to is refused.":                        {"from=2026-10-01T00:00:00Z", "to", "is missing"},
		"To without from is refused.":                        {"to=2026-10-01T00:00:00Z", "from", "is missing"},
		"From must be RFC 3339.":                             {"from=2026-10-01&to=2026-10-02T00:00:00Z", "from", "RFC 3339"},
		"To must be RFC 3339.":                               {"from=2026-10-01T00:00:00Z&to=yesterday", "to", "RFC 3339"},
		"To must be after from.":                             {"from=2026-10-02T00:00:00Z&to=2026-10-01T00:00:00Z", "to", "not after from"},
		"An empty window is refused.":                        {"from=2026-10-01T00:00:00Z&to=2026-10-01T00:00:00Z", "to", "not after from"},
		"A window longer than 400 days is refused.":          {"from=2025-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "to", "at most 400 days"},
		"A time past what DateTime holds is refused.":        {"from=2026-10-01T00:00:00Z&to=2200-01-01T00:00:00Z", "to", "outside what the history can hold"},
		"A format other than json or csv is refused.":        {"format=xml", "format", "json or csv"},
		"A limit above the cap is refused.":                  {"limit=501", "limit", "from 1 to 500"},
		"A limit of zero is refused.":                        {"limit=0", "limit", "from 1 to 500"},
		"A limit that is not a number is refused.":           {"limit=ten", "limit", "from 1 to 500"},
		"An unknown parameter that is very long is clipped.": {strings.Repeat("x", 300) + "=1", strings.Repeat("x", 64), "not a parameter"},
		"An unknown parameter beside valid ones is named.":   {"scope=composite&colour=red", "colour", "not a parameter"},
		"A month given twice is refused even when equal.":    {"month=2026-10&month=2026-10", "month", "given 2 times"},
		"A parameter without a name is named as such.":       {"=1", "(empty name)", "not a parameter"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			v, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := ParseQuery(v, s, testNow, testLimits)
			if perr == nil {
				t.Fatalf("ParseQuery(%q) accepted it", c.query)
			}
			if perr.Param != c.param || !strings.Contains(perr.Msg, c.says) {
				t.Errorf("ParseQuery(%q) = param %q, %q; want param %q saying %q", c.query, perr.Param, perr.Msg, c.param, c.says)
			}
		})
	}
}

func TestParseQueryWindows(t *testing.T) {
	s := testSpec(t)
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	cases := map[string]struct {
		query    string
		from, to time.Time
		month    string
		scope    Scope
	}{
		"No window means the current calendar month.":       {"", d(2026, 10, 1), d(2026, 11, 1), "2026-10", ScopeComposite},
		"A month is its UTC calendar month.":                {"month=2026-02", d(2026, 2, 1), d(2026, 3, 1), "2026-02", ScopeComposite},
		"December ends at the next year's first.":           {"month=2026-12", d(2026, 12, 1), d(2027, 1, 1), "2026-12", ScopeComposite},
		"From and to are taken as given, in UTC.":           {"from=2026-10-01T02:00:00%2B02:00&to=2026-10-03T00:00:00Z", d(2026, 10, 1), d(2026, 10, 3), "", ScopeComposite},
		"A window of exactly 400 days is allowed.":          {"from=2025-01-01T00:00:00Z&to=2026-02-05T00:00:00Z", d(2025, 1, 1), d(2026, 2, 5), "", ScopeComposite},
		"Scope service with a region keeps both.":           {"scope=service&service=order&region=sh-a", d(2026, 10, 1), d(2026, 11, 1), "2026-10", ScopeService},
		"Scope region reads its region.":                    {"scope=region&region=bj-a&month=2026-09", d(2026, 9, 1), d(2026, 10, 1), "2026-09", ScopeRegion},
		"An explicit composite scope is the default scope.": {"scope=composite&format=csv", d(2026, 10, 1), d(2026, 11, 1), "2026-10", ScopeComposite},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			v, _ := url.ParseQuery(c.query)
			q, perr := ParseQuery(v, s, testNow, testLimits)
			if perr != nil {
				t.Fatalf("ParseQuery(%q): %v", c.query, perr)
			}
			if !q.From.Equal(c.from) || !q.To.Equal(c.to) || q.Month != c.month || q.Scope != c.scope {
				t.Errorf("ParseQuery(%q) = [%s, %s) month %q scope %s; want [%s, %s) month %q scope %s",
					c.query, q.From, q.To, q.Month, q.Scope, c.from, c.to, c.month, c.scope)
			}
			if q.Limit != DefaultMaxIncidents {
				t.Errorf("limit %d, want the cap %d", q.Limit, DefaultMaxIncidents)
			}
		})
	}
}

func TestParseTimeseries(t *testing.T) {
	s := testSpec(t)
	f := func(query string, wantErrParam string, wantFrom, wantTo time.Time, wantStep time.Duration) {
		t.Helper()
		v, _ := url.ParseQuery(query)
		q, perr := ParseTimeseries(v, s, testNow, testLimits)
		if wantErrParam != "" {
			if perr == nil || perr.Param != wantErrParam {
				t.Errorf("ParseTimeseries(%q) = %v; want an error on %q", query, perr, wantErrParam)
			}
			return
		}
		if perr != nil {
			t.Fatalf("ParseTimeseries(%q): %v", query, perr)
		}
		if !q.From.Equal(wantFrom) || !q.To.Equal(wantTo) || q.Step != wantStep {
			t.Errorf("ParseTimeseries(%q) = [%s, %s) step %s; want [%s, %s) step %s", query, q.From, q.To, q.Step, wantFrom, wantTo, wantStep)
		}
	}
	// testNow is 2026-10-15 12:30: the hourly bucket holding it ends at 13:00.
	at := func(day, h, m int) time.Time { return time.Date(2026, 10, day, h, m, 0, 0, time.UTC) }
	f("", "", at(14, 13, 0), at(15, 13, 0), time.Hour)
	f("hours=6&step=5", "", at(15, 6, 35), at(15, 12, 35), 5*time.Minute)
	f("hours=1&step=1&scope=service&service=pricing", "", at(15, 11, 31), at(15, 12, 31), time.Minute)
	f("hours=0", "hours", time.Time{}, time.Time{}, 0)
	f("hours=745", "hours", time.Time{}, time.Time{}, 0)
	f("hours=24&step=7", "step", time.Time{}, time.Time{}, 0)
	f("hours=1&step=120", "step", time.Time{}, time.Time{}, 0)
	f("hours=48&step=1", "step", time.Time{}, time.Time{}, 0) // 2880 points > 2000
	f("hours=24&month=2026-10", "month", time.Time{}, time.Time{}, 0)
	f("scope=region", "region", time.Time{}, time.Time{}, 0)
}
