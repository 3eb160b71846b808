package report

import (
	"context"
	"fmt"
	"time"
)

// Timeseries is the answer of GET /api/v1/sla/timeseries: attainment per
// bucket, for charts. Values line up with Times; a bucket without events
// is null.
type Timeseries struct {
	Scope       Scope       `json:"scope"`
	Service     string      `json:"service,omitempty"`
	Region      string      `json:"region,omitempty"`
	From        time.Time   `json:"from"`
	To          time.Time   `json:"to"`
	StepSeconds int         `json:"step_seconds"`
	Times       []time.Time `json:"times"`
	// Series: for scopes composite and region, "composite" then one per
	// service; for scope service, the service then one per SLO
	// ("service/slo"). Values are attainment percentages.
	Series []Series `json:"series"`
}

// Series is one line of a chart.
type Series struct {
	Name   string     `json:"name"`
	Values []*float64 `json:"values"`
}

// Timeseries computes the buckets of q.
func (r *Reporter) Timeseries(ctx context.Context, q TimeseriesQuery) (*Timeseries, error) {
	rows, err := r.History.SLIBuckets(ctx, BucketQuery{From: q.From, To: q.To, Step: q.Step, Region: q.Region, SLOs: targets(r.Spec, q.Service)})
	if err != nil {
		return nil, fmt.Errorf("reading SLI buckets: %w", err)
	}
	n := int(q.To.Sub(q.From) / q.Step)
	ts := &Timeseries{
		Scope: q.Scope, Service: q.Service, Region: q.Region, From: q.From, To: q.To,
		StepSeconds: int(q.Step / time.Second), Times: make([]time.Time, n),
	}
	for i := range ts.Times {
		ts.Times[i] = q.From.Add(time.Duration(i) * q.Step)
	}
	// Per bucket, the SLI counts of the scope.
	buckets := make([]windowCounts, n)
	for _, row := range rows {
		i := int(row.Start.Sub(q.From) / q.Step)
		if i < 0 || i >= n {
			continue
		}
		buckets[i].SLOs = append(buckets[i].SLOs, SLOCount{Service: row.Service, SLO: row.SLO, Good: row.Good, Total: row.Total})
	}
	headName := "composite"
	if q.Service != "" {
		headName = q.Service
	}
	head := Series{Name: headName, Values: make([]*float64, n)}
	var parts []Series
	if q.Service != "" {
		for _, t := range targets(r.Spec, q.Service) {
			parts = append(parts, Series{Name: t.Service + "/" + t.SLO, Values: make([]*float64, n)})
		}
	} else {
		for _, svc := range r.Spec.Services {
			parts = append(parts, Series{Name: svc.Name, Values: make([]*float64, n)})
		}
	}
	for i, b := range buckets {
		slos, services, h := attainments(r.Spec, q.Service, b)
		head.Values[i] = h.AttainmentPercent
		if q.Service != "" {
			for j, s := range slos {
				parts[j].Values[i] = s.AttainmentPercent
			}
		} else {
			for j, s := range services {
				parts[j].Values[i] = s.AttainmentPercent
			}
		}
	}
	ts.Series = append([]Series{head}, parts...)
	return ts, nil
}
