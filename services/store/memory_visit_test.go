package store

import (
	"context"
	"testing"
)

func TestVisitRangeSeesWhatScanRangeSees(t *testing.T) {
	m, err := NewMemory(Config{Region: "a"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		if _, err := m.Put(ctx, "t", k, []byte(`{"v":"`+k+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	want, err := m.ScanRange(ctx, "t", "k2", "k4", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := m.VisitRange(ctx, "t", "k2", "k4", func(r Record) bool { got = append(got, r.Key+"="+string(r.Value)); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("visited %v, scanned %d records", got, len(want))
	}
	for i, r := range want {
		if got[i] != r.Key+"="+string(r.Value) {
			t.Errorf("record %d: visited %s, scanned %s", i, got[i], r.Key)
		}
	}
	n := 0
	_ = m.VisitRange(ctx, "t", "", "", func(Record) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("the visit did not stop when fn returned false: %d", n)
	}
	if err := m.VisitRange(ctx, "", "", "", func(Record) bool { return true }); err == nil {
		t.Error("an empty table name was accepted")
	}
}
