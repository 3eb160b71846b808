package chsink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The write-ahead log keeps the batches a writer could not insert, on local
// disk, until ClickHouse takes them. It is a folder of segment files,
// 00000000000000000001.wal and up, each starting with segmentMagic and
// holding frames:
//
//	uint32 payload length | uint32 CRC-32C of the payload | payload
//
// (little-endian). A payload is a record count and the records (codec.go).
// Frames are appended to the newest segment; a new segment starts when the
// current one would pass SegmentBytes. One reader (the writer's replayer)
// reads frames in order from a cursor, inserts them, and moves the cursor
// past them; segments wholly behind the cursor are deleted. The cursor is
// kept in the file "cursor" (segment number and offset), rewritten after each
// replayed batch without fsync: after a crash the last batches may be
// replayed again, which the tables' event ids make harmless.

const (
	walVersion   = 1
	frameHeader  = 8 // payload length, CRC
	maxFrameSize = 1 << 30
)

// segmentMagic starts every segment file; its last byte is the format version.
var segmentMagic = [8]byte{'C', 'H', 'S', 'K', 'W', 'A', 'L', walVersion}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	errWALFull   = errors.New("write-ahead log full")
	errWALClosed = errors.New("write-ahead log closed")
	errCorrupt   = errors.New("corrupt frame in the write-ahead log")
)

// SyncPolicy says when the write-ahead log calls fsync.
type SyncPolicy int

// Sync policies. See WALConfig.Sync.
const (
	// SyncInterval: fsync at most every WALConfig.SyncInterval, at each new
	// segment and on close. A process crash loses nothing written to the WAL;
	// an operating-system crash or power loss can lose the last interval.
	SyncInterval SyncPolicy = iota
	// SyncAlways: fsync after every frame (each spilled batch or record).
	SyncAlways
	// SyncNever: leave it to the operating system (tests, tmpfs).
	SyncNever
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncInterval:
		return "interval"
	case SyncAlways:
		return "always"
	case SyncNever:
		return "never"
	}
	return "SyncPolicy(" + strconv.Itoa(int(p)) + ")"
}

// walPos is a position in the log: a segment and a byte offset in it.
type walPos struct {
	seq uint64
	off int64
}

type segment struct {
	seq  uint64
	size int64 // bytes of whole, valid frames (and the magic)
	disk int64 // bytes the file takes (size plus a corrupt tail that is kept)
}

// wal is one table's write-ahead log. append and the accessors are safe for
// concurrent use; read and consume are called by one goroutine only.
type wal struct {
	dir      string
	maxBytes int64
	segBytes int64
	sync     SyncPolicy
	log      *slog.Logger

	mu      sync.Mutex
	segs    []*segment // ascending; the last one is the active one when active != nil
	active  *os.File
	total   int64 // bytes on disk over all segments
	pending int64 // records at or after the cursor
	rd      walPos
	nextSeq uint64 // the number of the next segment; numbers are never reused
	dirty   bool
	closed  bool

	notify chan struct{} // a frame was appended (capacity 1)
	lock   *os.File      // held while open: one writer per folder

	// The reader's own file handle, used without mu.
	readF   *os.File
	readSeq uint64
}

func segName(seq uint64) string { return fmt.Sprintf("%020d.wal", seq) }

