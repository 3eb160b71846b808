package loadgen

import (
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestConstantScheduleSpacesIterationsEvenly(t *testing.T) {
	s := Constant(200, 3*time.Second)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Total() != 600 {
		t.Fatalf("total %d, want 600", s.Total())
	}
	for _, i := range []int64{0, 1, 199, 200, 599} {
		got, ok := s.At(i)
		if want := time.Duration(i) * 5 * time.Millisecond; !ok || absDur(got-want) > time.Microsecond {
			t.Errorf("At(%d) = %v %v, want %v", i, got, ok, want)
		}
	}
	if _, ok := s.At(600); ok {
		t.Error("At(600) exists; the schedule holds 600 iterations")
	}
	if s.String() != "200/s for 3s" || s.MeanRate() != 200 {
		t.Errorf("%q mean %v", s.String(), s.MeanRate())
	}
}

// TestRampCountsAreTheIntegralOfTheRate checks the closed form: a linear
// ramp from r0 to r1 over d holds (r0+r1)/2·d iterations.
func TestRampCountsAreTheIntegralOfTheRate(t *testing.T) {
	s := Schedule{StartRate: 50, Stages: []Stage{{Target: 200, Duration: 10 * time.Second}, {Target: 200, Duration: 30 * time.Second}, {Target: 0, Duration: 5 * time.Second}}}
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{
		{0, 0}, {10 * time.Second, 1250}, {40 * time.Second, 1250 + 6000}, {45 * time.Second, 1250 + 6000 + 500},
		{5 * time.Second, 50*5 + 15*25.0/2 /* a = 15/s² */}, {time.Hour, 7750},
	} {
		if got := s.CountBy(c.at); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("CountBy(%v) = %v, want %v", c.at, got, c.want)
		}
	}
	if s.Total() != 7750 || s.Duration() != 45*time.Second {
		t.Errorf("total %d over %v", s.Total(), s.Duration())
	}
	if r := s.RateAt(5 * time.Second); r != 125 {
		t.Errorf("rate at 5s = %v, want 125", r)
	}
	// The first iteration of the hold starts where the ramp's count ends.
	if got, _ := s.At(1250); absDur(got-10*time.Second) > time.Microsecond {
		t.Errorf("iteration 1250 at %v, want 10s", got)
	}
}

// TestAtInvertsCountBy is the schedule's defining property, over random
// schedules: iteration i starts when CountBy reaches i, times ascend, and
// every iteration lies within the schedule.
func TestAtInvertsCountBy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := Schedule{StartRate: rapid.Float64Range(0, 500).Draw(t, "start")}
		for i := range rapid.IntRange(1, 4).Draw(t, "stages") {
			s.Stages = append(s.Stages, Stage{
				Target:   rapid.Float64Range(0, 500).Draw(t, "target"+string(rune('0'+i))),
				Duration: time.Duration(rapid.IntRange(1, 5000).Draw(t, "ms")) * time.Millisecond,
			})
		}
		c := s.cursor()
		prev := time.Duration(-1)
		n := s.Total()
		for i := int64(0); i < n; i++ {
			at, ok := c.at(i)
			if !ok {
				t.Fatalf("At(%d) missing; total %d", i, n)
			}
			if at < prev || at > s.Duration() {
				t.Fatalf("At(%d) = %v after %v, schedule %v", i, at, prev, s.Duration())
			}
			if got := s.CountBy(at); math.Abs(got-float64(i)) > 1e-3*math.Max(1, float64(i)) {
				t.Fatalf("CountBy(At(%d)=%v) = %v", i, at, got)
			}
			prev = at
		}
		if _, ok := c.at(n); ok {
			t.Fatalf("At(%d) exists past the total", n)
		}
	})
}

func TestParseRamp(t *testing.T) {
	got, err := ParseRamp("50:10s, 200/s:30s,0.5:1m")
	if err != nil {
		t.Fatal(err)
	}
	want := []Stage{{50, 10 * time.Second}, {200, 30 * time.Second}, {0.5, time.Minute}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("stage %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	bad := map[string]struct{ in, want string }{
		"An empty ramp says how to write one.":     {"", "rate:duration"},
		"A stage without a colon is named.":        {"50:10s,200", `stage 2 "200"`},
		"A rate that is not a number is named.":    {"x:10s", `rate "x"`},
		"A duration that is not one is named.":     {"50:10", `duration "10"`},
		"A negative rate is refused.":              {"-5:10s", "must be in [0"},
		"A zero duration is refused.":              {"5:0s", "more than 0s"},
		"A rate over the maximum is refused.":      {"2000000:1s", "must be in [0, 1000000]"},
		"A NaN rate is refused, not ramped to.":    {"NaN:1s", "must be in [0"},
		"An infinite rate is refused.":             {"+Inf:1s", "must be in [0"},
		"A stage with an empty part is refused.":   {"50:10s,,", `stage 2`},
		"A stage of a rate and nothing is refused": {"50:", `duration ""`},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseRamp(c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParseRamp(%q) = %v, want an error containing %q", c.in, err, c.want)
			}
		})
	}
}

func TestScheduleValidate(t *testing.T) {
	cases := map[string]struct {
		s    Schedule
		want string
	}{
		"A schedule without stages is refused.":   {Schedule{StartRate: 5}, "no stages"},
		"A schedule of rate 0 holds nothing.":     {Constant(0, time.Second), "no iteration"},
		"A schedule longer than a day is refused": {Constant(1, 25*time.Hour), "at most 24h"},
		"A negative stage duration is refused.":   {Schedule{Stages: []Stage{{1, -time.Second}}}, "more than 0s"},
		"A negative start rate is refused.":       {Schedule{StartRate: -1, Stages: []Stage{{1, time.Second}}}, "start rate"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if err := c.s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
