package catalog

// LabelHash carries a configuration's normalized hash (the first 16 hex
// digits of its SHA-256) on carpool_config_hash_info.
const LabelHash = "hash"

// Config drift metrics, produced by exporters/configdrift next to
// ConfigConsistent: each region's normalized configuration hash, which
// regions differ from the majority, and whether a region's configuration
// could be fetched at all.
var (
	ConfigHashInfo = Metric{
		Name: "carpool_config_hash_info", Type: Gauge, Unit: "info", Producer: Exporters,
		Help:   "Always 1; the hash label is the first 16 hex digits of the SHA-256 of the region's normalized configuration from this source.",
		Labels: []string{LabelSource, LabelRegion, LabelHash},
	}
	ConfigDrifted = Metric{
		Name: "carpool_config_drifted", Type: Gauge, Unit: "bool", Producer: Exporters,
		Help:   "1 when the region's normalized configuration differs from the majority's (or the reference region's), else 0; absent when it could not be fetched.",
		Labels: []string{LabelSource, LabelRegion},
	}
	ConfigFetchSuccess = Metric{
		Name: "carpool_config_fetch_success", Type: Gauge, Unit: "bool", Producer: Exporters,
		Help:   "1 when the last scrape fetched and parsed the region's configuration from this source, else 0.",
		Labels: []string{LabelSource, LabelRegion},
	}
	ConfigFetchErrors = Metric{
		Name: "carpool_config_fetch_errors_total", Type: Counter, Unit: "errors", Producer: Exporters,
		Help:   "Scrapes that could not fetch or parse the region's configuration from this source.",
		Labels: []string{LabelSource, LabelRegion},
	}
)

func init() { register(ConfigHashInfo, ConfigDrifted, ConfigFetchSuccess, ConfigFetchErrors) }
