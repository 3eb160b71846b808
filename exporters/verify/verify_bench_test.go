package verify

import (
	"bytes"
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// naiveCompare is the baseline: read the whole table from both regions and
// compare it row by row, with no chunks and no hashes.
func naiveCompare(ctx context.Context, src, tgt StoreReader, table string) (mismatched int, rows int, err error) {
	s, err := src.ScanRange(ctx, table, "", "", store.MaxScanLimit)
	if err != nil {
		return 0, 0, err
	}
	t, err := tgt.ScanRange(ctx, table, "", "", store.MaxScanLimit)
	if err != nil {
		return 0, 0, err
	}
	byKey := make(map[string]store.Record, len(t))
	for _, r := range t {
		if !r.Deleted {
			byKey[r.Key] = r
		}
	}
	for _, r := range s {
		if r.Deleted {
			continue
		}
		rows++
		o, ok := byKey[r.Key]
		if !ok || !bytes.Equal(o.Value, r.Value) {
			mismatched++
		}
		delete(byKey, r.Key)
	}
	return mismatched + len(byKey), rows, nil
}

// naiveMerge is the baseline at its best: the same two full reads, compared
// by walking both key-ordered lists side by side (no map).
func naiveMerge(ctx context.Context, src, tgt StoreReader, table string) (mismatched int, rows int, err error) {
	s, err := src.ScanRange(ctx, table, "", "", store.MaxScanLimit)
	if err != nil {
		return 0, 0, err
	}
	t, err := tgt.ScanRange(ctx, table, "", "", store.MaxScanLimit)
	if err != nil {
		return 0, 0, err
	}
	i, j := 0, 0
	for i < len(s) || j < len(t) {
		switch {
		case i < len(s) && s[i].Deleted:
			i++
		case j < len(t) && t[j].Deleted:
			j++
		case j == len(t) || (i < len(s) && s[i].Key < t[j].Key):
			mismatched++
			rows++
			i++
		case i == len(s) || t[j].Key < s[i].Key:
			mismatched++
			j++
		default:
			if !bytes.Equal(s[i].Value, t[j].Value) {
				mismatched++
			}
			rows++
			i++
			j++
		}
	}
	return mismatched, rows, nil
}

const benchRows = 100_000

// BenchmarkStoreVerify compares 100k identical rows of two region stores
// with the verifier and with the naive full read-and-compare, in the same
// run; rows/s is the figure to compare.
func BenchmarkStoreVerify(b *testing.B) {
	src, tgt := newStores(b)
	fill(b, benchRows, src, tgt)
	ctx := context.Background()
	b.Run("verifier", func(b *testing.B) {
		v, err := New(Config{Source: NewStore(src, nil), Target: NewStore(tgt, nil), Tables: []Table{{Name: "rides"}}})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			rep, err := v.Verify(ctx)
			if err != nil || rep.Tables[0].RowsVerified != benchRows || len(rep.Mismatches()) != 0 {
				b.Fatalf("%v %+v", err, rep.Tables[0])
			}
		}
		b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("naive", func(b *testing.B) {
		for b.Loop() {
			n, rows, err := naiveCompare(ctx, src, tgt, "rides")
			if err != nil || n != 0 || rows != benchRows {
				b.Fatal(err, n, rows)
			}
		}
		b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("naive-merge", func(b *testing.B) {
		for b.Loop() {
			n, rows, err := naiveMerge(ctx, src, tgt, "rides")
			if err != nil || n != 0 || rows != benchRows {
				b.Fatal(err, n, rows)
			}
		}
		b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// sqlNaive is the SQL baseline: read every row of both tables in key order
// (every column as text) and compare them side by side in the client.
func sqlNaive(ctx context.Context, src, tgt *SQL, t Table) (mismatched, rows int, err error) {
	read := func(s *SQL) ([][]sql.NullString, error) {
		st, err := s.table(ctx, t)
		if err != nil {
			return nil, err
		}
		var out [][]sql.NullString
		err = s.db.query(ctx, "SELECT "+st.selected+" FROM "+st.quoted+" ORDER BY "+st.orderKey, nil, func(scan func(...any) error) error {
			row := make([]sql.NullString, len(st.columns))
			dest := make([]any, len(row))
			for i := range row {
				dest[i] = &row[i]
			}
			if err := scan(dest...); err != nil {
				return err
			}
			out = append(out, row)
			return nil
		})
		return out, err
	}
	s, err := read(src)
	if err != nil {
		return 0, 0, err
	}
	g, err := read(tgt)
	if err != nil {
		return 0, 0, err
	}
	// Keys come in the same order from both: walk them side by side,
	// matching by key text.
	byKey := make(map[string][]sql.NullString, len(g))
	for _, r := range g {
		byKey[r[0].String] = r
	}
	for _, r := range s {
		rows++
		o, ok := byKey[r[0].String]
		if !ok || !slices.Equal(o, r) {
			mismatched++
		}
		delete(byKey, r[0].String)
	}
	return mismatched + len(byKey), rows, nil
}

// benchSQL runs the verifier and the naive comparison on the same table of
// two databases, reached through counting proxies: net-bytes/op is what
// crossed the network (both databases, both ways).
func benchSQL(b *testing.B, source, target *SQL, proxies []*proxy, rows int64) {
	netBytes := func() int64 {
		var n int64
		for _, p := range proxies {
			n += p.bytes.Load()
		}
		return n
	}
	ctx := context.Background()
	table := Table{Name: "rides"}
	b.Run("verifier", func(b *testing.B) {
		v, err := New(Config{Source: source, Target: target, Tables: []Table{table}})
		if err != nil {
			b.Fatal(err)
		}
		before := netBytes()
		for b.Loop() {
			rep, err := v.Verify(ctx)
			if err != nil || rep.Tables[0].RowsVerified != rows || len(rep.Mismatches()) != 0 {
				b.Fatalf("%v %+v", err, rep.Tables)
			}
		}
		b.ReportMetric(float64(rows*int64(b.N))/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(netBytes()-before)/float64(b.N), "net-bytes/op")
	})
	b.Run("naive", func(b *testing.B) {
		before := netBytes()
		for b.Loop() {
			n, got, err := sqlNaive(ctx, source, target, table)
			if err != nil || n != 0 || int64(got) != rows {
				b.Fatal(err, n, got)
			}
		}
		b.ReportMetric(float64(rows*int64(b.N))/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(netBytes()-before)/float64(b.N), "net-bytes/op")
	})
}

// BenchmarkMariaDBVerify: 100k identical rows in two MariaDB servers.
func BenchmarkMariaDBVerify(b *testing.B) {
	setup := "CREATE DATABASE carpool; CREATE TABLE carpool.rides (id BIGINT PRIMARY KEY, driver VARCHAR(64) NOT NULL, " +
		"fare DECIMAL(10,2) NOT NULL, note TEXT NULL, created DATETIME NOT NULL); " +
		"INSERT INTO carpool.rides SELECT seq, CONCAT('d', seq % 50), 100 + seq % 37, CONCAT('note #', seq), " +
		"'2026-11-25 10:00:00' + INTERVAL seq SECOND FROM carpool.seq_1_to_" + strconv.Itoa(benchRows)
	var backends []*SQL
	var proxies []*proxy
	for range 2 {
		m := realserver.StartMariaDB(b, realserver.MariaDBOptions{})
		m.Query(b, setup)
		px := startProxy(b, m.Addr)
		px.up.Store(true)
		s, err := OpenSQL(SQLConfig{DSN: "mysql://root@" + px.addr() + "/carpool", MaxConns: 16})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		backends, proxies = append(backends, s), append(proxies, px)
	}
	benchSQL(b, backends[0], backends[1], proxies, benchRows)
}

// BenchmarkPostgresVerify: 100k identical rows in two PostgreSQL servers.
func BenchmarkPostgresVerify(b *testing.B) {
	setup := "CREATE TABLE rides (id bigint PRIMARY KEY, driver text NOT NULL, fare numeric(10,2) NOT NULL, note text, created timestamptz NOT NULL); " +
		"INSERT INTO rides SELECT g, 'd' || (g % 50), 100 + g % 37, 'note #' || g, timestamptz '2026-11-25 10:00:00+00' + g * interval '1 second' " +
		"FROM generate_series(1, " + strconv.Itoa(benchRows) + ") g; ANALYZE rides"
	var backends []*SQL
	var proxies []*proxy
	for range 2 {
		p := realserver.StartPostgres(b)
		p.Query(b, setup)
		px := startProxy(b, p.Addr)
		px.up.Store(true)
		s, err := OpenSQL(SQLConfig{DSN: strings.Replace(p.DSN, p.Addr, px.addr(), 1), MaxConns: 16})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		backends, proxies = append(backends, s), append(proxies, px)
	}
	benchSQL(b, backends[0], backends[1], proxies, benchRows)
}