// openWAL opens (creating it when missing) the log in dir. It scans every
// segment: a torn frame at the end of the newest segment (a crash while
// appending) is cut off; a corrupt frame elsewhere ends what is read of its
// segment and is reported in corrupt (the frames behind it are lost).
func openWAL(dir string, maxBytes, segBytes int64, policy SyncPolicy, log *slog.Logger) (w *wal, corrupt int, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("creating the write-ahead log folder: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	w = &wal{dir: dir, maxBytes: maxBytes, segBytes: segBytes, sync: policy, log: log, notify: make(chan struct{}, 1), lock: lock}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the write-ahead log folder: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".wal") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".wal"), 10, 64)
		if err != nil || seq == 0 {
			continue
		}
		w.segs = append(w.segs, &segment{seq: seq})
	}
	slices.SortFunc(w.segs, func(a, b *segment) int { return compareSeq(a.seq, b.seq) })
	w.rd = w.readCursor()
	for i, s := range w.segs {
		last := i == len(w.segs)-1
		n, bad, err := w.scan(s, last)
		if err != nil {
			return nil, 0, err
		}
		corrupt += bad
		w.total += s.disk
		w.pending += n
	}
	w.segs = slices.DeleteFunc(w.segs, func(s *segment) bool { return s.disk == 0 })
	w.nextSeq = max(1, w.rd.seq)
	if len(w.segs) > 0 {
		w.nextSeq = max(w.nextSeq, w.segs[len(w.segs)-1].seq+1)
		if w.rd.seq < w.segs[0].seq {
			w.rd = walPos{seq: w.segs[0].seq, off: int64(len(segmentMagic))}
		}
	}
	w.mu.Lock()
	w.dropConsumedLocked()
	w.mu.Unlock()
	return w, corrupt, nil
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scan validates segment s and sets its sizes; it returns the records of the
// frames at or after the cursor and the number of corrupt frames found.
func (w *wal) scan(s *segment, last bool) (records int64, corrupt int, err error) {
	path := filepath.Join(w.dir, segName(s.seq))
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("opening write-ahead log segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("reading write-ahead log segment: %w", err)
	}
	s.disk = fi.Size()
	if s.disk < int64(len(segmentMagic)) {
		// Created and never written (a crash right after creating it): drop it.
		s.disk = 0
		if err := os.Remove(path); err != nil {
			return 0, 0, fmt.Errorf("removing an empty write-ahead log segment: %w", err)
		}
		return 0, 0, nil
	}
	var magic [len(segmentMagic)]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || magic != segmentMagic {
		// Not ours, or another version: keep the file (it counts against the
		// bound) and read nothing from it; it is deleted once replay passes it.
		w.log.Error("write-ahead log segment has no valid header; skipping it", "segment", path, "bytes", s.disk)
		s.size = int64(len(segmentMagic))
		return 0, 1, nil
	}
	off := int64(len(segmentMagic))
	var hdr [frameHeader]byte
	for off < s.disk {
		payload, err := readFrame(f, off, s.disk, &hdr)
		if err != nil {
			if last {
				w.log.Warn("cutting a torn frame off the end of the write-ahead log (a crash while writing it)",
					"segment", path, "offset", off, "bytes", s.disk-off)
				if err := os.Truncate(path, off); err != nil {
					return 0, 0, fmt.Errorf("truncating a torn write-ahead log segment: %w", err)
				}
				s.disk = off
			} else {
				w.log.Error("corrupt frame in the write-ahead log; the rest of the segment is lost",
					"segment", path, "offset", off, "bytes", s.disk-off, "err", err)
				corrupt++
			}
			break
		}
		if s.seq > w.rd.seq || (s.seq == w.rd.seq && off >= w.rd.off) {
			n, err := frameRecords(payload)
			if err != nil {
				return 0, 0, err
			}
			records += n
		}
		off += frameHeader + int64(len(payload))
	}
	s.size = off
	return records, corrupt, nil
}

// readFrame reads the frame at off of a file whose valid data ends at end.
func readFrame(f *os.File, off, end int64, hdr *[frameHeader]byte) ([]byte, error) {
	if end-off < frameHeader {
		return nil, errCorrupt
	}
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
	sum := binary.LittleEndian.Uint32(hdr[4:8])
	if n == 0 || n > maxFrameSize || off+frameHeader+n > end {
		return nil, errCorrupt
	}
	payload := make([]byte, n) // fresh: decoded strings point into it
	if _, err := f.ReadAt(payload, off+frameHeader); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if crc32.Checksum(payload, crcTable) != sum {
		return nil, errCorrupt
	}
	return payload, nil
}

// readCursor reads the cursor file; a missing or damaged one means "from the
// oldest segment".
func (w *wal) readCursor() walPos {
	b, err := os.ReadFile(filepath.Join(w.dir, "cursor"))
	if err != nil || len(b) != 20 || crc32.Checksum(b[:16], crcTable) != binary.LittleEndian.Uint32(b[16:]) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("cannot read the write-ahead log cursor; replaying from the oldest segment", "err", err)
		}
		return walPos{}
	}
	return walPos{seq: binary.LittleEndian.Uint64(b[:8]), off: int64(binary.LittleEndian.Uint64(b[8:16]))}
}

// writeCursorLocked saves the cursor (no fsync: see the file comment).
func (w *wal) writeCursorLocked() error {
	var b [20]byte
	binary.LittleEndian.PutUint64(b[:8], w.rd.seq)
	binary.LittleEndian.PutUint64(b[8:16], uint64(w.rd.off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], crcTable))
	tmp := filepath.Join(w.dir, "cursor.tmp")
	if err := os.WriteFile(tmp, b[:], 0o644); err != nil {
		return fmt.Errorf("writing the write-ahead log cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, "cursor")); err != nil {
		return fmt.Errorf("writing the write-ahead log cursor: %w", err)
	}
	return nil
}

