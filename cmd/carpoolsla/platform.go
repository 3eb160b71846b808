package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/carpoolsla/carpoolsla/exporters/rto"
	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/services/region"
	"github.com/carpoolsla/carpoolsla/sla/engine"
	"github.com/carpoolsla/carpoolsla/sla/report"
	"github.com/carpoolsla/carpoolsla/sla/report/memhistory"
	"github.com/carpoolsla/carpoolsla/sla/rollup"
	"github.com/carpoolsla/carpoolsla/telemetry/chsink"
)

// Adapters between the platform's parts. Each part declares the small
// interface it consumes; these connect them without the parts knowing each
// other (sla/ never imports services/).

// liveFromEngine serves the report's live view from the engine's latest
// decision, with each region's injected faults when the regions are in
// process (the status page shows a fault at its next refresh, long before
// the engine's windows react to it).
type liveFromEngine struct {
	e *engine.Engine
	c *region.Cluster // nil: faults unknown
}

func (l liveFromEngine) Live(context.Context) (report.LiveStatus, error) {
	st := l.e.Status()
	if st.Ticks == 0 {
		return report.LiveStatus{}, errors.New("the SLA engine has not decided yet; it ticks every engine.interval")
	}
	out := report.LiveStatus{At: st.At, Panic: st.Panic, CompositePercent: percent(st.Global.Composite)}
	for _, r := range st.Regions {
		lr := report.LiveRegion{Name: r.Region, Health: orZero(r.Health), Components: map[string]float64{},
			Breaker: string(r.Breaker), Weight: r.Weight, CompositePercent: percent(r.Composite)}
		for _, c := range r.Components {
			lr.Components[c.Name] = c.Score
		}
		if l.c != nil {
			if reg, ok := l.c.Regions[r.Region]; ok {
				lr.Faults = reg.Faults.State().Describe()
			}
		}
		out.Regions = append(out.Regions, lr)
	}
	return out, nil
}

func percent(n engine.Number) *float64 {
	if math.IsNaN(float64(n)) {
		return nil
	}
	v := float64(n) * 100
	return &v
}

func orZero(n engine.Number) float64 {
	if math.IsNaN(float64(n)) {
		return 0
	}
	return float64(n)
}

// clusterFaults applies the status page's faults to the in-process regions'
// fault injectors, the same state their /admin/faults API sets.
type clusterFaults struct{ c *region.Cluster }

func (f clusterFaults) injector(name string) (*faults.Injector, error) {
	r, ok := f.c.Regions[name]
	if !ok {
		return nil, fmt.Errorf("no region %q; the regions are %v", name, f.c.Names())
	}
	return r.Faults, nil
}

func (f clusterFaults) Inject(_ context.Context, name string, req report.FaultRequest) error {
	in, err := f.injector(name)
	if err != nil {
		return err
	}
	st := faults.State{Down: req.Down, ReplicationStalled: req.ReplicationStalled,
		ClockSkew: faults.Duration(time.Duration(req.ClockSkewMS) * time.Millisecond)}
	if req.LatencyMS > 0 || req.ErrorRate > 0 {
		svc := req.Service
		if svc == "" {
			svc = "*"
		}
		sf := faults.ServiceFaults{ErrorRate: req.ErrorRate}
		sf.Latency.Fixed = faults.Duration(time.Duration(req.LatencyMS) * time.Millisecond)
		st.Services = map[string]faults.ServiceFaults{svc: sf}
	}
	return in.Set(st)
}

func (f clusterFaults) Clear(_ context.Context, name string) error {
	in, err := f.injector(name)
	if err != nil {
		return err
	}
	in.Clear()
	return nil
}

// fanoutSink hands the engine's events to several sinks; every sink gets
// every event even when an earlier one fails.
type fanoutSink []engine.EventSink

func (f fanoutSink) Emit(ctx context.Context, evs []engine.Event) error {
	var errs []error
	for _, s := range f {
		if err := s.Emit(ctx, evs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// chEvents writes the engine's events to ClickHouse's sla_events.
type chEvents struct {
	w *chsink.Writer[chsink.SLAEvent]
}

func (c chEvents) Emit(ctx context.Context, evs []engine.Event) error {
	var errs []error
	for _, ev := range evs {
		row := chsink.SLAEvent{EventID: chsink.IDFrom(ev.ID), Time: ev.At, Kind: ev.Kind, Region: ev.Region,
			FromState: ev.From, ToState: ev.To, Reason: ev.Reason}
		for k, v := range ev.Values {
			row.ValueKeys = append(row.ValueKeys, k)
			row.ValueValues = append(row.ValueValues, v)
		}
		if err := c.w.Write(row); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// chMinutes writes the SLI rollup's minutes to ClickHouse's sli_minutes.
type chMinutes struct {
	w *chsink.Writer[chsink.SLIMinute]
}

func (c chMinutes) WriteMinutes(ctx context.Context, rows []rollup.Minute) error {
	var errs []error
	for _, m := range rows {
		if err := c.w.Write(chsink.SLIMinute(m)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// demoDrills records the drill results posted to the demo's report API in
// its history: ClickHouse's drill_results with --clickhouse, else the
// in-process history.
type demoDrills struct {
	mem *memhistory.Store
	w   *chsink.Writer[chsink.DrillResult]
	// metrics, when set, exports the last result per scenario as
	// carpool_drill_* (the DR dashboard's drill panels).
	metrics *rto.Drills
}

func (d demoDrills) RecordDrill(ctx context.Context, rec report.DrillRecord) error {
	row := drillRow(rec)
	var err error
	if d.w != nil {
		if err = d.w.Write(row); err == nil {
			err = d.w.Flush(ctx)
		}
	} else {
		err = d.mem.RecordDrill(ctx, row)
	}
	if err != nil || d.metrics == nil {
		return err
	}
	phases := map[string]time.Duration{}
	for name, v := range map[string]float64{rto.PhaseDetect: rec.DetectSeconds, rto.PhaseDecide: rec.DecideSeconds,
		rto.PhaseShift: rec.ShiftSeconds, rto.PhaseTotal: rec.RTOSeconds} {
		if v >= 0 {
			phases[name] = time.Duration(v * float64(time.Second))
		}
	}
	return d.metrics.Record(rec.Scenario, phases, time.Duration(max(rec.RPOSeconds, 0)*float64(time.Second)))
}
