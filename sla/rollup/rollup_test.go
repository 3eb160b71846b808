package rollup

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/alerts"
	"github.com/carpoolsla/carpoolsla/sla/source"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// fakeStore answers the rollup's expressions with fixed per-region values
// and records the evaluation times it was asked for.
type fakeStore struct {
	answers map[string]map[string]float64 // expr -> region -> value
	asked   []time.Time
	fail    bool
}

func (f *fakeStore) Query(_ context.Context, expr string, at time.Time) (source.Vector, error) {
	if f.fail {
		return nil, errors.New("store down")
	}
	f.asked = append(f.asked, at)
	var v source.Vector
	for region, val := range f.answers[expr] {
		v = append(v, source.Sample{Labels: map[string]string{"region": region}, Value: val, T: at})
	}
	return v, nil
}

type memSink struct{ rows []Minute }

func (m *memSink) WriteMinutes(_ context.Context, rows []Minute) error {
	m.rows = append(m.rows, rows...)
	return nil
}

func oneSLOSpec() *spec.Spec {
	s := spec.Default()
	s.Regions = []spec.Region{{Name: "a", City: "x"}, {Name: "b", City: "x"}}
	s.Services = []spec.Service{{Name: "order", Weight: 1, Operations: []string{"create_ride"},
		SLOs: []spec.SLO{{Name: "availability", Kind: spec.KindAvailability, Objective: 99.9}}}}
	return &s
}

func TestAMinuteBecomesOneRowPerRegionWithTraffic(t *testing.T) {
	s := oneSLOSpec()
	good, total := alerts.SLIEvents(s.Services[0], s.Services[0].SLOs[0], "increase", "1m", " by (region)")
	st := &fakeStore{answers: map[string]map[string]float64{
		good:  {"a": 119.6, "b": 3},
		total: {"a": 120.2}, // b had no total: its good value is noise and must not make a row
	}}
	sink := &memSink{}
	now := time.Date(2026, 11, 25, 10, 3, 40, 0, time.UTC)
	r, err := New(Config{Spec: s, Querier: st, Sink: sink, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Step(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Step wrote %d rows, err %v; want 1 row", n, err)
	}
	row := sink.rows[0]
	// now 10:03:40 minus the 30s delay is 10:03:10, so the last finished minute is 10:02.
	wantMinute := time.Date(2026, 11, 25, 10, 2, 0, 0, time.UTC)
	if !row.Minute.Equal(wantMinute) || row.Region != "a" || row.Good != 120 || row.Total != 120 {
		t.Errorf("row = %+v; want minute %s region a good 120 (rounded) total 120", row, wantMinute)
	}
	if got := st.asked[0]; !got.Equal(wantMinute.Add(time.Minute)) {
		t.Errorf("evaluated at %s; want the minute's end %s", got, wantMinute.Add(time.Minute))
	}
	if row.EventID != EventID(wantMinute, "order", "availability", "a") {
		t.Error("the row's id is not the deterministic id of its minute, service, SLO and region")
	}
}

func TestIDsAreStableAndDistinct(t *testing.T) {
	m := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	if EventID(m, "s", "o", "r") != EventID(m.Truncate(time.Minute), "s", "o", "r") {
		t.Error("the same minute gave two ids")
	}
	if EventID(m, "s", "o", "r") == EventID(m, "s", "o", "q") || EventID(m, "s", "o", "r") == EventID(m.Add(time.Minute), "s", "o", "r") {
		t.Error("different rows share an id")
	}
}

func TestAPausedRollupCatchesUpBoundedAndAFailureRetriesTheSameMinute(t *testing.T) {
	s := oneSLOSpec()
	good, total := alerts.SLIEvents(s.Services[0], s.Services[0].SLOs[0], "increase", "1m", " by (region)")
	st := &fakeStore{answers: map[string]map[string]float64{good: {"a": 10}, total: {"a": 10}}}
	sink := &memSink{}
	now := time.Date(2026, 11, 25, 10, 0, 45, 0, time.UTC)
	r, err := New(Config{Spec: s, Querier: st, Sink: sink, CatchUp: 5, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Step(context.Background()); err != nil || n != 1 {
		t.Fatalf("first step: %d rows, %v", n, err)
	}
	now = now.Add(3 * time.Minute)
	st.fail = true
	if _, err := r.Step(context.Background()); err == nil {
		t.Fatal("a failing store did not fail the step")
	}
	st.fail = false
	if n, err := r.Step(context.Background()); err != nil || n != 3 {
		t.Fatalf("after the store came back: %d rows, %v; want the 3 missed minutes", n, err)
	}
	now = now.Add(20 * time.Minute)
	if n, err := r.Step(context.Background()); err != nil || n != 5 {
		t.Fatalf("after a 20-minute pause: %d rows, %v; want the catch-up bound of 5", n, err)
	}
	seen := map[string]bool{}
	for _, row := range sink.rows {
		if seen[row.EventID.String()] {
			t.Errorf("minute %s written twice", row.Minute)
		}
		seen[row.EventID.String()] = true
	}
}

func TestConfigNamesWhatIsMissing(t *testing.T) {
	_, err := New(Config{})
	if err == nil {
		t.Fatal("an empty config was accepted")
	}
	for _, want := range []string{"Spec", "Querier", "Sink"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
