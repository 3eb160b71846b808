package order

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		mutate func(*Config)
		want   string // "" for valid
	}{
		"The defaults with a region are valid.":                {func(*Config) {}, ""},
		"A config without a region is refused.":                {func(c *Config) { c.Region = "" }, "region is required"},
		"A tick longer than the retry interval is refused.":    {func(c *Config) { c.Dispatch.Tick = 5 * time.Second }, "dispatch.tick"},
		"A max wait shorter than one interval is refused.":     {func(c *Config) { c.Dispatch.MaxWait = time.Second }, "dispatch.max_wait"},
		"A nearby timeout past the max wait is refused.":       {func(c *Config) { c.Dispatch.NearbyTimeout = time.Hour }, "dispatch.nearby_timeout"},
		"A negative worker count is refused.":                  {func(c *Config) { c.Dispatch.Workers = -1 }, "dispatch.workers"},
		"A negative quote timeout is refused.":                 {func(c *Config) { c.QuoteTimeout = -time.Second }, "quote_timeout"},
		"A negative match wait is allowed: answer at once.":    {func(c *Config) { c.Dispatch.MatchWait = -1 }, ""},
		"A negative payment backoff is allowed: retry at once": {func(c *Config) { c.Payment.Backoff = -1 }, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := Config{Region: "sh-a"}
			tc.mutate(&c)
			c.defaults()
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestNewNeedsItsDependencies(t *testing.T) {
	_, err := New(Config{Region: "sh-a"}, Deps{IDs: &fakeIDs{}})
	if err == nil || !strings.Contains(err.Error(), "Quoter") || !strings.Contains(err.Error(), "Payer") {
		t.Fatalf("got %v; want the missing dependencies named", err)
	}
}

func TestIdempotencyForgetsOldKeys(t *testing.T) {
	clock := newFakeClock()
	x := newIdempotency(time.Hour, 2)
	for _, k := range []string{"a", "b"} {
		e, leader := x.begin(k, "fp", clock.Now())
		if !leader {
			t.Fatalf("%s: not the leader of a new key", k)
		}
		x.finish(k, e, Ride{ID: 1}, nil, clock.Now())
	}
	if _, leader := x.begin("a", "fp", clock.Now()); leader {
		t.Fatal("a finished key within its TTL was forgotten")
	}
	// A third key pushes the oldest out (max 2).
	e, _ := x.begin("c", "fp", clock.Now())
	x.finish("c", e, Ride{ID: 3}, nil, clock.Now())
	x.begin("d", "fp", clock.Now()) // evicts down to the bound
	if _, leader := x.begin("a", "fp", clock.Now()); !leader {
		t.Fatal("the oldest key was kept past the bound")
	}
	clock.Advance(2 * time.Hour)
	x.begin("e", "fp", clock.Now())
	if x.len() > 3 {
		t.Fatalf("%d keys remembered after the TTL; want the unfinished ones only", x.len())
	}
}
