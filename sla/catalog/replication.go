package catalog

// Replication and hybrid-logical-clock metrics, produced by services/hlc and
// services/replication.
var (
	HLCRemoteRejected = Metric{
		Name: "carpool_hlc_remote_rejected_total", Type: Counter, Unit: "events", Producer: Services,
		Help:   "Remote hybrid-logical-clock timestamps a region refused because they were further ahead of its physical clock than the maximum offset.",
		Labels: []string{LabelRegion},
	}
	ReplicationLastApplied = Metric{
		Name: "carpool_replication_last_applied_timestamp_seconds", Type: Gauge, Unit: "timestamp_seconds", Producer: Services,
		Help:   "Hybrid-logical-clock wall time, as Unix seconds, of the newest source event applied in the target region.",
		Labels: []string{LabelSourceRegion, LabelTargetRegion},
	}
)

func init() { register(HLCRemoteRejected, ReplicationLastApplied) }
