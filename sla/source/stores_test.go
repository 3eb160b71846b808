package source_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/carpoolsla/carpoolsla/internal/realserver"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/source/sourcetest"
	"github.com/carpoolsla/carpoolsla/sla/source/storetest"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// tolerance is the relative difference allowed between stores: VictoriaMetrics
// keeps values as decimals, so the last bits of a float may differ.
const tolerance = 1e-9

// TestTheSameScenarioReadsTheSameFromEveryStore writes one recorded scenario
// into the embedded store, a real Prometheus 2.42 (remote write) and real
// VictoriaMetrics (one by remote write, one by text import), then runs the
// engine's kinds of queries at a series of times against all of them and
// compares values and label sets with the embedded store's.
func TestTheSameScenarioReadsTheSameFromEveryStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sp, err := spec.Load("../../deploy/sla.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc := sourcetest.Carpool(sp, time.Now())
	stores := storetest.Load(t, sc)
	reference, others := stores[0], stores[1:]

	vmImport := realserver.StartVictoriaMetrics(t)
	if err := sc.ImportText(ctx, nil, vmImport.URL+"/api/v1/import/prometheus"); err != nil {
		t.Fatal(err)
	}
	vmImport.Flush(t)
	imported := storetest.Store{Name: "VictoriaMetrics (imported as text)", Querier: storetest.Client(t, vmImport.URL), URL: vmImport.URL}
	if err := sc.WaitVisible(ctx, imported.Querier, 30*time.Second, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	others = append(others, imported)
	// The embedded store over its HTTP API, read by the external client.
	others = append(others, storetest.Store{Name: "embedded over HTTP", Querier: storetest.Client(t, reference.URL)})

	times := sc.QueryTimes(2*time.Minute, time.Minute)
	queries := sourcetest.EngineQueries(sp)
	t.Logf("%d series, %d samples; %d queries at %d times against %d stores", len(sc.Series), sc.Samples(), len(queries), len(times), len(others)+1)
	for _, q := range queries {
		t.Run(q.Name, func(t *testing.T) {
			nonEmpty := false
			for _, at := range times {
				want, err := reference.Querier.Query(ctx, q.Expr, at)
				if err != nil {
					t.Fatalf("%s: %v", reference.Name, err)
				}
				nonEmpty = nonEmpty || len(want) > 0
				for _, s := range others {
					got, err := s.Querier.Query(ctx, q.Expr, at)
					if err != nil {
						t.Fatalf("%s: %v", s.Name, err)
					}
					if d := sourcetest.Diff(want, got, tolerance); d != "" {
						t.Errorf("%s at %s (+%v) differs from the embedded store on %s:\n%s",
							s.Name, at.Format(time.TimeOnly), at.Sub(sc.Start()), q.Expr, d)
					}
				}
			}
			if !nonEmpty {
				t.Errorf("%s is empty at every time: the comparison proves nothing", q.Expr)
			}
		})
	}

	t.Run("Known difference: VictoriaMetrics keeps the metric name on a bare *_over_time, Prometheus drops it.", func(t *testing.T) {
		spike, _ := sc.Phase(sourcetest.PhaseSpike)
		at := spike.To.Add(-sc.Step / 2)
		expr := "max_over_time(" + catalog.RegionLatencyP99.Name + "[2m])"
		want, err := reference.Querier.Query(ctx, expr, at)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range others {
			got, err := s.Querier.Query(ctx, expr, at)
			if err != nil {
				t.Fatal(err)
			}
			named := 0
			for _, smp := range got {
				if _, ok := smp.Labels["__name__"]; ok {
					named++
					delete(smp.Labels, "__name__")
				}
			}
			wantNamed := 0
			if strings.HasPrefix(s.Name, storetest.VictoriaMetrics) {
				wantNamed = len(want)
			}
			if named != wantNamed {
				t.Errorf("%s: %d of %d samples keep __name__, want %d", s.Name, named, len(got), wantNamed)
			}
			if d := sourcetest.Diff(want, got, tolerance); d != "" {
				t.Errorf("%s: without __name__ the values still differ:\n%s", s.Name, d)
			}
		}
	})
}
