package catalog

// Sync-lag exporter metrics beyond the core ones (SyncLag,
// SyncHeartbeatWritten, SyncHeartbeatApplied), produced by
// exporters/synclag.
var (
	SyncHeartbeatWriteErrors = Metric{
		Name: "carpool_sync_heartbeat_write_errors_total", Type: Counter, Unit: "errors", Producer: Exporters,
		Help:   "Heartbeat writes of the sync-lag writer that failed (the source database was unreachable or refused the upsert).",
		Labels: []string{LabelRegion},
	}
)

func init() { register(SyncHeartbeatWriteErrors) }
