package chsink

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"
)

// Sink holds one writer per table, all over one connection and one Config.
// Run runs them all. Services use Logs (through NewHandler or NewLogSink)
// and Spans (through NewSpanExporter); the SLA engine, the rollups, the
// drills and the load generator use the others.
type Sink struct {
	Logs       *Writer[LogRecord]
	Spans      *Writer[SpanRecord]
	Events     *Writer[SLAEvent]
	SLIMinutes *Writer[SLIMinute]
	Drills     *Writer[DrillResult]
	LoadRuns   *Writer[LoadRun]
}

// NewSink returns the writers of every table over conn. Give cfg.Metrics a
// Metrics registered once; every writer shares it.
func NewSink(conn BatchConn, cfg Config) (*Sink, error) {
	if cfg.Metrics == nil {
		m, err := NewMetrics(nil)
		if err != nil {
			return nil, err
		}
		cfg.Metrics = m
	}
	var (
		s    Sink
		errs []error
		err  error
	)
	s.Logs, err = NewWriter[LogRecord](conn, cfg)
	errs = append(errs, err)
	s.Spans, err = NewWriter[SpanRecord](conn, cfg)
	errs = append(errs, err)
	s.Events, err = NewWriter[SLAEvent](conn, cfg)
	errs = append(errs, err)
	s.SLIMinutes, err = NewWriter[SLIMinute](conn, cfg)
	errs = append(errs, err)
	s.Drills, err = NewWriter[DrillResult](conn, cfg)
	errs = append(errs, err)
	s.LoadRuns, err = NewWriter[LoadRun](conn, cfg)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		// Release the write-ahead logs the others opened (and locked).
		for _, c := range []interface{ closeWAL() }{s.Logs, s.Spans, s.Events, s.SLIMinutes, s.Drills, s.LoadRuns} {
			if c != nil {
				c.closeWAL()
			}
		}
		return nil, err
	}
	return &s, nil
}

// Run runs every writer until ctx ends and they have drained (see
// Writer.Run).
func (s *Sink) Run(ctx context.Context) error {
	var g errgroup.Group
	g.Go(func() error { return s.Logs.Run(ctx) })
	g.Go(func() error { return s.Spans.Run(ctx) })
	g.Go(func() error { return s.Events.Run(ctx) })
	g.Go(func() error { return s.SLIMinutes.Run(ctx) })
	g.Go(func() error { return s.Drills.Run(ctx) })
	g.Go(func() error { return s.LoadRuns.Run(ctx) })
	return g.Wait()
}

// Flush flushes every writer (see Writer.Flush).
func (s *Sink) Flush(ctx context.Context) error {
	return errors.Join(s.Logs.Flush(ctx), s.Spans.Flush(ctx), s.Events.Flush(ctx),
		s.SLIMinutes.Flush(ctx), s.Drills.Flush(ctx), s.LoadRuns.Flush(ctx))
}

// Stats returns every writer's counts by table name.
func (s *Sink) Stats() map[string]Stats {
	return map[string]Stats{
		TableLogs:         s.Logs.Stats(),
		TableSpans:        s.Spans.Stats(),
		TableSLAEvents:    s.Events.Stats(),
		TableSLIMinutes:   s.SLIMinutes.Stats(),
		TableDrillResults: s.Drills.Stats(),
		TableLoadRuns:     s.LoadRuns.Stats(),
	}
}
