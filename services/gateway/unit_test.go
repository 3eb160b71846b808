package gateway

import (
	"fmt"
	"regexp"
	"testing"
)

func TestUnitOf(t *testing.T) {
	regions := []string{"sh-b", "sh-a", "bj-a"}
	nameRe := regexp.MustCompile(`^lu-[0-9a-f]{4}-(sh-a|sh-b|bj-a)$`)
	homes := map[string]int{}
	for i := range 3000 {
		rider := fmt.Sprintf("rider-%d", i)
		u := UnitOf(rider, 64, regions)
		if !nameRe.MatchString(u.Name) || u.Name != fmt.Sprintf("lu-%04x-%s", u.Index, u.Home) {
			t.Fatalf("unit name %q of %s", u.Name, rider)
		}
		if again := UnitOf(rider, 64, []string{"bj-a", "sh-a", "sh-b"}); again != u {
			t.Fatalf("%s: unit depends on the order regions are listed in: %+v vs %+v", rider, u, again)
		}
		homes[u.Home]++
	}
	for _, r := range regions {
		if homes[r] < 800 {
			t.Errorf("region %s is home to %d of 3000 riders; want about a third", r, homes[r])
		}
	}
}

func TestGatewayUnitMatchesUnitOf(t *testing.T) {
	tg := newTestGateway(t, []string{"b", "a", "c"}, nil)
	for i := range 100 {
		rider := fmt.Sprintf("r%d", i)
		if got, want := tg.UnitOf(rider), UnitOf(rider, 64, []string{"a", "b", "c"}); got != want {
			t.Fatalf("gateway unit %+v, UnitOf %+v", got, want)
		}
	}
	resp, _ := tg.do(t, "GET", "/v1/rides/1", map[string]string{HeaderRiderID: "r7"}, "")
	if got := resp.Header.Get(HeaderUnit); got != tg.UnitOf("r7").Name {
		t.Fatalf("%s = %q, want %q", HeaderUnit, got, tg.UnitOf("r7").Name)
	}
}

// riderHomedIn finds a rider whose home region is home.
func riderHomedIn(t testing.TB, g *Gateway, home string) (string, Unit) {
	t.Helper()
	for i := range 1000 {
		rider := fmt.Sprintf("rider-%d", i)
		if u := g.UnitOf(rider); u.Home == home {
			return rider, u
		}
	}
	t.Fatalf("no rider homed in %s among 1000", home)
	return "", Unit{}
}
