package catalog

// Probe exporter metrics (exporters/probe) next to ProbeHealthy and
// ProbeDuration: the failures behind a verdict, countable over a window.
var (
	ProbeFailures = Metric{
		Name: "carpool_probe_failures_total", Type: Counter, Unit: "probes", Producer: Exporters,
		Help:   "Probes of a target by the region's prober that failed (an error, a timeout or a status outside 2xx and 3xx).",
		Labels: []string{LabelRegion, LabelTarget},
	}
)

func init() { register(ProbeFailures) }
