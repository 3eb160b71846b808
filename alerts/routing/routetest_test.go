package routing

import (
	"slices"
	"strings"
	"testing"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

func TestRouteTestsCoverTheContract(t *testing.T) {
	cases := RouteTests(loadSpec(t))
	byAlert := map[string]RouteTest{}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.Name] {
			t.Errorf("two cases are named %q", c.Name)
		}
		names[c.Name] = true
		if strings.HasPrefix(c.Name, c.Labels["alertname"]+" (") {
			byAlert[c.Labels["alertname"]] = c
		}
	}

	t.Run("Every alert of the contract has a case at its tier's receiver.", func(t *testing.T) {
		for _, a := range catalog.Alerts() {
			c, ok := byAlert[a.Name]
			if !ok {
				t.Errorf("no case for %s", a.Name)
				continue
			}
			if c.Labels["tier"] != string(a.Tier) || !slices.Equal(c.Want, []string{a.Tier.Receiver()}) {
				t.Errorf("%s: tier %q wants %v, want tier %s at %s", a.Name, c.Labels["tier"], c.Want, a.Tier, a.Tier.Receiver())
			}
		}
	})
	t.Run("Every tier and every receiver is reached by some case.", func(t *testing.T) {
		reached := map[string]bool{}
		for _, c := range cases {
			for _, r := range c.Want {
				reached[r] = true
			}
		}
		for _, tier := range catalog.Tiers {
			if !reached[tier.Receiver()] {
				t.Errorf("no case reaches %s (tier %s)", tier.Receiver(), tier)
			}
		}
	})
	t.Run("Cases carry the labels the rule generator puts on alerts.", func(t *testing.T) {
		for _, c := range byAlert {
			for _, l := range []string{"alertname", catalog.AlertLabelSeverity, catalog.AlertLabelTeam, catalog.AlertLabelRegion, catalog.AlertLabelService, catalog.AlertLabelSLO} {
				if c.Labels[l] == "" {
					t.Errorf("%s: no %s label", c.Name, l)
				}
			}
		}
	})
	t.Run("An inhibited alert says so in its name and still expects its own receiver.", func(t *testing.T) {
		c := byAlert[catalog.AlertBurnSlow.Name]
		if !strings.Contains(c.Name, catalog.AlertBurnFast.Name) || !strings.Contains(c.Name, catalog.AlertRegionDown.Name) {
			t.Errorf("%q does not name its inhibitors", c.Name)
		}
	})
}

func TestShellQuote(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	f(`tier="P0"`, `'tier="P0"'`)
	f(`it's`, `'it'\''s'`)
	f(`$(rm -rf /) `+"`x`", `'$(rm -rf /) `+"`x`'")
	f(``, `''`)
}
