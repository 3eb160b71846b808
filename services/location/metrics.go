package location

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Metrics are the location service's catalog metrics for one region,
// stream and consumer group, with their label children cached for the hot
// paths. Build one per component registry with NewMetrics; a nil *Metrics
// is not valid, use NewMetrics(nil, ...) for metrics nobody scrapes.
type Metrics struct {
	received    prometheus.Counter
	rejected    map[string]prometheus.Counter // by reason
	published   prometheus.Counter
	consumed    prometheus.Counter
	redelivered prometheus.Counter
	connsOpen   prometheus.Gauge
	closed      map[string]prometheus.Counter // by reason

	queueDepth   *funcGauge
	indexDrivers *funcGauge

	// position* time each received position (operation stream_position of
	// carpool_request_duration_seconds, the location SLO's SLI): accepted
	// (200), refused as the driver's fault (400, outcome ok) or dropped
	// because the publish queue was full (503, outcome error).
	positionOK, positionBad, positionFull prometheus.Observer
}

// OpStreamPosition is the operation label of a driver's position message.
const OpStreamPosition = "stream_position"

// NewMetrics builds the location metrics and registers them with reg (a
// private registry when reg is nil).
func NewMetrics(reg prometheus.Registerer, region, stream, group string) (*Metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	received := telemetry.NewCounterVec(catalog.LocationPositionsReceived)
	rejected := telemetry.NewCounterVec(catalog.LocationPositionsRejected)
	published := telemetry.NewCounterVec(catalog.LocationPositionsPublished)
	consumed := telemetry.NewCounterVec(catalog.LocationPositionsConsumed)
	redelivered := telemetry.NewCounterVec(catalog.LocationPositionsRedelivered)
	open := telemetry.NewGaugeVec(catalog.LocationConnectionsOpen)
	closed := telemetry.NewCounterVec(catalog.LocationConnectionsClosed)
	queue := &funcGauge{vec: telemetry.NewGaugeVec(catalog.LocationPublishQueue), labels: []string{region}}
	drivers := &funcGauge{vec: telemetry.NewGaugeVec(catalog.LocationIndexDrivers), labels: []string{region}}
	reqDur := telemetry.NewHistogramVec(catalog.RequestDuration)
	for _, c := range []prometheus.Collector{reqDur, received, rejected, published, consumed, redelivered, open, closed, queue, drivers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the location metrics: %w", err)
		}
	}
	m := &Metrics{
		received:     received.WithLabelValues(region),
		rejected:     map[string]prometheus.Counter{},
		published:    published.WithLabelValues(region, stream),
		consumed:     consumed.WithLabelValues(region, stream, group),
		redelivered:  redelivered.WithLabelValues(region, stream, group),
		connsOpen:    open.WithLabelValues(region),
		closed:       map[string]prometheus.Counter{},
		queueDepth:   queue,
		indexDrivers: drivers,
		positionOK:   reqDur.WithLabelValues(region, ServiceName, OpStreamPosition, "200", catalog.OutcomeOK),
		positionBad:  reqDur.WithLabelValues(region, ServiceName, OpStreamPosition, "400", catalog.OutcomeOK),
		positionFull: reqDur.WithLabelValues(region, ServiceName, OpStreamPosition, "503", catalog.OutcomeError),
	}
	for _, r := range []string{catalog.LocationRejectInvalid, catalog.LocationRejectStale, catalog.LocationRejectQueueFull, catalog.LocationRejectPublishError} {
		m.rejected[r] = rejected.WithLabelValues(region, r)
	}
	for _, r := range []string{catalog.LocationCloseNormal, catalog.LocationClosePolicyViolation, catalog.LocationCloseMessageTooBig,
		catalog.LocationCloseSlowConsumer, catalog.LocationCloseGoingAway, catalog.LocationCloseRegionDown, catalog.LocationCloseIdle, catalog.LocationCloseError} {
		m.closed[r] = closed.WithLabelValues(region, r)
	}
	return m, nil
}

// funcGauge is a catalog gauge whose one series is read from a function at
// scrape time (the publish queue's depth, the index's size). It reads 0
// until a function is set.
type funcGauge struct {
	vec    *prometheus.GaugeVec
	labels []string
	fn     atomic.Pointer[func() float64]
}

func (g *funcGauge) set(fn func() float64) { g.fn.Store(&fn) }

// Describe implements prometheus.Collector.
func (g *funcGauge) Describe(ch chan<- *prometheus.Desc) { g.vec.Describe(ch) }

// Collect implements prometheus.Collector.
func (g *funcGauge) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if fn := g.fn.Load(); fn != nil {
		v = (*fn)()
	}
	g.vec.WithLabelValues(g.labels...).Set(v)
	g.vec.Collect(ch)
}
