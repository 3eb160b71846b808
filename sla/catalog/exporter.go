package catalog

// Every exporter's own health, as Prometheus's exporters expose theirs.
var (
	ExporterUp = Metric{
		Name: "carpool_exporter_up", Type: Gauge, Unit: "bool", Producer: Exporters,
		Help:   "1 when the exporter's last scrape of its backend succeeded, else 0.",
		Labels: []string{LabelExporter},
	}
	ExporterScrapeErrors = Metric{
		Name: "carpool_exporter_scrape_errors_total", Type: Counter, Unit: "errors", Producer: Exporters,
		Help:   "Scrapes of the exporter's backend that failed (the backend was unreachable or answered wrongly).",
		Labels: []string{LabelExporter},
	}
	ExporterScrapeDuration = Metric{
		Name: "carpool_exporter_scrape_duration_seconds", Type: Gauge, Unit: "seconds", Producer: Exporters,
		Help:   "Duration of the exporter's last scrape of its backend.",
		Labels: []string{LabelExporter},
	}
)

// LabelExporter names the exporter (synclag, rpo, streamlag, ...).
const LabelExporter = "exporter"

func init() { register(ExporterUp, ExporterScrapeErrors, ExporterScrapeDuration) }
