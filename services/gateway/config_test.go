package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		c := Config{Region: "a", Regions: []Upstream{{Name: "a", BaseURL: "http://127.0.0.1:1"}, {Name: "b", BaseURL: "http://127.0.0.1:2"}}}
		c.defaults()
		return c
	}
	for sentence, tc := range map[string]struct {
		edit func(*Config)
		want string // substring of the error; empty means valid
	}{
		"The defaults with two regions are valid.":              {edit: func(*Config) {}},
		"A gateway without its own region is rejected.":         {edit: func(c *Config) { c.Region = "" }, want: "region"},
		"A gateway whose region is not listed is rejected.":     {edit: func(c *Config) { c.Region = "z" }, want: `region "z" is not one of regions`},
		"A region listed twice is rejected.":                    {edit: func(c *Config) { c.Regions[1].Name = "a" }, want: "listed twice"},
		"A relative base URL is rejected.":                      {edit: func(c *Config) { c.Regions[1].BaseURL = "/b" }, want: "regions[1].base_url"},
		"A probe timeout as long as the interval is rejected.":  {edit: func(c *Config) { c.Probes.Timeout = c.Probes.Interval }, want: "probes.timeout"},
		"A zero unhealthy threshold is rejected.":               {edit: func(c *Config) { c.Probes.UnhealthyAfter = -1 }, want: "unhealthy_after"},
		"A retry budget above 1 is rejected.":                   {edit: func(c *Config) { c.Retry.BudgetRatio = 1.5 }, want: "budget_ratio"},
		"A retry floor above 10000 a second is rejected.":       {edit: func(c *Config) { c.Retry.MinRetriesPerSecond = 1e6 }, want: "min_retries_per_second"},
		"A max ejection shorter than the base one is rejected.": {edit: func(c *Config) { c.Ejection.MaxEjection = time.Second }, want: "max_ejection"},
		"Fewer units than regions is rejected.":                 {edit: func(c *Config) { c.Units = 1 }, want: "units"},
		"A weights URL that is not http is rejected.":           {edit: func(c *Config) { c.WeightsURL = "ftp://x" }, want: "weights_url"},
		"A weights URL with an http scheme is valid.":           {edit: func(c *Config) { c.WeightsURL = "http://127.0.0.1:9/routing" }},
	} {
		t.Run(sentence, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNewRejectsABadConfig(t *testing.T) {
	if _, err := New(Config{Region: "a"}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "regions") {
		t.Fatalf("New without regions: %v", err)
	}
}

func TestDefaultsAreTheSeedNumbers(t *testing.T) {
	var c Config
	c.defaults()
	p := c.Probes
	if p.Interval != time.Second || p.Timeout != 300*time.Millisecond || p.UnhealthyAfter != 3 || p.HealthyAfter != 2 {
		t.Fatalf("probe defaults %+v, want 1 s, 300 ms, 3, 2", p)
	}
	if c.Retry.BudgetRatio != 0.1 {
		t.Fatalf("retry budget %v, want 0.1", c.Retry.BudgetRatio)
	}
}

func TestProbeConfigFromTheSpec(t *testing.T) {
	s, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := ProbeConfigFromSpec(s.Routing.Probes)
	if p.Interval != time.Second || p.Timeout != 300*time.Millisecond || p.UnhealthyAfter != 3 || p.HealthyAfter != 2 {
		t.Fatalf("probes from deploy/sla.yaml %+v, want 1 s, 300 ms, 3, 2", p)
	}
}
