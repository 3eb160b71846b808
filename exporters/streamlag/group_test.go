package streamlag

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/services/location"
)

// Every location stream (MemStream, RedisStream) is a GroupLagger.
var _ GroupLagger = location.Stream(nil)

// TestGroupReaderExportsALocationStream wires the in-process adapter to
// the location service's own stream, on a fake clock.
func TestGroupReaderExportsALocationStream(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: base}
	s, err := location.NewMemStream(location.MemStreamConfig{Name: "positions", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, location.DefaultGroup); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		clock.Set(base.Add(time.Duration(i) * time.Second))
		if err := s.Publish(ctx, location.Position{DriverID: "d", TS: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Read(ctx, location.DefaultGroup, "c", 2, 0); err != nil {
		t.Fatal(err)
	}
	r, err := NewGroupReader("sh-a", s, location.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := New(Config{Readers: []Reader{r}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry(t, sc)
	clock.Set(base.Add(10 * time.Second))
	out := scrape(t, reg)
	wantLag(t, out, "sh-a", "positions", location.DefaultGroup, 3, 10-2)
	promtoolCheck(t, out)

	// An unknown group is an error; the known ones are still exported.
	r2, _ := NewGroupReader("sh-b", s, "nobody", location.DefaultGroup)
	sc2, _ := New(Config{Readers: []Reader{r2}, Now: clock.Now})
	out = scrape(t, registry(t, sc2))
	wantUp(t, out, 0)
	wantLag(t, out, "sh-b", "positions", location.DefaultGroup, 3, 8)
}

type fakeReader struct {
	lags []Lag
	err  error
}

func (f fakeReader) Read(context.Context, time.Time) ([]Lag, error) { return f.lags, f.err }

func TestScraper(t *testing.T) {
	now := base.Add(time.Minute)
	l := func(region string, n int64, oldest time.Time) Lag {
		return Lag{Region: region, Stream: "s", Group: "g", Messages: n, Oldest: oldest}
	}
	t.Run("Each reader's lags are exported, a failing one fails the scrape.", func(t *testing.T) {
		sc, _ := New(Config{Now: func() time.Time { return now }, Readers: []Reader{
			fakeReader{lags: []Lag{l("a", 2, base)}},
			fakeReader{lags: []Lag{l("b", 1, base.Add(50*time.Second))}, err: errBoom},
		}})
		out := scrape(t, registry(t, sc))
		wantUp(t, out, 0)
		wantLag(t, out, "a", "s", "g", 2, 60)
		wantLag(t, out, "b", "s", "g", 1, 10)
	})
	t.Run("A producer clock ahead of ours is no negative lag, and no message is no age.", func(t *testing.T) {
		sc, _ := New(Config{Now: func() time.Time { return now }, Readers: []Reader{
			fakeReader{lags: []Lag{l("a", 2, now.Add(time.Second)), l("b", 0, base)}},
		}})
		out := scrape(t, registry(t, sc))
		wantLag(t, out, "a", "s", "g", 2, 0)
		wantLag(t, out, "b", "s", "g", 0, 0)
	})
	t.Run("Two readers with the same labels keep the first and fail the scrape.", func(t *testing.T) {
		sc, _ := New(Config{Now: func() time.Time { return now }, Readers: []Reader{
			fakeReader{lags: []Lag{l("a", 2, base)}}, fakeReader{lags: []Lag{l("a", 5, base)}},
		}})
		reg := prometheus.NewRegistry()
		c := newCollector(sc)
		reg.MustRegister(c)
		out := scrape(t, reg)
		wantUp(t, out, 0)
		wantLag(t, out, "a", "s", "g", 2, 60)
		if err := c.LastError(); err == nil || !strings.Contains(err.Error(), "a/s/g") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("A scraper needs a reader.", func(t *testing.T) {
		if _, err := New(Config{}); err == nil {
			t.Fatal("no error")
		}
	})
}
