// Package source is where the SLA engine's signals come from: PromQL
// evaluated by the embedded store (sla/embedded) or by an external
// Prometheus-compatible HTTP API (Prometheus, Thanos, VictoriaMetrics). The
// engine depends only on Querier, so one PromQL path serves both scales.
package source

import (
	"context"
	"time"
)

// Sample is one element of an instant vector: its labels (including
// __name__ when the expression keeps it), its value and its timestamp.
type Sample struct {
	Labels map[string]string
	Value  float64
	T      time.Time
}

// Vector is the result of an instant query.
type Vector []Sample

// Querier evaluates instant PromQL expressions. A scalar result comes back
// as one Sample without labels. Implementations are safe for concurrent use.
type Querier interface {
	Query(ctx context.Context, expr string, at time.Time) (Vector, error)
}
