package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: latencies are recorded in microseconds from 1 µs to
// HistogramMax with 3 significant digits (0.1 % relative error), so
// percentiles of merged histograms are as exact as of one.
const (
	histogramLowest = 1 // µs
	// HistogramMax is the largest latency recorded as itself; longer ones
	// are recorded as HistogramMax and counted as clamped.
	HistogramMax     = 10 * time.Minute
	histogramSigFigs = 3
)

// Histogram is an HDR latency histogram (HdrHistogram) that can be merged
// with histograms from other runs and machines and serialized in the
// standard compressed, base64 V2 encoding (a JSON string). It is not safe
// for concurrent use; the zero value is not usable, use NewHistogram.
type Histogram struct {
	h       *hdrhistogram.Histogram
	clamped int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(histogramLowest, HistogramMax.Microseconds(), histogramSigFigs)}
}

// Record adds one latency. A negative latency is recorded as 0 and one over
// HistogramMax as HistogramMax.
func (h *Histogram) Record(d time.Duration) {
	us := d.Microseconds()
	switch {
	case us < 0:
		us = 0
	case us > HistogramMax.Microseconds():
		us = HistogramMax.Microseconds()
		h.clamped++
	}
	// Cannot fail: the value is within the trackable range.
	_ = h.h.RecordValue(us)
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil {
		return
	}
	h.h.Merge(o.h)
	h.clamped += o.clamped
}

// Clone returns an independent copy.
func (h *Histogram) Clone() *Histogram {
	c := NewHistogram()
	c.Merge(h)
	return c
}

// Count is the number of recorded values.
func (h *Histogram) Count() int64 { return h.h.TotalCount() }

// Clamped is the number of values recorded as HistogramMax because they
// were longer.
func (h *Histogram) Clamped() int64 { return h.clamped }

// Quantile is the latency at percentile p (0 < p ≤ 100), e.g. 99.9;
// 0 for an empty histogram.
func (h *Histogram) Quantile(p float64) time.Duration {
	return time.Duration(h.h.ValueAtPercentile(p)) * time.Microsecond
}

// Max is the largest recorded latency (to the histogram's precision).
func (h *Histogram) Max() time.Duration { return time.Duration(h.h.Max()) * time.Microsecond }

// Min is the smallest recorded latency.
func (h *Histogram) Min() time.Duration { return time.Duration(h.h.Min()) * time.Microsecond }

// Mean is the mean recorded latency.
func (h *Histogram) Mean() time.Duration {
	return time.Duration(h.h.Mean() * float64(time.Microsecond))
}

// Equal reports whether h and o hold the same counts.
func (h *Histogram) Equal(o *Histogram) bool {
	return h.h.Equals(o.h) && h.clamped == o.clamped
}

// MarshalText encodes the histogram in HdrHistogram's compressed V2
// encoding, base64 (what other HdrHistogram implementations read). The
// clamped count is not part of it.
func (h *Histogram) MarshalText() ([]byte, error) {
	b, err := h.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encoding a latency histogram: %w", err)
	}
	return b, nil
}

// UnmarshalText decodes MarshalText's encoding. A histogram recorded with
// other bounds is re-recorded into this package's bounds.
func (h *Histogram) UnmarshalText(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("decoding a latency histogram: empty")
	}
	d, err := decodeHistogram(b)
	if err != nil {
		return fmt.Errorf("decoding a latency histogram: %w", err)
	}
	n := NewHistogram()
	if d.LowestTrackableValue() == n.h.LowestTrackableValue() && d.HighestTrackableValue() == n.h.HighestTrackableValue() &&
		d.SignificantFigures() == n.h.SignificantFigures() {
		n.h = d
	} else if dropped := n.h.Merge(d); dropped > 0 {
		return fmt.Errorf("decoding a latency histogram: %d values lie outside 1µs..%v", dropped, HistogramMax)
	}
	*h = *n
	return nil
}

// decodeHistogram decodes and turns the library's panics on corrupt input
// into errors.
func decodeHistogram(b []byte) (h *hdrhistogram.Histogram, err error) {
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("corrupt encoding: %v", r)
		}
	}()
	h, err = hdrhistogram.Decode(b)
	if err == nil && h == nil {
		err = errors.New("corrupt encoding")
	}
	return h, err
}
