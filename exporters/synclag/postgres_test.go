package synclag

import (
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// A single real PostgreSQL plays source and target (realserver starts no
// streaming replica): the writer creates the table and upserts, the reader
// reads the rows back, and lag follows the clock.
func TestPostgresBackendWritesAndReadsTheHeartbeatTable(t *testing.T) {
	pg := realserver.StartPostgres(t)
	b, err := OpenPostgres(PostgresConfig{DSN: pg.DSN, Table: "ops.carpool_heartbeat", CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	clk := newClock()
	w, err := NewWriter(WriterConfig{Region: "a", Backend: b, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: b, Sources: []string{"a"}}}, Written: []HeartbeatReader{w}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r, w)
	for i := range 2 { // the second write is an update of the same row
		if err := w.Beat(ctx); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got := pg.Query(t, "SELECT count(*) FROM ops.carpool_heartbeat"); strings.TrimSpace(got) != "1" {
		t.Fatalf("%s rows, want 1", got)
	}
	clk.Add(2500 * time.Millisecond)
	sc := s.scrape(t)
	if got, _ := sc.lag("a", "b"); got != 2.5 || sc.up() != 1 {
		t.Fatalf("lag %v, up %v; want 2.5 and 1", got, sc.up())
	}
	if got, _ := sc.get("carpool_sync_heartbeat_applied_timestamp_seconds", "source_region", "a", "target_region", "b"); got != float64(t0.Unix()) {
		t.Fatalf("applied = %v", got)
	}
	promtoolCheck(t, s.text(t))
}

func TestAnUnreachablePostgresShowsAsDownAndRecoversByItself(t *testing.T) {
	pg := realserver.StartPostgres(t)
	p := startProxy(t, pg.Addr)
	b, err := OpenPostgres(PostgresConfig{DSN: strings.Replace(pg.DSN, pg.Addr, p.Addr(), 1), CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Write(ctx, "a", t0); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Targets: []Target{{Region: "b", Applied: b}}, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, r)
	if sc := s.scrape(t); sc.up() != 1 {
		t.Fatalf("up = %v", sc.up())
	}
	p.cut()
	if sc := s.scrape(t); sc.up() != 0 {
		t.Fatalf("up = %v with PostgreSQL unreachable", sc.up())
	}
	if sc := s.scrape(t); sc.up() != 0 { // a fresh dial is refused too
		t.Fatalf("up = %v with PostgreSQL unreachable", sc.up())
	}
	p.restore()
	realserver.WaitFor(t, 10*time.Second, "the exporter back up", func() (bool, error) {
		sc := s.scrape(t)
		_, ok := sc.lag("a", "b")
		return sc.up() == 1 && ok, nil
	})
}

func TestAMissingPostgresTableSaysToCreateIt(t *testing.T) {
	pg := realserver.StartPostgres(t)
	b, err := OpenPostgres(PostgresConfig{DSN: pg.DSN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if _, err := b.Read(ctx); err == nil || !strings.Contains(err.Error(), "--create-table") {
		t.Fatalf("reading a missing table: %v", err)
	}
	if err := b.Write(ctx, "a", t0); err == nil || !strings.Contains(err.Error(), "--create-table") {
		t.Fatalf("writing a missing table: %v", err)
	}
}

func TestOpenPostgresChecksTheDSNAndTable(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  PostgresConfig
		want string
	}{
		"An empty DSN should fail.":                   {PostgresConfig{}, "DSN is empty"},
		"A DSN that does not parse should fail.":      {PostgresConfig{DSN: "postgres://u:s3cret@h:port/db"}, "does not parse"},
		"A table name with SQL in it should fail.":    {PostgresConfig{DSN: "postgres://127.0.0.1/db", Table: `x"; DROP`}, "letters, digits and _"},
		"A URL DSN should pass.":                      {PostgresConfig{DSN: "postgres://u:p@127.0.0.1:5432/db"}, ""},
		"A key=value DSN with a schema table passes.": {PostgresConfig{DSN: "host=127.0.0.1 dbname=ops", Table: "ops.hb"}, ""},
	} {
		_, err := OpenPostgres(tc.cfg)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s\n got %v, want an error containing %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s\n the error shows the password: %v", name, err)
		}
	}
}
