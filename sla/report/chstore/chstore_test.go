package chstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/carpoolsla/carpoolsla/sla/report"
)

// failingConn records the SQL it is sent and fails every query.
type failingConn struct{ sql []string }

func (c *failingConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	c.sql = append(c.sql, query)
	return nil, errors.New("connection refused")
}

func TestLiteralsAreQuotedAndTyped(t *testing.T) {
	f := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	f(str(`sh-a`), `'sh-a'`)
	f(str(`it's \ here`), `'it\'s \\ here'`)
	f(flt(1), "1.0")
	f(flt(0.35), "0.35")
	f(flt(99.5), "99.5")
	f(strs([]string{"a", "b'"}), `['a', 'b\'']`)
	f(flts([]float64{0.6, 1}), "[0.6, 1.0]")
	f(when(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)), "toDateTime(1790812800)")
}

func TestNewChecksItsInputs(t *testing.T) {
	if _, err := New(nil, Config{}); err == nil || !strings.Contains(err.Error(), "conn is nil") {
		t.Errorf("New(nil) = %v", err)
	}
	if _, err := New(&failingConn{}, Config{Database: "x; DROP TABLE y"}); err == nil || !strings.Contains(err.Error(), "plain identifier") {
		t.Errorf("a database name with SQL in it = %v", err)
	}
	if s, err := New(&failingConn{}, Config{}); err != nil || s.db != DefaultDatabase {
		t.Errorf("New with defaults = %v, %v", s, err)
	}
}

func TestQueriesFilterOnTheScopeAndCountEachEventOnce(t *testing.T) {
	c := &failingConn{}
	st, _ := New(c, Config{Database: "reports"})
	from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	slos := []report.SLOTarget{{Service: "order", SLO: "availability", ObjectivePPB: 999_900_000, Key: true}}
	ctx := context.Background()
	err1 := st.SLIMinutes(ctx, report.SLIQuery{From: from, To: to, Region: "sh-a", SLOs: slos}, func(report.MinuteCounts) error { return nil })
	_, err2 := st.SLIBuckets(ctx, report.BucketQuery{From: from, To: to, Step: time.Hour, SLOs: slos})
	_, err3 := st.BreakerEvents(ctx, report.EventQuery{From: from, To: to, Region: "sh-a", Limit: 10})
	_, err4 := st.DrillStats(ctx, report.DrillQuery{From: from, To: to, Default: report.DrillObjective{RTO: 90 * time.Second, RPO: 5 * time.Second}})
	for i, err := range []error{err1, err2, err3, err4} {
		if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "reports.") {
			t.Errorf("query %d: error %v does not wrap the cause and name the table", i+1, err)
		}
	}
	if len(c.sql) != 4 {
		t.Fatalf("%d queries sent, want 4 (each stops at its first failure)", len(c.sql))
	}
	for i, q := range c.sql {
		if !strings.Contains(q, "GROUP BY event_id") {
			t.Errorf("query %d does not deduplicate by event id:\n%s", i+1, q)
		}
		// The breaker query (3) first reads the state before the window: it has no upper bound.
		if !strings.Contains(q, "toDateTime(1790812800)") || (i != 2 && !strings.Contains(q, "toDateTime(1793491200)")) {
			t.Errorf("query %d does not bound the window:\n%s", i+1, q)
		}
	}
	if !strings.Contains(c.sql[0], "region = 'sh-a'") || !strings.Contains(c.sql[2], "region = 'sh-a'") || strings.Contains(c.sql[1], "region =") {
		t.Errorf("the region filter is not where it belongs:\n%s", strings.Join(c.sql, "\n---\n"))
	}
	if !strings.Contains(c.sql[3], "rto <= 90.0 AND rpo <= 5.0") {
		t.Errorf("drills without per-scenario objectives should compare with the defaults:\n%s", c.sql[3])
	}
}

func TestTheLastTransitionOfASecondIsTheOneNothingContinues(t *testing.T) {
	at := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	evs := []report.BreakerEvent{
		{At: at, Region: "a", From: "recovering", To: "closed"},
		{At: at, Region: "a", From: "open", To: "recovering"},
	}
	if got := lastInChain(evs); got.To != "closed" {
		t.Errorf("lastInChain = %+v, want the move to closed", got)
	}
	if got := lastInChain(evs[1:]); got.To != "recovering" {
		t.Errorf("lastInChain of one = %+v", got)
	}
}
