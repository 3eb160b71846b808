package telemetry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/spec"
	"github.com/carpoolsla/carpoolsla/telemetry"
)

// Example wires one service of one region: a tracer provider from the spec's
// tracing section, a logger, the server middleware around the service's mux
// and a traced HTTP client for calls to other services.
func Example() {
	ring := telemetry.NewRingExporter(0) // production: leave Exporter nil and set the spec's otlpEndpoint
	cfg := telemetry.TracingConfigFromSpec(spec.Tracing{SampleRatio: 1}, "order", "eu")
	cfg.Exporter = ring
	tp, shutdown, err := telemetry.NewTracerProvider(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	log, err := telemetry.NewLogger(telemetry.LogConfig{Service: "order", Region: "eu", Level: "info",
		Sink: telemetry.NewWriterSink(os.Stderr)})
	if err != nil {
		fmt.Println(err)
		return
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/rides/{id}", func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "ride read", "ride_id", r.PathValue("id")) // carries trace_id and span_id
		w.WriteHeader(http.StatusOK)
	})
	srv := httptest.NewServer(telemetry.ServerMiddleware(tp, "", mux))
	defer srv.Close()

	client := &http.Client{Transport: telemetry.NewTransport(nil, tp), Timeout: 5 * time.Second}
	resp, err := client.Get(srv.URL + "/v1/rides/42")
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil { // flushes the queued spans
		fmt.Println(err)
		return
	}
	for _, s := range ring.Spans() {
		fmt.Println(s.SpanKind(), s.Name())
	}
	// Output:
	// server GET /v1/rides/{id}
	// client GET
}
