package report

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const testDrillBody = `{"event_id":"drill-7f3a","ts":"2026-10-15T11:00:00Z","scenario":"same_city_dc_loss","region":"sh-a,sh-b","passed":true,` +
	`"rto_seconds":12.5,"rpo_seconds":0.4,"detect_seconds":2,"decide_seconds":6,"shift_seconds":1.5,"success_ratio":0.9999,"report":"# drill\n"}`

// A drill result posted with the write token reaches the recorder as sent,
// the answer confirms it without the report, and each bad field gets a 400
// that names it; nothing reaches the recorder then.
func TestDrillResultsArePostedValidatedAndRecorded(t *testing.T) {
	drills := &fakeDrills{}
	h, _, _ := newTestHandler(t, func(c *Config) { c.Drills = drills })
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	rec := do(h, "POST", "/api/v1/drills", testDrillBody, auth)
	if rec.Code != 200 {
		t.Fatalf("POST /api/v1/drills = %d %s", rec.Code, rec.Body)
	}
	var back DrillRecord
	if err := json.Unmarshal(rec.Body.Bytes(), &back); err != nil || back.EventID != "drill-7f3a" || back.Report != "" {
		t.Fatalf("answer %s (%v); want the record without its report", rec.Body, err)
	}
	if len(drills.recs) != 1 {
		t.Fatalf("recorded %d", len(drills.recs))
	}
	got := drills.recs[0]
	if got.Scenario != "same_city_dc_loss" || got.Region != "sh-a,sh-b" || !got.Passed || got.RTOSeconds != 12.5 || got.RPOSeconds != 0.4 ||
		got.DetectSeconds != 2 || got.DecideSeconds != 6 || got.ShiftSeconds != 1.5 || got.SuccessRatio != 0.9999 || got.Report != "# drill\n" ||
		!got.TS.Equal(testNow.Add(-90*60*1e9)) {
		t.Fatalf("recorded %+v", got)
	}

	swap := func(old, new string) string { return strings.Replace(testDrillBody, old, new, 1) }
	cases := map[string]struct{ body, param string }{
		"No event id.":                     {swap(`"drill-7f3a"`, `""`), "event_id"},
		"An event id with a space.":        {swap(`"drill-7f3a"`, `"drill 7"`), "event_id"},
		"No time.":                         {swap(`"ts":"2026-10-15T11:00:00Z",`, ``), "ts"},
		"A time an hour ahead.":            {swap(`11:00:00Z`, `13:31:00Z`), "ts"},
		"A scenario that is not a name.":   {swap(`"same_city_dc_loss"`, `"Region Down!"`), "scenario"},
		"A region the spec lacks.":         {swap(`"sh-a,sh-b"`, `"sh-a,mars"`), "region"},
		"No region.":                       {swap(`"sh-a,sh-b"`, `""`), "region"},
		"A negative RTO.":                  {swap(`"rto_seconds":12.5`, `"rto_seconds":-0.5`), "rto_seconds"},
		"An RPO of a month.":               {swap(`"rpo_seconds":0.4`, `"rpo_seconds":2592000`), "rpo_seconds"},
		"A success ratio above 1.":         {swap(`"success_ratio":0.9999`, `"success_ratio":99.99`), "success_ratio"},
		"A negative phase other than -1.":  {swap(`"detect_seconds":2`, `"detect_seconds":-2`), "detect_seconds"},
		"An unknown field.":                {swap(`"passed":true`, `"passed":true,"verdict":"ok"`), "body"},
		"Two records.":                     {testDrillBody + testDrillBody, "body"},
		"A report over the limit.":         {swap(`"# drill\n"`, `"`+strings.Repeat("x", maxDrillReport+1)+`"`), "report"},
		"Not JSON.":                        {`scenario=region_down`, "body"},
		"A number where a bool belongs.":   {swap(`"passed":true`, `"passed":1`), "body"},
		"A string where a number belongs.": {swap(`"rto_seconds":12.5`, `"rto_seconds":"12.5s"`), "body"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			n := len(drills.recs)
			rec := do(h, "POST", "/api/v1/drills", c.body, auth)
			var e errorBody
			_ = json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code != 400 || e.Param != c.param || e.Error == "" {
				t.Errorf("= %d %s; want 400 naming %s", rec.Code, clip(rec.Body.String()), c.param)
			}
			if len(drills.recs) != n {
				t.Error("a refused record reached the recorder")
			}
		})
	}

	// -1 marks what the drill did not measure (a stall has no detect phase).
	unmeasured := swap(`"detect_seconds":2,"decide_seconds":6,"shift_seconds":1.5`, `"detect_seconds":-1,"decide_seconds":-1,"shift_seconds":-1`)
	if rec := do(h, "POST", "/api/v1/drills", strings.Replace(unmeasured, "drill-7f3a", "drill-stall", 1), auth); rec.Code != 200 {
		t.Errorf("unmeasured phases (-1) = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/api/v1/drills", testDrillBody, nil); rec.Code != 401 {
		t.Errorf("without a token = %d", rec.Code)
	}
	drills.err = errors.New("clickhouse: connection refused")
	if rec := do(h, "POST", "/api/v1/drills", testDrillBody, auth); rec.Code != 502 || !strings.Contains(rec.Body.String(), "connection refused") {
		t.Errorf("a failing recorder = %d %s; want 502 with the cause", rec.Code, rec.Body)
	}
	h2, _, _ := newTestHandler(t, func(c *Config) { c.Drills = nil })
	if rec := do(h2, "POST", "/api/v1/drills", testDrillBody, auth); rec.Code != 503 {
		t.Errorf("without a recorder = %d %s; want 503", rec.Code, rec.Body)
	}
}
