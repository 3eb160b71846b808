package realserver

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStartVictoriaMetrics(t *testing.T) {
	t.Parallel()
	var v *VictoriaMetrics
	t.Run("server", func(t *testing.T) {
		v = StartVictoriaMetrics(t)
		resp, err := http.Post(v.URL+"/api/v1/import/prometheus", "text/plain",
			strings.NewReader("carpool_sync_lag_seconds{from=\"eu\",to=\"us\"} 1.5\n"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("import: %s", resp.Status)
		}
		v.Flush(t)
		WaitFor(t, 10*time.Second, "the imported sample in queries", func() (bool, error) {
			got := v.Query(t, "carpool_sync_lag_seconds")
			return len(got) == 1 && got[0].Value == 1.5 && got[0].Metric["from"] == "eu", nil
		})
	})
	assertStopped(t, v.proc, v.URL+"/health")
}
