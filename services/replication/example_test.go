package replication_test

import (
	"context"
	"fmt"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/hlc"
	"github.com/carpoolsla/carpoolsla/services/replication"
	"github.com/carpoolsla/carpoolsla/services/store"
)

// Two regions in one process: a write in eu reaches us through the eu → us
// replicator.
func Example() {
	ctx := context.Background()
	newStore := func(region string, in *faults.Injector) *store.Memory {
		clk, _ := hlc.New(hlc.Config{Region: region, Now: in.Clock})
		s, _ := store.NewMemory(store.Config{Region: region, Clock: clk})
		return s
	}
	euFaults, usFaults := &faults.Injector{}, &faults.Injector{}
	eu, us := newStore("eu", euFaults), newStore("us", usFaults)

	r, _ := replication.New(replication.Config{
		SourceRegion: "eu",
		Source:       replication.NewLocalSource(eu), // or NewHTTPSource against eu's OutboxHandler
		Target:       us,
		Stall:        usFaults,
		OnApply:      func(_ context.Context, rec store.Record) { fmt.Println("invalidate", rec.Key) },
	})
	_, _ = eu.Put(ctx, "rides", "ride-1", []byte(`{"state":"requested"}`))
	n, err := r.Step(ctx) // Run(ctx) loops until ctx ends
	got, _, _ := us.Get(ctx, "rides", "ride-1")
	fmt.Println(n, err, string(got.Value), got.Origin)
	// Output:
	// invalidate ride-1
	// 1 <nil> {"state":"requested"} eu
}
