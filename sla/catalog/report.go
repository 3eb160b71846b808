package catalog

// LabelRoute names an HTTP route of the SLA report API (its OpenAPI path,
// such as /api/v1/sla), never the raw URL, so the label stays bounded.
const LabelRoute = "route"

// ReportRequestBuckets are the boundaries of ReportRequestDuration: a status
// page read answers in milliseconds, a year-long report from ClickHouse in
// seconds.
var ReportRequestBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// SLA report API and status page metrics (sla/report).
var (
	ReportRequests = Metric{
		Name: "carpool_report_requests_total", Type: Counter, Unit: "requests", Producer: Engine,
		Help:   "Requests the SLA report API answered, by route and HTTP status code.",
		Labels: []string{LabelRoute, LabelCode},
	}
	ReportRequestDuration = Metric{
		Name: "carpool_report_request_duration_seconds", Type: Histogram, Unit: "seconds", Producer: Engine,
		Help:    "Time the SLA report API took to answer, by route (ClickHouse queries included).",
		Labels:  []string{LabelRoute},
		Buckets: ReportRequestBuckets,
	}
)

func init() {
	register(ReportRequests, ReportRequestDuration)
}
