package memhistory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/report/memhistory"
	"github.com/carpoolsla/carpoolsla/sla/rollup"
)

// The store takes the rollup's minutes and the engine's events, and the
// report reads them back; a replayed minute counts once.
func Example() {
	ctx := context.Background()
	now := time.Date(2026, 10, 1, 1, 0, 0, 0, time.UTC)
	st, err := memhistory.New(memhistory.Config{Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	m := time.Date(2026, 10, 1, 0, 10, 0, 0, time.UTC)
	row := rollup.Minute{EventID: rollup.EventID(m, "order", "availability", "sh-a"), Minute: m,
		Service: "order", SLO: "availability", Region: "sh-a", Good: 998, Total: 1000}
	_ = st.WriteMinutes(ctx, []rollup.Minute{row})
	_ = st.WriteMinutes(ctx, []rollup.Minute{row}) // a replay
	_ = st.Emit(ctx, []engine.Event{{ID: "e1", At: m, Kind: "breaker", Region: "sh-a", From: "closed", To: "open", Reason: "p99 0.512s > 0.300s"}})

	_ = st.SLIMinutes(ctx, report.SLIQuery{From: m.Add(-time.Hour), To: now,
		SLOs: []report.SLOTarget{{Service: "order", SLO: "availability"}}}, func(mc report.MinuteCounts) error {
		fmt.Println(mc.Minute.Format("15:04"), mc.SLOs[0].Good, "of", mc.SLOs[0].Total)
		return nil
	})
	h, _ := st.BreakerEvents(ctx, report.EventQuery{From: m.Add(time.Minute), To: now, Limit: 10})
	fmt.Println("sh-a at 00:11:", h.Before["sh-a"].To)
	fmt.Printf("%+v\n", st.Stats())
	// Output:
	// 00:10 998 of 1000
	// sh-a at 00:11: open
	// {Minutes:1 Events:1 Drills:0 Duplicates:1 Expired:0 Trimmed:0 Rejected:0 Ignored:0}
}
