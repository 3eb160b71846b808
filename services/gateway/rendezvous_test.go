package gateway

import (
	"fmt"
	"math"
	"testing"
)

// Keys spread over the eligible regions in proportion to their weights, a
// key always lands on the same region, and when a region leaves only its
// own keys move (to the others, in proportion again).
func TestRendezvousIsStickyWeightedAndMovesOnlyTheLostRegionsKeys(t *testing.T) {
	names := []string{"sh-a", "sh-b", "bj-a"}
	weights := []int64{3000, 1000, 0}
	all := []bool{true, true, true}
	const n = 20000
	count := make([]int, 3)
	first := make([]int, n)
	for k := range n {
		key := fmt.Sprint("ride-", k)
		i := rendezvous(key, names, weights, all)
		if again := rendezvous(key, names, weights, all); again != i {
			t.Fatalf("key %s went to %d, then %d", key, i, again)
		}
		first[k] = i
		count[i]++
	}
	if count[2] != 0 {
		t.Fatalf("%d keys on a region of weight 0", count[2])
	}
	if share := float64(count[0]) / n; math.Abs(share-0.75) > 0.02 {
		t.Fatalf("sh-a took %.3f of the keys at weight 3:1, want 0.75", share)
	}
	// sh-b leaves: its keys go to sh-a (the only other weighted region),
	// sh-a's keys stay.
	without := []bool{true, false, true}
	for k := range n {
		i := rendezvous(fmt.Sprint("ride-", k), names, weights, without)
		if first[k] == 0 && i != 0 {
			t.Fatalf("key %d moved off sh-a, which stayed", k)
		}
		if i != 0 {
			t.Fatalf("key %d went to %d; sh-a is the only weighted region left", k, i)
		}
	}
	// Every weight 0: uniform, as swrr does for a drained table.
	zero := []int64{0, 0, 0}
	count = make([]int, 3)
	for k := range 3000 {
		count[rendezvous(fmt.Sprint("k", k), names, zero, all)]++
	}
	for i, c := range count {
		if c < 800 || c > 1200 {
			t.Fatalf("region %d took %d of 3000 keys with every weight 0, want about 1000", i, c)
		}
	}
	if got := rendezvous("k", names, weights, []bool{false, false, false}); got != -1 {
		t.Fatalf("no eligible region gave %d, want -1", got)
	}
}

// Through the gateway: a rider's repeated request with the same
// Idempotency-Key reaches the same region every time (the region that
// holds the key), while requests without one, and different keys, spread
// over every region.
func TestTheSameIdempotencyKeyReachesTheSameRegion(t *testing.T) {
	tg := newTestGateway(t, []string{"a", "b", "c"}, nil)
	region := func(hdr map[string]string) string {
		resp, _ := tg.do(t, "POST", "/v1/rides", hdr, "{}")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return resp.Header.Get(HeaderRegion)
	}
	seen := map[string]int{}
	for k := range 30 {
		key := map[string]string{HeaderIdempotencyKey: fmt.Sprint("key-", k)}
		r := region(key)
		for range 3 {
			if again := region(key); again != r {
				t.Fatalf("key-%d went to %s, then %s", k, r, again)
			}
		}
		seen[r]++
	}
	if len(seen) != 3 {
		t.Fatalf("30 keys reached %v; with equal weights they spread over all three regions", seen)
	}
	// The key's region fails: the gateway's retry goes to the key's next
	// region, and so does the retry of a client that sends it again.
	key := map[string]string{HeaderIdempotencyKey: "key-0"}
	home := region(key)
	tg.ups[home].status.Store(503)
	alt := region(key)
	if alt == home {
		t.Fatalf("a retried request was served by %s, which fails", home)
	}
	for range 3 {
		if again := region(key); again != alt {
			t.Fatalf("with %s failing, key-0 was retried in %s, then in %s", home, alt, again)
		}
	}
	tg.ups[home].status.Store(0)
	plain := map[string]int{}
	for range 6 {
		plain[region(nil)]++
	}
	if len(plain) != 3 {
		t.Fatalf("requests without a key reached %v; round robin spreads them over all three", plain)
	}
}
