package order

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

type contextT = context.Context

// toFloat64 reads a counter or gauge (client_golang's testutil needs a
// module this repository does not pin).
func toFloat64(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	panic("not a counter or gauge")
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }
