package chsink

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// frameOf builds a frame holding the given numbers as log messages.
func frameOf(t *testing.T, nums ...int) []byte {
	t.Helper()
	rows := make([]LogRecord, len(nums))
	for i, n := range nums {
		rows[i] = LogRecord{Message: fmt.Sprint(n)}
	}
	return encodeFrame(newFrame(64), logsTable, rows)
}

// readAll reads and consumes everything the log holds, in batches of batch
// records, and returns the numbers in order.
func readAll(t *testing.T, w *wal, batch int) []string {
	t.Helper()
	var out []string
	for range 10_000 {
		if _, pending := w.stats(); pending == 0 {
			return out
		}
		var rows []LogRecord
		next, n, err := w.read(batch, func(p []byte) error {
			var err error
			rows, err = decodeFrame(rows, logsTable, p)
			return err
		})
		if err != nil {
			t.Fatalf("reading the log: %v", err)
		}
		if n != len(rows) {
			t.Fatalf("read says %d records, decoded %d", n, len(rows))
		}
		for _, r := range rows {
			out = append(out, r.Message)
		}
		if err := w.consume(next, n); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the log did not drain in 10,000 reads")
	return nil
}

func nums(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprint(i))
	}
	return out
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func openTestWAL(t *testing.T, dir string, maxBytes, segBytes int64) *wal {
	t.Helper()
	w, corrupt, err := openWAL(dir, maxBytes, segBytes, SyncNever, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if corrupt != 0 {
		t.Fatalf("a clean log reports %d corrupt frames", corrupt)
	}
	return w
}

func TestWALReplaysFramesInOrderAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	w := openTestWAL(t, dir, 1<<20, 4<<10)
	for i := range 300 {
		if err := w.append(frameOf(t, 3*i, 3*i+1, 3*i+2), 3); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segments(t, dir)); n < 3 {
		t.Fatalf("900 records in 4 KiB segments made %d segments, want several", n)
	}
	if _, pending := w.stats(); pending != 900 {
		t.Fatalf("pending %d records, want 900", pending)
	}
	got := readAll(t, w, 50)
	if !slices.Equal(got, nums(0, 900)) {
		t.Fatalf("replayed %d records out of order or incomplete: first %v", len(got), got[:min(10, len(got))])
	}
	if segs := segments(t, dir); len(segs) != 0 {
		t.Errorf("a drained log left segments %v", segs)
	}
	if b, _ := w.stats(); b != 0 {
		t.Errorf("a drained log counts %d bytes", b)
	}
	// It keeps working after draining, with new segment numbers.
	if err := w.append(frameOf(t, 7), 1); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, w, 10); !slices.Equal(got, []string{"7"}) {
		t.Errorf("after draining, replayed %v", got)
	}
}

func TestWALResumesFromItsCursorAfterReopening(t *testing.T) {
	dir := t.TempDir()
	w := openTestWAL(t, dir, 1<<20, 4<<10)
	for i := range 100 {
		if err := w.append(frameOf(t, i), 1); err != nil {
			t.Fatal(err)
		}
	}
	next, n, err := w.read(40, func(p []byte) error { _, err := decodeFrame(nil, logsTable, p); return err })
	if err != nil || n != 40 {
		t.Fatalf("read %d records (%v), want 40", n, err)
	}
	if err := w.consume(next, n); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if err := w.append(frameOf(t, 1000), 1); !errors.Is(err, errWALClosed) {
		t.Errorf("append after close: %v, want errWALClosed", err)
	}
	w2 := openTestWAL(t, dir, 1<<20, 4<<10)
	if _, pending := w2.stats(); pending != 60 {
		t.Errorf("reopened log has %d pending records, want 60", pending)
	}
	if err := w2.append(frameOf(t, 100), 1); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, w2, 7); !slices.Equal(got, nums(40, 101)) {
		t.Errorf("after reopening, replayed %v", got)
	}
}

