package report_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/report/chstore"
	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// BenchmarkReportFromClickHouse answers reports over a full month of the
// shipped spec's SLIs: 3 regions × 8 SLOs × 43,200 minutes = 1,036,800
// sli_minutes rows (the volume of one real month), on ClickHouse 18.16.
func BenchmarkReportFromClickHouse(b *testing.B) {
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		b.Fatal(err)
	}
	ch := realserver.StartClickHouse(b)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr}, Auth: clickhouse.Auth{Database: "default", Username: "default"}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	if _, err := chsink.Migrate(ctx, conn, chsink.SchemaOptions{Retention: 180 * 24 * time.Hour}); err != nil {
		b.Fatal(err)
	}
	var slos, services []string
	for _, svc := range s.Services {
		for _, slo := range svc.SLOs {
			services, slos = append(services, fmt.Sprintf("'%s'", svc.Name)), append(slos, fmt.Sprintf("'%s'", slo.Name))
		}
	}
	n := len(slos) * len(s.Regions)
	start := time.Now()
	// One bad event in 7 rows; every row its own event id.
	ch.Query(b, fmt.Sprintf(`INSERT INTO carpoolsla.sli_minutes (event_id, minute, service, slo, region, good, total)
SELECT generateUUIDv4(), toDateTime('2026-10-01 00:00:00') + 60 * intDiv(number, %[1]d),
  arrayElement([%[2]s], (number %% %[3]d) + 1), arrayElement([%[4]s], (number %% %[3]d) + 1),
  arrayElement(['sh-a', 'sh-b', 'bj-a'], (intDiv(number, %[3]d) %% 3) + 1),
  toUInt64(1000 - (number %% 7 = 0)), toUInt64(1000)
FROM numbers(%[5]d)`, n, join(services), len(slos), join(slos), 43200*n))
	b.Logf("loaded %d sli_minutes rows in %s", 43200*n, time.Since(start).Round(time.Millisecond))
	st, err := chstore.New(conn, chstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	h, err := report.New(report.Config{Spec: s, History: st, Now: func() time.Time { return time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, target string }{
		{"composite month", "/api/v1/sla?month=2026-10"},
		{"region month", "/api/v1/sla?scope=region&region=sh-a&month=2026-10"},
		{"service month CSV", "/api/v1/sla?scope=service&service=order&month=2026-10&format=csv"},
		{"timeseries 24h hourly", "/api/v1/sla/timeseries?hours=24"},
		{"timeseries 31d 6-hourly", "/api/v1/sla/timeseries?hours=744&step=360"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", c.target, nil)
				req.RemoteAddr = "127.0.0.1:1"
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

func join(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// BenchmarkIncidents turns a month of flapping breakers (10,000 transitions
// over 3 regions) into intervals.
func BenchmarkIncidents(b *testing.B) {
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var h report.BreakerHistory
	states := []string{report.BreakerClosed, report.BreakerOpen, report.BreakerRecovering}
	for i := range 10_000 {
		h.Events = append(h.Events, report.BreakerEvent{
			At: from.Add(time.Duration(i) * 4 * time.Minute), Region: []string{"sh-a", "sh-b", "bj-a"}[i%3],
			From: states[(i/3)%3], To: states[(i/3+1)%3], Reason: "p99",
		})
	}
	to := from.AddDate(0, 1, 0)
	for b.Loop() {
		if len(report.Incidents(h, from, to, to)) == 0 {
			b.Fatal("no incidents")
		}
	}
}

// BenchmarkParseQuery validates a typical report query string.
func BenchmarkParseQuery(b *testing.B) {
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		b.Fatal(err)
	}
	v, _ := url.ParseQuery("scope=service&service=order&region=sh-a&from=2026-10-01T00:00:00Z&to=2026-10-15T00:00:00Z&limit=50")
	lim := report.Limits{MaxWindow: report.DefaultMaxWindow, MaxIncidents: 500, MaxHours: 744, MaxPoints: 2000}
	now := time.Now()
	for b.Loop() {
		if _, perr := report.ParseQuery(v, s, now, lim); perr != nil {
			b.Fatal(perr)
		}
	}
}

// BenchmarkWriteCSV writes the CSV export of a shipped-spec report.
func BenchmarkWriteCSV(b *testing.B) {
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rep := &report.SLAReport{Scope: report.ScopeComposite}
	for _, svc := range s.Services {
		att := 99.95
		rep.Services = append(rep.Services, report.ServiceReport{Service: svc.Name, Weight: svc.Weight, AttainmentPercent: &att})
		for _, slo := range svc.SLOs {
			rep.SLOs = append(rep.SLOs, report.SLOReport{Service: svc.Name, SLO: slo.Name, Kind: slo.Kind, Good: 999_500, Total: 1_000_000, AttainmentPercent: &att})
		}
	}
	for b.Loop() {
		if err := report.WriteCSV(io.Discard, rep); err != nil {
			b.Fatal(err)
		}
	}
}
