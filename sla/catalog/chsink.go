package catalog

// Labels of the ClickHouse log and event pipeline (telemetry/chsink).
const (
	// LabelWritePath says how a batch reached ClickHouse: live (straight from
	// the in-memory queue) or replay (from the write-ahead log).
	LabelWritePath = "path"
	LabelDatabase  = "database"
)

// Values of the path label.
const (
	WritePathLive   = "live"
	WritePathReplay = "replay"
)

// Values of the reason label of ChsinkSpilled.
const (
	SpillQueueFull    = "queue_full"    // the queue stayed full for the enqueue timeout
	SpillInsertFailed = "insert_failed" // a batch failed its insert and retries
	SpillDegraded     = "degraded"      // inserts are failing: new batches go to disk without trying
	SpillShutdown     = "shutdown"      // left in the queue when the writer stopped
)

// Values of the reason label of ChsinkLost.
const (
	LostWALFull    = "wal_full"    // the write-ahead log was at its size bound
	LostWALError   = "wal_error"   // the write-ahead log could not be written (disk error)
	LostWALCorrupt = "wal_corrupt" // a frame failed its checksum on replay (counted once per frame)
	LostNoWAL      = "no_wal"      // no write-ahead log is configured and the batch or record could not be kept
	LostClosed     = "closed"      // written after the writer had stopped
)

// ChsinkInsertBuckets are the boundaries of ChsinkInsertDuration (one batch
// insert, up to a few tens of thousands of rows).
var ChsinkInsertBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Metrics of the ClickHouse log and event pipeline. Every record written is,
// at any time, inserted, pending (queued or in the write-ahead log) or lost;
// lost is only ever non-zero when the write-ahead log is at its bound or
// failing, and is alerted on.
var (
	ChsinkWritten = Metric{
		Name: "carpool_chsink_written_records_total", Type: Counter, Unit: "records", Producer: Services,
		Help:   "Records handed to the ClickHouse pipeline, per table.",
		Labels: []string{LabelTable},
	}
	ChsinkInserted = Metric{
		Name: "carpool_chsink_inserted_records_total", Type: Counter, Unit: "records", Producer: Services,
		Help:   "Records ClickHouse acknowledged, by path: live (from the queue) or replay (from the write-ahead log). A replay of an insert that landed unacknowledged counts again; the table keeps one row per event id.",
		Labels: []string{LabelTable, LabelWritePath},
	}
	ChsinkSpilled = Metric{
		Name: "carpool_chsink_spilled_records_total", Type: Counter, Unit: "records", Producer: Services,
		Help:   "Records written to the local write-ahead log instead of ClickHouse, by reason: queue_full, insert_failed, degraded or shutdown.",
		Labels: []string{LabelTable, LabelReason},
	}
	ChsinkLost = Metric{
		Name: "carpool_chsink_lost_records_total", Type: Counter, Unit: "records", Producer: Services,
		Help:   "Records dropped by the ClickHouse pipeline, by reason: wal_full (the write-ahead log at its bound), wal_error, wal_corrupt (per frame), no_wal or closed. Alerted on.",
		Labels: []string{LabelTable, LabelReason},
	}
	ChsinkInsertFailures = Metric{
		Name: "carpool_chsink_insert_failures_total", Type: Counter, Unit: "inserts", Producer: Services,
		Help:   "Batch inserts into ClickHouse that failed (each attempt), by path.",
		Labels: []string{LabelTable, LabelWritePath},
	}
	ChsinkInsertDuration = Metric{
		Name: "carpool_chsink_insert_duration_seconds", Type: Histogram, Unit: "seconds", Producer: Services,
		Help:    "Duration of successful batch inserts into ClickHouse, by path.",
		Labels:  []string{LabelTable, LabelWritePath},
		Buckets: ChsinkInsertBuckets,
	}
	ChsinkQueue = Metric{
		Name: "carpool_chsink_queue_records", Type: Gauge, Unit: "records", Producer: Services,
		Help:   "Records waiting in the pipeline's in-memory queue, per table.",
		Labels: []string{LabelTable},
	}
	ChsinkWALBytes = Metric{
		Name: "carpool_chsink_wal_bytes", Type: Gauge, Unit: "bytes", Producer: Services,
		Help:   "Bytes the table's write-ahead log takes on disk.",
		Labels: []string{LabelTable},
	}
	ChsinkWALLimitBytes = Metric{
		Name: "carpool_chsink_wal_limit_bytes", Type: Gauge, Unit: "bytes", Producer: Services,
		Help:   "Size bound of the table's write-ahead log; past it new records are lost (and counted).",
		Labels: []string{LabelTable},
	}
	ChsinkWALRecords = Metric{
		Name: "carpool_chsink_wal_records", Type: Gauge, Unit: "records", Producer: Services,
		Help:   "Records in the table's write-ahead log not yet replayed into ClickHouse.",
		Labels: []string{LabelTable},
	}
	ChsinkDegraded = Metric{
		Name: "carpool_chsink_degraded", Type: Gauge, Unit: "bool", Producer: Services,
		Help:   "1 while inserts into the table fail and new batches go to the write-ahead log, else 0.",
		Labels: []string{LabelTable},
	}
	ChsinkRetentionDropped = Metric{
		Name: "carpool_chsink_retention_dropped_partitions_total", Type: Counter, Unit: "partitions", Producer: Services,
		Help:   "Day partitions the retention job dropped because they were older than the retention.",
		Labels: []string{LabelDatabase, LabelTable},
	}
	ChsinkRetentionRuns = Metric{
		Name: "carpool_chsink_retention_runs_total", Type: Counter, Unit: "runs", Producer: Services,
		Help:   "Runs of the retention job, by outcome (ok, or error when a partition could not be listed or dropped).",
		Labels: []string{LabelDatabase, LabelOutcome},
	}
	ChsinkRetentionLastSuccess = Metric{
		Name: "carpool_chsink_retention_last_success_timestamp_seconds", Type: Gauge, Unit: "timestamp_seconds", Producer: Services,
		Help:   "Unix time of the retention job's last run that dropped every expired partition.",
		Labels: []string{LabelDatabase},
	}
)

func init() {
	register(ChsinkWritten, ChsinkInserted, ChsinkSpilled, ChsinkLost, ChsinkInsertFailures, ChsinkInsertDuration,
		ChsinkQueue, ChsinkWALBytes, ChsinkWALLimitBytes, ChsinkWALRecords, ChsinkDegraded,
		ChsinkRetentionDropped, ChsinkRetentionRuns, ChsinkRetentionLastSuccess)
}
