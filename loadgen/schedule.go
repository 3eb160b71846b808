package loadgen

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits that keep every schedule, and so every loop over it, bounded.
const (
	// MaxRate is the highest arrival rate a schedule may ask for, per second.
	MaxRate = 1_000_000
	// MaxDuration is the longest schedule.
	MaxDuration = 24 * time.Hour
	// MaxIterations is the most iterations one schedule may hold.
	MaxIterations = 1_000_000_000
)

// Stage is one stage of a ramping arrival rate: the rate moves linearly from
// the previous stage's Target (or the schedule's StartRate) to Target over
// Duration, as in k6's ramping-arrival-rate executor. A stage whose Target
// equals the previous one holds the rate.
type Stage struct {
	// Target is the arrival rate at the end of the stage, iterations per
	// second.
	Target float64 `json:"target"`
	// Duration is the stage's length.
	Duration time.Duration `json:"duration"`
}

// Schedule is an open-model arrival schedule: iterations start at the times
// it gives whatever the responses do. The zero value is empty (and invalid).
type Schedule struct {
	// StartRate is the arrival rate at time 0, iterations per second.
	StartRate float64 `json:"start_rate"`
	// Stages follow one another from time 0.
	Stages []Stage `json:"stages"`
}

// Constant is a schedule of rate iterations per second for d.
func Constant(rate float64, d time.Duration) Schedule {
	return Schedule{StartRate: rate, Stages: []Stage{{Target: rate, Duration: d}}}
}

// Validate checks the schedule: rates finite and in [0, MaxRate], stages of
// positive duration, at most MaxDuration in all, and at least one and at
// most MaxIterations iterations.
func (s Schedule) Validate() error {
	if len(s.Stages) == 0 {
		return errors.New("schedule: no stages; give a rate and a duration, or ramp stages such as 50:10s,200:30s")
	}
	if err := validRate("start rate", s.StartRate); err != nil {
		return err
	}
	var total time.Duration
	for i, st := range s.Stages {
		if err := validRate(fmt.Sprintf("stage %d target", i+1), st.Target); err != nil {
			return err
		}
		if st.Duration <= 0 {
			return fmt.Errorf("schedule: stage %d lasts %v; a stage must last more than 0s", i+1, st.Duration)
		}
		total += st.Duration
		if total > MaxDuration {
			return fmt.Errorf("schedule: %v in all; a schedule may last at most %v", total, MaxDuration)
		}
	}
	n := s.Total()
	if n < 1 {
		return fmt.Errorf("schedule: %s holds no iteration; raise the rate or the duration", s)
	}
	if n > MaxIterations {
		return fmt.Errorf("schedule: %s holds %d iterations; at most %d are allowed", s, n, MaxIterations)
	}
	return nil
}

func validRate(what string, r float64) error {
	if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 || r > MaxRate {
		return fmt.Errorf("schedule: %s is %v; it must be in [0, %d] iterations per second", what, r, MaxRate)
	}
	return nil
}

// Duration is the schedule's length.
func (s Schedule) Duration() time.Duration {
	var d time.Duration
	for _, st := range s.Stages {
		d += st.Duration
	}
	return d
}

// CountBy is the number of iterations due by t, the integral of the rate
// from 0 to t (not rounded). Past the end it is the schedule's total.
func (s Schedule) CountBy(t time.Duration) float64 {
	r0, n := s.StartRate, 0.0
	for _, st := range s.Stages {
		d := st.Duration.Seconds()
		if t <= 0 {
			break
		}
		x := math.Min(t.Seconds(), d)
		a := (st.Target - r0) / d
		n += r0*x + a*x*x/2
		t -= st.Duration
		r0 = st.Target
	}
	return n
}

// RateAt is the arrival rate at t, iterations per second (0 past the end).
func (s Schedule) RateAt(t time.Duration) float64 {
	r0 := s.StartRate
	for _, st := range s.Stages {
		if t < st.Duration {
			return r0 + (st.Target-r0)*t.Seconds()/st.Duration.Seconds()
		}
		t -= st.Duration
		r0 = st.Target
	}
	return 0
}

// Total is the number of iterations the schedule starts: iteration i starts
// at the time when CountBy reaches i, for every i below CountBy(Duration).
func (s Schedule) Total() int64 {
	n := s.CountBy(s.Duration())
	if n > MaxIterations*2 {
		return MaxIterations + 1
	}
	return int64(math.Ceil(n - 1e-9))
}

