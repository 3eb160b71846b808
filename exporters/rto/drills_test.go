package rto

import (
	"strings"
	"testing"
	"time"
)

func TestDrills(t *testing.T) {
	at := time.Unix(1_800_000_000, 500_000_000)
	d := &Drills{Now: func() time.Time { return at }}
	reg := registry(t, d)

	t.Run("No drill yet is no series, and the scrape is healthy.", func(t *testing.T) {
		out := scrape(t, reg)
		want(t, out, `carpool_exporter_up{exporter="drills"}`, 1)
		if strings.Contains(out, "carpool_drill_rto_seconds{") {
			t.Fatalf("series before any drill:\n%s", out)
		}
	})

	t.Run("A recorded drill is exported by phase, with its RPO and time.", func(t *testing.T) {
		err := d.Record("region-down", map[string]time.Duration{
			PhaseDetect: 3 * time.Second, PhaseDecide: 500 * time.Millisecond, PhaseShift: 1500 * time.Millisecond, PhaseTotal: 5200 * time.Millisecond,
		}, 1200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		out := scrape(t, reg)
		want(t, out, `carpool_drill_rto_seconds{phase="detect",scenario="region-down"}`, 3)
		want(t, out, `carpool_drill_rto_seconds{phase="decide",scenario="region-down"}`, 0.5)
		want(t, out, `carpool_drill_rto_seconds{phase="shift",scenario="region-down"}`, 1.5)
		want(t, out, `carpool_drill_rto_seconds{phase="total",scenario="region-down"}`, 5.2)
		want(t, out, `carpool_drill_rpo_seconds{scenario="region-down"}`, 1.2)
		want(t, out, `carpool_drill_timestamp_seconds{scenario="region-down"}`, 1_800_000_000.5)
		promtoolCheck(t, out)
	})

	t.Run("The last result per scenario replaces the previous one, phases and all.", func(t *testing.T) {
		phases := map[string]time.Duration{PhaseTotal: 9 * time.Second}
		if err := d.Record("region-down", phases, 0); err != nil {
			t.Fatal(err)
		}
		phases[PhaseTotal] = time.Hour // the caller's map is copied
		if err := d.Record("replication-stall", map[string]time.Duration{PhaseDetect: time.Second}, 4*time.Second); err != nil {
			t.Fatal(err)
		}
		out := scrape(t, reg)
		want(t, out, `carpool_drill_rto_seconds{phase="total",scenario="region-down"}`, 9)
		if strings.Contains(out, `phase="detect",scenario="region-down"`) {
			t.Fatalf("a phase of the previous drill is still exported:\n%s", out)
		}
		want(t, out, `carpool_drill_rpo_seconds{scenario="region-down"}`, 0)
		want(t, out, `carpool_drill_rpo_seconds{scenario="replication-stall"}`, 4)
	})

	t.Run("Bad results are refused and change nothing.", func(t *testing.T) {
		for name, rec := range map[string]func() error{
			"empty scenario":  func() error { return d.Record("", nil, 0) },
			"negative rpo":    func() error { return d.Record("x", nil, -time.Second) },
			"negative phase":  func() error { return d.Record("x", map[string]time.Duration{PhaseShift: -1}, 0) },
			"unnamed phase":   func() error { return d.Record("x", map[string]time.Duration{"": 1}, 0) },
			"zero-value safe": func() error { return (&Drills{}).Record("y", nil, 0) },
		} {
			err := rec()
			if (err == nil) != (name == "zero-value safe") {
				t.Errorf("%s: %v", name, err)
			}
		}
		if strings.Contains(scrape(t, reg), `scenario="x"`) {
			t.Fatal("a refused drill was recorded")
		}
	})
}