// newFrame returns a buffer with room for the frame header; append the
// payload to it and give it to append.
func newFrame(capacity int) []byte { return make([]byte, frameHeader, frameHeader+capacity) }

// append writes one frame of records records; frame starts with frameHeader
// bytes of room (newFrame). It returns errWALFull, without writing, when the
// frame would take the log past its bound.
func (w *wal) append(frame []byte, records int) error {
	n := len(frame) - frameHeader
	if n <= 0 || n > maxFrameSize {
		return fmt.Errorf("write-ahead log frame of %d bytes: want 1 to %d", n, maxFrameSize)
	}
	binary.LittleEndian.PutUint32(frame[0:4], uint32(n))
	binary.LittleEndian.PutUint32(frame[4:8], crc32.Checksum(frame[frameHeader:], crcTable))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errWALClosed
	}
	size := int64(len(frame))
	if w.active == nil || (w.segs[len(w.segs)-1].size+size > w.segBytes && w.segs[len(w.segs)-1].size > int64(len(segmentMagic))) {
		extra := int64(len(segmentMagic))
		if w.total+size+extra > w.maxBytes {
			return errWALFull
		}
		if err := w.rotateLocked(); err != nil {
			return err
		}
	}
	if w.total+size > w.maxBytes {
		return errWALFull
	}
	s := w.segs[len(w.segs)-1]
	if _, err := w.active.Write(frame); err != nil {
		// A partial frame may be on disk: cut it off so the segment stays valid.
		_ = w.active.Truncate(s.size)
		return fmt.Errorf("appending to the write-ahead log: %w", err)
	}
	s.size += size
	s.disk = s.size
	w.total += size
	w.pending += int64(records)
	if w.sync == SyncAlways {
		if err := w.active.Sync(); err != nil {
			// The frame is written (the process replays it); only its
			// survival of an OS crash is in doubt.
			w.log.Warn("fsync of the write-ahead log failed", "segment", s.seq, "err", err)
		}
	} else {
		w.dirty = true
	}
	select {
	case w.notify <- struct{}{}:
	default:
	}
	return nil
}

// rotateLocked closes the active segment and starts a new one.
func (w *wal) rotateLocked() error {
	if err := w.closeActiveLocked(); err != nil {
		return err
	}
	seq := w.nextSeq
	path := filepath.Join(w.dir, segName(seq))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("creating a write-ahead log segment: %w", err)
	}
	if _, err := f.Write(segmentMagic[:]); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("creating a write-ahead log segment: %w", err)
	}
	if w.sync != SyncNever {
		if err := syncDir(w.dir); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
	}
	n := int64(len(segmentMagic))
	w.segs = append(w.segs, &segment{seq: seq, size: n, disk: n})
	w.nextSeq = seq + 1
	w.total += n
	w.active = f
	if len(w.segs) == 1 && w.rd.seq < seq {
		w.rd = walPos{seq: seq, off: n}
	}
	return nil
}

func (w *wal) closeActiveLocked() error {
	if w.active == nil {
		return nil
	}
	var err error
	if w.sync != SyncNever {
		err = w.active.Sync()
	}
	if cerr := w.active.Close(); err == nil {
		err = cerr
	}
	w.active, w.dirty = nil, false
	if err != nil {
		return fmt.Errorf("closing a write-ahead log segment: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing the write-ahead log folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing the write-ahead log folder: %w", err)
	}
	return nil
}

// flush fsyncs what was appended since the last fsync (SyncInterval).
func (w *wal) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.dirty || w.active == nil || w.sync == SyncNever {
		return nil
	}
	w.dirty = false
	if err := w.active.Sync(); err != nil {
		return fmt.Errorf("syncing the write-ahead log: %w", err)
	}
	return nil
}

