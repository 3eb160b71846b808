// Package sourcetest holds test helpers for code that reads signals through
// source.Querier: Fake, an in-memory Querier, and Scenario, a recorded set of
// series that can be written into the embedded store, a real Prometheus and a
// real VictoriaMetrics so that the same queries can be compared across them.
package sourcetest

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/source"
)

// Call is one query a Fake answered.
type Call struct {
	Expr string
	At   time.Time
}

// Fake is an in-memory source.Querier for unit tests. An expression set
// with Set or SetError answers that; any other goes to Func when it is set,
// and otherwise gets an empty vector (a store that has no such series), or
// an error when Strict is true. Fake is safe for concurrent use; set it up
// before sharing it.
type Fake struct {
	// Func answers expressions not set with Set or SetError.
	Func func(ctx context.Context, expr string, at time.Time) (source.Vector, error)
	// Strict makes an unknown expression an error instead of an empty vector.
	Strict bool

	mu      sync.Mutex
	results map[string]source.Vector
	errs    map[string]error
	calls   []Call
}

var _ source.Querier = (*Fake)(nil)

// NewFake returns a Fake answering results (expression → vector).
func NewFake(results map[string]source.Vector) *Fake {
	f := &Fake{}
	for expr, v := range results {
		f.Set(expr, v)
	}
	return f
}

// Set makes expr answer v (and no longer an error).
func (f *Fake) Set(expr string, v source.Vector) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.results == nil {
		f.results = map[string]source.Vector{}
	}
	f.results[expr] = v
	delete(f.errs, expr)
}

// SetError makes expr fail with err.
func (f *Fake) SetError(expr string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errs == nil {
		f.errs = map[string]error{}
	}
	f.errs[expr] = err
}

// Query implements source.Querier. Every returned Sample is a copy whose T
// is at, as a real store stamps an instant query's samples with its time.
func (f *Fake) Query(ctx context.Context, expr string, at time.Time) (source.Vector, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.calls = append(f.calls, Call{Expr: expr, At: at})
	v, ok := f.results[expr]
	err, failed := f.errs[expr]
	fn, strict := f.Func, f.Strict
	f.mu.Unlock()
	switch {
	case failed:
		return nil, err
	case ok:
		out := make(source.Vector, len(v))
		for i, s := range v {
			out[i] = source.Sample{Labels: maps.Clone(s.Labels), Value: s.Value, T: at}
			if out[i].Labels == nil {
				out[i].Labels = map[string]string{}
			}
		}
		return out, nil
	case fn != nil:
		return fn(ctx, expr, at)
	case strict:
		return nil, fmt.Errorf("sourcetest: the fake has no result for %q", expr)
	default:
		return source.Vector{}, nil
	}
}

// Calls returns the queries answered so far, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// S builds a Sample from alternating label names and values, for tables.
func S(value float64, nameValues ...string) source.Sample {
	if len(nameValues)%2 != 0 {
		panic("sourcetest.S: label names and values must come in pairs") // a test's typo
	}
	labels := make(map[string]string, len(nameValues)/2)
	for i := 0; i < len(nameValues); i += 2 {
		labels[nameValues[i]] = nameValues[i+1]
	}
	return source.Sample{Labels: labels, Value: value}
}
