package catalog

// The data verifier's own metrics (beside VerifyRowsMismatched) and the
// auto-repair job's. All are exported by exporters/verify and
// exporters/repair.
var (
	VerifyRowsVerified = Metric{
		Name: "carpool_verify_rows_verified_total", Type: Counter, Unit: "rows", Producer: Exporters,
		Help:   "Source rows the data verifier compared with the target region (in chunks that matched or were split down to rows).",
		Labels: []string{LabelTable, LabelSourceRegion, LabelTargetRegion},
	}
	VerifyChunks = Metric{
		Name: "carpool_verify_chunks_total", Type: Counter, Unit: "chunks", Producer: Exporters,
		Help:   "Primary-key chunks the data verifier compared by row count and hash sum.",
		Labels: []string{LabelTable, LabelSourceRegion, LabelTargetRegion},
	}
	VerifyChunksMismatched = Metric{
		Name: "carpool_verify_chunks_mismatched_total", Type: Counter, Unit: "chunks", Producer: Exporters,
		Help:   "Chunks whose row count or hash sum differed between the regions, and were split down to rows.",
		Labels: []string{LabelTable, LabelSourceRegion, LabelTargetRegion},
	}
	VerifyRowsInFlight = Metric{
		Name: "carpool_verify_rows_in_flight_total", Type: Counter, Unit: "rows", Producer: Exporters,
		Help:   "Rows that differed at first sight but matched when re-checked after the sync lag: writes in flight, not reported as mismatches.",
		Labels: []string{LabelTable, LabelSourceRegion, LabelTargetRegion},
	}
	VerifyRowsUnsettled = Metric{
		Name: "carpool_verify_rows_unsettled_total", Type: Counter, Unit: "rows", Producer: Exporters,
		Help:   "Rows that still differed but kept changing through every re-check: neither confirmed nor cleared.",
		Labels: []string{LabelTable, LabelSourceRegion, LabelTargetRegion},
	}
	VerifyMismatchesOpen = Metric{
		Name: "carpool_verify_mismatches_open", Type: Gauge, Unit: "rows", Producer: Exporters,
		Help:   "Confirmed mismatched rows not yet repaired (as of the last pass over the table), by kind: missing, extra or differ.",
		Labels: []string{LabelTable, LabelSourceRegion, LabelTargetRegion, LabelKind},
	}
	VerifyRuns = Metric{
		Name: "carpool_verify_runs_total", Type: Counter, Unit: "runs", Producer: Exporters,
		Help:   "Verification runs over a region pair, by outcome: ok, or error when a backend failed (unreachable, bad schema).",
		Labels: []string{LabelSourceRegion, LabelTargetRegion, LabelOutcome},
	}
	VerifyRunDuration = Metric{
		Name: "carpool_verify_run_duration_seconds", Type: Gauge, Unit: "seconds", Producer: Exporters,
		Help:   "Duration of the last verification run over a region pair, re-checks included.",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
	VerifyLastSuccess = Metric{
		Name: "carpool_verify_last_success_timestamp_seconds", Type: Gauge, Unit: "timestamp_seconds", Producer: Exporters,
		Help:   "When the last verification run over a region pair that completed without error ended (absent before the first).",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}

	RepairBreakerOpen = Metric{
		Name: "carpool_repair_breaker_open", Type: Gauge, Unit: "bool", Producer: Exporters,
		Help:   "1 when auto-repair stopped itself because the day's repair failure rate passed its limit; it stays 1 until resumed by hand.",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
	RepairAttempts = Metric{
		Name: "carpool_repair_attempts_total", Type: Counter, Unit: "repairs", Producer: Exporters,
		Help:   "Repairs auto-repair applied to the target region (mismatched rows rewritten, sync changes re-applied), by outcome: ok or error.",
		Labels: []string{LabelSourceRegion, LabelTargetRegion, LabelOutcome},
	}
	RepairFailureRatio = Metric{
		Name: "carpool_repair_failure_ratio", Type: Gauge, Unit: "ratio", Producer: Exporters,
		Help:   "Failed repairs over attempted repairs so far today (the breaker's measure; 0 before the first attempt of the day).",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
	RepairLastRun = Metric{
		Name: "carpool_repair_last_run_timestamp_seconds", Type: Gauge, Unit: "timestamp_seconds", Producer: Exporters,
		Help:   "When the auto-repair job last ran a cycle (absent before the first).",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
)

func init() {
	register(VerifyRowsVerified, VerifyChunks, VerifyChunksMismatched, VerifyRowsInFlight, VerifyRowsUnsettled,
		VerifyMismatchesOpen, VerifyRuns, VerifyRunDuration, VerifyLastSuccess,
		RepairBreakerOpen, RepairAttempts, RepairFailureRatio, RepairLastRun)
}
