package streamlag

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	vmetrics "github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/carpoolsla/carpoolsla/exporters"
	"github.com/carpoolsla/carpoolsla/internal/realserver"
)

// benchGroups is the size of the rendering benchmark: 1,000 consumer
// groups, 2,000 series.
const benchGroups = 1000

func benchLags() []Lag {
	lags := make([]Lag, benchGroups)
	for i := range lags {
		lags[i] = Lag{Region: "sh-a", Stream: fmt.Sprintf("positions:%d", i/4), Group: fmt.Sprintf("g%d", i%4), Messages: int64(i), Oldest: base}
	}
	return lags
}

// BenchmarkRender compares the two ways of exposing the lags read at
// scrape time: client_golang const metrics through the shared frame, and a
// VictoriaMetrics/metrics Set whose gauges are updated (names built once,
// cached) and written.
func BenchmarkRender(b *testing.B) {
	lags := benchLags()
	now := base.Add(time.Minute)
	b.Run("client_golang", func(b *testing.B) {
		sc, _ := New(Config{Readers: []Reader{fakeReader{lags: lags}}, Now: func() time.Time { return now }})
		reg := registryB(sc)
		h := exporters.Handler(reg)
		req := httptest.NewRequest("GET", "/metrics", nil)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			_, _ = io.Copy(io.Discard, w.Body)
		}
	})
	b.Run("vmetrics", func(b *testing.B) {
		set := vmetrics.NewSet()
		names := map[[3]string][2]string{}
		b.ReportAllocs()
		for b.Loop() {
			for _, l := range lags {
				key := [3]string{l.Region, l.Stream, l.Group}
				n, ok := names[key]
				if !ok {
					lbl := fmt.Sprintf(`{group=%q,region=%q,stream=%q}`, l.Group, l.Region, l.Stream)
					n = [2]string{"carpool_stream_lag_messages" + lbl, "carpool_stream_lag_seconds" + lbl}
					names[key] = n
				}
				set.GetOrCreateGauge(n[0], nil).Set(float64(l.Messages))
				set.GetOrCreateGauge(n[1], nil).Set(l.Seconds(now))
			}
			set.WritePrometheus(io.Discard)
		}
	})
}

// BenchmarkRedisScrape measures a scrape of 100 streams with 3 groups
// each (one up to date, one 50 behind, one with a nil lag: counted) on a
// real redis-server.
func BenchmarkRedisScrape(b *testing.B) {
	srv := realserver.StartRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()
	var streams []string
	for i := range 100 {
		k := fmt.Sprintf("positions:%03d", i)
		streams = append(streams, k)
		pipe := rdb.Pipeline()
		pipe.XGroupCreateMkStream(ctx, k, "current", "$")
		pipe.XGroupCreateMkStream(ctx, k, "behind", "0")
		for j := range 100 {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: k, ID: fmt.Sprintf("%d-0", base.UnixMilli()+int64(j)), Values: []any{"n", j}})
		}
		pipe.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "current", Consumer: "c", Streams: []string{k, ">"}, Count: 100, Block: -1})
		pipe.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "behind", Consumer: "c", Streams: []string{k, ">"}, Count: 50, Block: -1})
		pipe.XGroupCreate(ctx, k, "nil", fmt.Sprintf("%d-0", base.UnixMilli()+10))
		pipe.XDel(ctx, k, fmt.Sprintf("%d-0", base.UnixMilli()+99))
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	r, err := NewRedisReader(RedisConfig{Client: rdb, Region: "sh-a", Streams: []string{"positions:*"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		lags, err := r.Read(ctx, base)
		if err != nil || len(lags) != 300 {
			b.Fatalf("%d lags, %v", len(lags), err)
		}
	}
}
