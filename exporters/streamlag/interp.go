package streamlag

import "time"

// DefaultTableSize is how many (sequence, time) samples a stream's lookup
// table keeps, kafka-lag-exporter's default.
const DefaultTableSize = 60

// point is one sample of a stream: the message with sequence seq was added
// at t.
type point struct {
	seq uint64
	t   time.Time
}

// seqTable is a bounded lookup table of a stream's samples, ascending in
// sequence and time. It answers when the stream reached a sequence, by
// linear interpolation between the samples around it, as kafka-lag-exporter
// answers when a partition reached an offset.
//
// The zero value is not ready: use newSeqTable. Not safe for concurrent use.
type seqTable struct {
	max int
	pts []point
}

func newSeqTable(max int) *seqTable { return &seqTable{max: max} }

// add records that the message with sequence seq was added at t. A sample
// at a sequence the table holds already is ignored (the stream did not
// move); a lower sequence means the stream was recreated or reset, and
// starts the table afresh. The oldest sample goes when the table is full.
func (s *seqTable) add(seq uint64, t time.Time) {
	if n := len(s.pts); n > 0 {
		last := s.pts[n-1]
		switch {
		case seq == last.seq:
			return
		case seq < last.seq || t.Before(last.t):
			s.pts = s.pts[:0]
		}
	}
	if len(s.pts) == s.max {
		copy(s.pts, s.pts[1:])
		s.pts = s.pts[:len(s.pts)-1]
	}
	s.pts = append(s.pts, point{seq, t})
}

// timeOf estimates when the stream reached sequence seq, with anchor (the
// stream's first retained message, exact) in front of the samples when it
// is older than all of them. ok is false when nothing is known.
func (s *seqTable) timeOf(seq uint64, anchor point, now time.Time) (time.Time, bool) {
	pts := s.pts
	if anchor.seq > 0 && !anchor.t.IsZero() && (len(pts) == 0 || anchor.seq < pts[0].seq) {
		pts = append([]point{anchor}, pts...)
	}
	return interpolate(pts, seq, now)
}

// interpolate estimates when a stream whose samples are pts (ascending)
// reached sequence seq:
//
//   - between two samples a < seq <= b: linearly, t(a) + (seq-a)/(b-a) ×
//     (t(b)-t(a)); the error is at most t(b)-t(a), one sampling interval,
//     and zero when the producer's rate was steady between them;
//   - at or before the first sample: extrapolated back at the table's
//     average rate (first to last sample), or the first sample's time when
//     the table shows no rate (the stream reached seq no later than that);
//   - after the last sample: extrapolated forward at the average rate,
//     clamped to [t(last), now], or now when there is no rate.
//
// ok is false when pts is empty.
func interpolate(pts []point, seq uint64, now time.Time) (time.Time, bool) {
	n := len(pts)
	if n == 0 {
		return time.Time{}, false
	}
	first, last := pts[0], pts[n-1]
	// rate is the table's average, in seconds per message.
	var perMsg float64
	if n > 1 && last.seq > first.seq {
		perMsg = last.t.Sub(first.t).Seconds() / float64(last.seq-first.seq)
	}
	switch {
	case seq == first.seq:
		return first.t, true
	case seq < first.seq:
		if perMsg == 0 {
			return first.t, true
		}
		return first.t.Add(-seconds(float64(first.seq-seq) * perMsg)), true
	case seq > last.seq:
		if perMsg == 0 {
			return maxTime(now, last.t), true
		}
		t := last.t.Add(seconds(float64(seq-last.seq) * perMsg))
		if t.After(now) {
			t = now
		}
		return maxTime(t, last.t), true
	}
	// first.seq < seq <= last.seq: find the first sample at or past seq.
	lo, hi := 0, n-1 // pts[lo].seq < seq <= pts[hi].seq
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if pts[mid].seq < seq {
			lo = mid
		} else {
			hi = mid
		}
	}
	a, b := pts[lo], pts[hi]
	frac := float64(seq-a.seq) / float64(b.seq-a.seq)
	return a.t.Add(seconds(frac * b.t.Sub(a.t).Seconds())), true
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