func TestWALRefusesFramesPastItsBound(t *testing.T) {
	dir := t.TempDir()
	const bound = 16 << 10
	w := openTestWAL(t, dir, bound, 4<<10)
	accepted := 0
	for i := range 10_000 {
		err := w.append(frameOf(t, i), 1)
		if errors.Is(err, errWALFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
	}
	b, pending := w.stats()
	if b > bound || pending != int64(accepted) {
		t.Fatalf("full log: %d bytes (bound %d), %d pending, %d accepted", b, bound, pending, accepted)
	}
	if accepted < 100 {
		t.Fatalf("only %d small frames fit in %d bytes", accepted, bound)
	}
	var disk int64
	for _, s := range segments(t, dir) {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		disk += fi.Size()
	}
	if disk != b || disk > bound {
		t.Errorf("segments take %d bytes on disk, the log counts %d, bound %d", disk, b, bound)
	}
	// Replaying frees room.
	if got := readAll(t, w, 1000); len(got) != accepted {
		t.Fatalf("replayed %d of %d", len(got), accepted)
	}
	if err := w.append(frameOf(t, 1), 1); err != nil {
		t.Errorf("after draining a full log, append: %v", err)
	}
}

func TestWALCutsATornFrameOffTheNewestSegment(t *testing.T) {
	dir := t.TempDir()
	w := openTestWAL(t, dir, 1<<20, 1<<20)
	for i := range 10 {
		if err := w.append(frameOf(t, i), 1); err != nil {
			t.Fatal(err)
		}
	}
	w.close()
	seg := segments(t, dir)[0]
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Half a frame, as a crash in the middle of a write leaves it.
	frame := frameOf(t, 10)
	if _, err := f.Write(frame[:len(frame)/2]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	w2 := openTestWAL(t, dir, 1<<20, 1<<20)
	if got := readAll(t, w2, 100); !slices.Equal(got, nums(0, 10)) {
		t.Errorf("after a torn write, replayed %v", got)
	}
}

func TestWALSkipsACorruptFrameAndReportsIt(t *testing.T) {
	dir := t.TempDir()
	w := openTestWAL(t, dir, 1<<20, 4<<10)
	for i := range 200 {
		if err := w.append(frameOf(t, i), 1); err != nil {
			t.Fatal(err)
		}
	}
	w.close()
	segs := segments(t, dir)
	if len(segs) < 2 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	// Flip a byte in the middle of the first segment's payloads.
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	w2, corrupt, err := openWAL(dir, 1<<20, 4<<10, SyncNever, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if corrupt != 1 {
		t.Errorf("opening found %d corrupt frames, want 1", corrupt)
	}
	got := readAll(t, w2, 1000)
	// What survives: the records before the damage, then every later
	// segment, in order, with one gap.
	gaps := 0
	for i := 1; i < len(got); i++ {
		var a, b int
		fmt.Sscan(got[i-1], &a)
		fmt.Sscan(got[i], &b)
		if b <= a {
			t.Fatalf("replayed out of order: %s after %s", got[i], got[i-1])
		}
		if b != a+1 {
			gaps++
		}
	}
	if gaps != 1 || got[0] != "0" || got[len(got)-1] != "199" || len(got) < 100 {
		t.Errorf("replayed %d records with %d gaps, from %s to %s; want one gap at the damage", len(got), gaps, got[0], got[len(got)-1])
	}
}

func TestTwoWritersCannotShareAWALFolder(t *testing.T) {
	dir := t.TempDir()
	w := openTestWAL(t, dir, 1<<20, 4<<10)
	_, _, err := openWAL(dir, 1<<20, 4<<10, SyncNever, slog.New(slog.DiscardHandler))
	if err == nil || !containsAll(err.Error(), "in use", "WAL.Dir") {
		t.Fatalf("a second open of a folder in use gave %v, want an error saying to give each writer its own WAL.Dir", err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	w2 := openTestWAL(t, dir, 1<<20, 4<<10) // released on close
	w2.close()
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