// read reads whole frames from the cursor on, in order, until at least
// maxRecords records or the end of the log, and hands each payload to each.
// It returns the position after the last frame read and the records read.
// A corrupt frame at the cursor gives errCorrupt and, in next, the position
// to skip to (the next segment, or the end of this one).
func (w *wal) read(maxRecords int, each func(payload []byte) error) (next walPos, records int, err error) {
	w.mu.Lock()
	pos := w.rd
	type span struct {
		seq       uint64
		size      int64
		hasNext   bool
		nextStart walPos
	}
	var spans []span
	for i, s := range w.segs {
		if s.seq < pos.seq {
			continue
		}
		sp := span{seq: s.seq, size: s.size}
		if i+1 < len(w.segs) {
			sp.hasNext, sp.nextStart = true, walPos{seq: w.segs[i+1].seq, off: int64(len(segmentMagic))}
		}
		spans = append(spans, sp)
	}
	w.mu.Unlock()

	var hdr [frameHeader]byte
	for _, sp := range spans {
		if pos.seq != sp.seq {
			pos = walPos{seq: sp.seq, off: int64(len(segmentMagic))}
		}
		for pos.off < sp.size && records < maxRecords {
			f, err := w.reader(sp.seq)
			if err != nil {
				return pos, records, err
			}
			payload, err := readFrame(f, pos.off, sp.size, &hdr)
			if err != nil {
				if records > 0 {
					return pos, records, nil // hand over what was read; the next read reports it
				}
				skip := walPos{seq: sp.seq, off: sp.size}
				if sp.hasNext {
					skip = sp.nextStart
				}
				return skip, 0, fmt.Errorf("%w: segment %s offset %d: %w", errCorrupt, segName(sp.seq), pos.off, err)
			}
			if err := each(payload); err != nil {
				if records > 0 {
					return pos, records, nil
				}
				skip := walPos{seq: sp.seq, off: pos.off + frameHeader + int64(len(payload))}
				return skip, 0, fmt.Errorf("%w: segment %s offset %d: %w", errCorrupt, segName(sp.seq), pos.off, err)
			}
			n, _ := frameRecords(payload) // each decoded it already
			records += int(n)
			pos.off += frameHeader + int64(len(payload))
		}
		if records >= maxRecords {
			break
		}
		if pos.off >= sp.size && sp.hasNext {
			pos = sp.nextStart
		}
	}
	return pos, records, nil
}

// reader returns the reader's handle on segment seq.
func (w *wal) reader(seq uint64) (*os.File, error) {
	if w.readF != nil && w.readSeq == seq {
		return w.readF, nil
	}
	if w.readF != nil {
		w.readF.Close()
		w.readF = nil
	}
	f, err := os.Open(filepath.Join(w.dir, segName(seq)))
	if err != nil {
		return nil, fmt.Errorf("opening write-ahead log segment: %w", err)
	}
	w.readF, w.readSeq = f, seq
	return f, nil
}

// consume moves the cursor to next, records fewer records pending, deletes
// the segments behind it and saves it.
func (w *wal) consume(next walPos, records int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rd = next
	w.pending -= int64(records)
	if w.pending < 0 {
		w.pending = 0
	}
	err := w.dropConsumedLocked()
	if cerr := w.writeCursorLocked(); err == nil {
		err = cerr
	}
	return err
}

// dropConsumedLocked deletes the segments wholly behind the cursor, and the
// last one too when everything has been read (appends then start a new one).
func (w *wal) dropConsumedLocked() error {
	var errs []error
	for len(w.segs) > 0 {
		s := w.segs[0]
		last := len(w.segs) == 1
		consumed := s.seq < w.rd.seq || (s.seq == w.rd.seq && w.rd.off >= s.size)
		if !consumed {
			break
		}
		if last {
			if w.active != nil {
				if err := w.closeActiveLocked(); err != nil {
					errs = append(errs, err)
				}
			}
			w.rd = walPos{seq: s.seq + 1, off: int64(len(segmentMagic))}
		}
		if w.readF != nil && w.readSeq == s.seq {
			w.readF.Close()
			w.readF = nil
		}
		if err := os.Remove(filepath.Join(w.dir, segName(s.seq))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("deleting a replayed write-ahead log segment: %w", err))
		}
		w.total -= s.disk
		w.segs = w.segs[1:]
	}
	if len(w.segs) == 0 {
		w.pending = 0
	}
	return errors.Join(errs...)
}

// stats returns the bytes on disk and the records not yet replayed.
func (w *wal) stats() (bytes, records int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total, w.pending
}

// close syncs and closes the log; later appends fail with errWALClosed.
func (w *wal) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.closeActiveLocked()
	if w.readF != nil {
		w.readF.Close()
		w.readF = nil
	}
	if cerr := w.writeCursorLocked(); err == nil {
		err = cerr
	}
	w.lock.Close() // releases the folder
	return err
}
