package dashboards

import (
	"slices"
	"testing"
)

func TestOrdered(t *testing.T) {
	f := func(in []step, want ...string) {
		t.Helper()
		var got []string
		for _, s := range ordered(in...) {
			v := "base"
			if s.value != nil {
				v = fmtNum(*s.value)
			}
			got = append(got, v+":"+s.color)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ordered = %v, want %v", got, want)
		}
	}
	f([]step{at(5, red), base(green), at(2, yellow)}, "base:green", "2:yellow", "5:red")
	f([]step{base(green), at(6, red), at(1, orange), at(6, orange)}, "base:green", "1:orange", "6:red")
	f([]step{at(0.9999, green), base(red)}, "base:red", "0.9999:green")
}

func TestRefID(t *testing.T) {
	f := func(i int, want string) {
		t.Helper()
		if got := refID(i); got != want {
			t.Errorf("refID(%d) = %q, want %q", i, got, want)
		}
	}
	f(0, "A")
	f(25, "Z")
	f(26, "AA")
	f(27, "AB")
	f(52, "BA")
}

func TestNumKeepsPercentagesReadable(t *testing.T) {
	f := func(v float64, want string) {
		t.Helper()
		if got := fmtNum(v); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", v, got, want)
		}
	}
	f(99.99/100, "0.9999")
	f((100-99.99)/100, "0.0001")
	f((100-99.999)/100, "1e-05")
	f(14.4, "14.4")
}

func TestGridWrapsAtTwentyFourColumns(t *testing.T) {
	var g grid
	r := g.row()
	a := g.place(16, 8)
	b := g.place(16, 6)
	c := g.place(8, 6)
	r2 := g.row()
	if r.Y != 0 || a.Y != 1 || a.X != 0 || b.Y != 9 || b.X != 0 || c.X != 16 || c.Y != 9 || r2.Y != 15 {
		t.Errorf("row %v, panels %v %v %v, row %v", r, a, b, c, r2)
	}
}