// MeanRate is the schedule's average arrival rate, iterations per second.
func (s Schedule) MeanRate() float64 {
	d := s.Duration().Seconds()
	if d == 0 {
		return 0
	}
	return s.CountBy(s.Duration()) / d
}

// At is the intended start of iteration i (from 0), relative to the
// schedule's start; false when the schedule holds fewer iterations.
func (s Schedule) At(i int64) (time.Duration, bool) {
	c := s.cursor()
	return c.at(i)
}

// String describes the schedule: "200/s for 30s", or its stages.
func (s Schedule) String() string {
	if len(s.Stages) == 1 && s.Stages[0].Target == s.StartRate {
		return fmt.Sprintf("%s/s for %v", fmtRate(s.StartRate), s.Stages[0].Duration)
	}
	parts := make([]string, len(s.Stages))
	for i, st := range s.Stages {
		parts[i] = fmt.Sprintf("%s:%v", fmtRate(st.Target), st.Duration)
	}
	return fmt.Sprintf("from %s/s, ramp %s", fmtRate(s.StartRate), strings.Join(parts, ","))
}

func fmtRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

// cursor walks a schedule's iterations in order, each in O(1) amortized.
type cursor struct {
	stages []span
	k      int
}

// span is one stage in absolute terms: iterations [base, base+count) start
// in it, at offset start; the rate goes from r0 with slope a (per s²).
type span struct {
	start       time.Duration
	base, count float64
	r0, a       float64
}

func (s Schedule) cursor() *cursor {
	c := &cursor{}
	var start time.Duration
	r0, base := s.StartRate, 0.0
	for _, st := range s.Stages {
		d := st.Duration.Seconds()
		a := (st.Target - r0) / d
		n := r0*d + a*d*d/2
		c.stages = append(c.stages, span{start: start, base: base, count: n, r0: r0, a: a})
		base += n
		start += st.Duration
		r0 = st.Target
	}
	return c
}

// at is the intended start of iteration i. Calls with ascending i are
// amortized O(1); a smaller i than before searches from the first stage.
func (c *cursor) at(i int64) (time.Duration, bool) {
	x := float64(i)
	if c.k >= len(c.stages) || x < c.stages[c.k].base {
		c.k = 0
	}
	for c.k < len(c.stages) {
		sp := c.stages[c.k]
		if x < sp.base+sp.count-1e-9 {
			x = math.Max(x-sp.base, 0)
			// Solve r0·t + a·t²/2 = x for t in the form that stays exact when
			// a or r0 is 0: t = 2x / (r0 + √(r0² + 2ax)).
			den := sp.r0 + math.Sqrt(math.Max(sp.r0*sp.r0+2*sp.a*x, 0))
			var t float64
			if den > 0 {
				t = 2 * x / den
			}
			return sp.start + time.Duration(t*float64(time.Second)), true
		}
		c.k++
	}
	return 0, false
}

// ParseRamp parses ramp stages as "rate:duration,rate:duration", e.g.
// "50:10s,200:30s": the rate ramps linearly to 50/s over 10 s, then to
// 200/s over 30 s. A rate may be fractional.
func ParseRamp(spec string) ([]Stage, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New(`ramp is empty; give stages as rate:duration,... e.g. "50:10s,200:30s"`)
	}
	var out []Stage
	for i, part := range strings.Split(spec, ",") {
		rate, dur, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("ramp stage %d %q: want rate:duration, e.g. 200:30s", i+1, part)
		}
		r, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rate), "/s"), 64)
		if err != nil {
			return nil, fmt.Errorf("ramp stage %d %q: rate %q is not a number of iterations per second", i+1, part, rate)
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil {
			return nil, fmt.Errorf("ramp stage %d %q: duration %q is not a duration such as 30s or 2m", i+1, part, dur)
		}
		if err := validRate(fmt.Sprintf("ramp stage %d rate", i+1), r); err != nil {
			return nil, err
		}
		if d <= 0 {
			return nil, fmt.Errorf("ramp stage %d %q: the duration must be more than 0s", i+1, part)
		}
		out = append(out, Stage{Target: r, Duration: d})
	}
	return out, nil
}
