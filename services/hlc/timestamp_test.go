package hlc

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"pgregory.net/rapid"
)

func TestCompare(t *testing.T) {
	cases := map[string]struct {
		a, b Timestamp
		want int
	}{
		"A smaller wall time is before.":            {Timestamp{1, 9, "z"}, Timestamp{2, 0, "a"}, -1},
		"Equal walls are ordered by logical.":       {Timestamp{5, 1, "z"}, Timestamp{5, 2, "a"}, -1},
		"Equal clock parts are ordered by region.":  {Timestamp{5, 2, "eu"}, Timestamp{5, 2, "us"}, -1},
		"Identical timestamps are equal.":           {Timestamp{5, 2, "eu"}, Timestamp{5, 2, "eu"}, 0},
		"A larger logical is after.":                {Timestamp{5, 3, "a"}, Timestamp{5, 2, "z"}, 1},
		"The zero timestamp is before any reading.": {Timestamp{}, Timestamp{0, 0, "a"}, -1},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := c.a.Compare(c.b); got != c.want {
				t.Fatalf("Compare = %d, want %d", got, c.want)
			}
			if got := c.b.Compare(c.a); got != -c.want {
				t.Fatalf("reverse Compare = %d, want %d", got, -c.want)
			}
			if c.a.Less(c.b) != (c.want < 0) {
				t.Fatal("Less disagrees with Compare")
			}
		})
	}
}

func TestStringForm(t *testing.T) {
	f := func(ts Timestamp, want string) {
		t.Helper()
		if got := ts.String(); got != want {
			t.Fatalf("String = %q, want %q", got, want)
		}
		back, err := Parse(want)
		if err != nil || back != ts {
			t.Fatalf("Parse(%q) = %v, %v", want, back, err)
		}
	}
	f(Timestamp{1764028800000, 3, "eu-west"}, "1764028800000.3@eu-west")
	f(Timestamp{}, "0.0@")
	f(Timestamp{-5, 4294967295, "a@b"}, "-5.4294967295@a@b")
}

func TestParseRejectsMalformedInput(t *testing.T) {
	for name, in := range map[string]string{
		"A timestamp without a region separator fails.":  "1.2",
		"A timestamp without a logical separator fails.": "12@eu",
		"A non-numeric wall time fails.":                 "x.1@eu",
		"A logical counter over 32 bits fails.":          "1.4294967296@eu",
		"A negative logical counter fails.":              "1.-1@eu",
		"An empty string fails.":                         "",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(in); err == nil {
				t.Fatalf("Parse(%q) succeeded", in)
			}
		})
	}
}

func TestJSONCarriesTheStringForm(t *testing.T) {
	b, err := json.Marshal(struct{ V Timestamp }{Timestamp{7, 1, "us"}})
	if err != nil || string(b) != `{"V":"7.1@us"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
	var back struct{ V Timestamp }
	if err := json.Unmarshal(b, &back); err != nil || back.V != (Timestamp{7, 1, "us"}) {
		t.Fatalf("decoded %v, %v", back.V, err)
	}
	if err := json.Unmarshal([]byte(`{"V":"nope"}`), &back); err == nil {
		t.Fatal("a malformed timestamp decoded")
	}
}

func TestUnmarshalBinaryRejectsShortInput(t *testing.T) {
	var ts Timestamp
	if err := ts.UnmarshalBinary(make([]byte, 11)); !errors.Is(err, ErrShortBinary) {
		t.Fatalf("err = %v, want ErrShortBinary", err)
	}
}

func genTimestamp() *rapid.Generator[Timestamp] {
	return rapid.Custom(func(t *rapid.T) Timestamp {
		return Timestamp{
			WallMS:  rapid.Int64().Draw(t, "wall"),
			Logical: rapid.Uint32().Draw(t, "logical"),
			Region:  rapid.SampledFrom([]string{"", "a", "ab", "b", "eu-west", "us-east"}).Draw(t, "region"),
		}
	})
}

// The encodings round-trip, and the byte order of the binary form is the
// order of Compare, so encodings can serve as database keys.
func TestEncodingProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genTimestamp().Draw(t, "a"), genTimestamp().Draw(t, "b")
		ab, _ := a.MarshalBinary()
		bb, _ := b.MarshalBinary()
		var back Timestamp
		if err := back.UnmarshalBinary(ab); err != nil || back != a {
			t.Fatalf("binary round trip of %v gave %v, %v", a, back, err)
		}
		if s, err := Parse(a.String()); err != nil || s != a {
			t.Fatalf("string round trip of %v gave %v, %v", a, s, err)
		}
		if got, want := bytes.Compare(ab, bb), a.Compare(b); got != want {
			t.Fatalf("bytes order %d != Compare %d for %v, %v", got, want, a, b)
		}
	})
}
