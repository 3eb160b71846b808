package location

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

func dialRaw(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dialling %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func writeText(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("writing %s: %v", msg, err)
	}
}

// readNext reads the next message or the close.
func readNext(t *testing.T, c *websocket.Conn) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	return data, err
}

func positionJSON(driver string, lat, lng float64, ts time.Time) string {
	return fmt.Sprintf(`{"driver_id":%q,"lat":%g,"lng":%g,"ts":%q}`, driver, lat, lng, ts.UTC().Format(time.RFC3339Nano))
}

func TestDriversStreamPositionsIntoTheIndex(t *testing.T) {
	ts := startService(t, Config{})
	ctx := context.Background()
	const drivers, each = 5, 3
	base := time.Now()
	var clients []*Client
	for d := range drivers {
		url := ts.wsURL
		if d%2 == 0 { // half name their driver in the query, half in the first message
			url += fmt.Sprintf("?driver_id=d%d", d)
		}
		c, err := DialStreamConfig(ctx, ClientConfig{URL: url, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		for i := range each {
			if err := c.Send(Position{DriverID: fmt.Sprintf("d%d", d), Lat: 52.5 + float64(d)*0.001, Lng: 13.4 + float64(i)*0.0001,
				TS: base.Add(time.Duration(i) * time.Millisecond)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 10*time.Second, "every driver's last position in the index", func() bool {
		for d := range drivers {
			p, ok := ts.Index().Get(fmt.Sprintf("d%d", d))
			if !ok || p.Lng != 13.4+float64(each-1)*0.0001 {
				return false
			}
		}
		return true
	})
	got, err := ts.Index().Nearby(ctx, LatLng{52.5, 13.4}, 10)
	if err != nil || len(got) != drivers {
		t.Fatalf("nearby: %v %v", ids(got), err)
	}
	region := map[string]string{"region": "eu"}
	for name, want := range map[string]float64{
		catalog.LocationPositionsReceived.Name:  drivers * each,
		catalog.LocationPositionsPublished.Name: drivers * each,
		catalog.LocationPositionsConsumed.Name:  drivers * each,
		catalog.LocationConnectionsOpen.Name:    drivers,
		catalog.LocationIndexDrivers.Name:       drivers,
	} {
		if v := ts.value(t, name, region); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if n, _, err := ts.Stream().Lag(ctx, ts.Group()); err != nil || n != 0 {
		t.Errorf("lag %d %v", n, err)
	}
	for _, c := range clients {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "connections to close", func() bool {
		return ts.value(t, catalog.LocationConnectionsOpen.Name, region) == 0 &&
			ts.value(t, catalog.LocationConnectionsClosed.Name, map[string]string{"reason": catalog.LocationCloseNormal}) == drivers
	})
}

func TestBadMessagesAreAnsweredAndDropped(t *testing.T) {
	ts := startService(t, Config{})
	now := time.Now()
	tests := map[string]struct {
		query, msg string
		binary     bool
		field      string
	}{
		"Malformed JSON is answered without a field.":       {msg: `{"lat":`, field: ""},
		"A missing lat names lat.":                          {msg: `{"driver_id":"d1","lng":1,"ts":"` + now.Format(time.RFC3339Nano) + `"}`, field: "lat"},
		"A lng out of range names lng.":                     {msg: positionJSON("d1", 1, 200, now), field: "lng"},
		"A ts in the future names ts.":                      {msg: positionJSON("d1", 1, 1, now.Add(time.Hour)), field: "ts"},
		"An unknown field is named.":                        {msg: `{"driver_id":"d1","lat":1,"lng":1,"ts":"` + now.Format(time.RFC3339Nano) + `","heading":90}`, field: "heading"},
		"Another driver on a driver's connection names it.": {query: "?driver_id=d1", msg: positionJSON("d2", 1, 1, now), field: "driver_id"},
		"A first message without a driver names driver_id.": {msg: `{"lat":1,"lng":1,"ts":"` + now.Format(time.RFC3339Nano) + `"}`, field: "driver_id"},
		"A binary frame is answered without a field.":       {msg: positionJSON("d1", 1, 1, now), binary: true, field: ""},
		"A broken traceparent names traceparent.":           {msg: `{"driver_id":"d1","lat":1,"lng":1,"ts":"` + now.Format(time.RFC3339Nano) + `","traceparent":"01-x"}`, field: "traceparent"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, ts.wsURL+tc.query)
			typ := websocket.MessageText
			if tc.binary {
				typ = websocket.MessageBinary
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Write(ctx, typ, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			data, err := readNext(t, c)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			var fe struct {
				Error *string `json:"error"`
				Field *string `json:"field"`
			}
			if err := json.Unmarshal(data, &fe); err != nil || fe.Error == nil || fe.Field == nil {
				t.Fatalf("reply %s is not {\"error\",\"field\"}", data)
			}
			if *fe.Field != tc.field || *fe.Error == "" {
				t.Fatalf("reply %s, want field %q", data, tc.field)
			}
			// The connection stays usable: a good message is accepted.
			writeText(t, c, positionJSON("d1", 1, 1, time.Now()))
		})
	}
	waitFor(t, 5*time.Second, "the good messages to reach the index", func() bool {
		_, ok := ts.Index().Get("d1")
		return ok
	})
	if v := ts.value(t, catalog.LocationPositionsRejected.Name, map[string]string{"reason": catalog.LocationRejectInvalid}); v != float64(len(tests)) {
		t.Fatalf("rejected{invalid} = %v, want %d", v, len(tests))
	}
	// The location SLO's SLI: bad input is the driver's fault (400, not an
	// error); every good message is a 200.
	op := map[string]string{"service": ServiceName, "operation": OpStreamPosition}
	with := func(code, outcome string) map[string]string {
		return map[string]string{"service": op["service"], "operation": op["operation"], "code": code, "outcome": outcome}
	}
	if v := ts.value(t, catalog.RequestDuration.Name, with("400", catalog.OutcomeOK)); v != float64(len(tests)) {
		t.Errorf("stream_position 400s = %v, want %d", v, len(tests))
	}
	waitFor(t, 5*time.Second, "a 200 for every good message", func() bool {
		return ts.value(t, catalog.RequestDuration.Name, with("200", catalog.OutcomeOK)) == float64(len(tests))
	})
}

func TestRepeatedBadInputClosesWithPolicyViolation(t *testing.T) {
	ts := startService(t, Config{Server: ServerConfig{MaxConsecutiveBad: 3}})
	c := dialRaw(t, ts.wsURL+"?driver_id=d1")
	// A good message in between resets the count.
	for _, msg := range []string{"bad", "bad", positionJSON("d1", 1, 1, time.Now()), "bad", "bad", "bad"} {
		writeText(t, c, msg)
	}
	replies := 0
	for {
		_, err := readNext(t, c)
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
				t.Fatalf("closed with %v (%v), want 1008", code, err)
			}
			break
		}
		replies++
	}
	if replies != 4 {
		t.Fatalf("%d error replies before the close, want 4", replies)
	}
	waitFor(t, 5*time.Second, "the close to be counted", func() bool {
		return ts.value(t, catalog.LocationConnectionsClosed.Name, map[string]string{"reason": catalog.LocationClosePolicyViolation}) == 1
	})
}

func TestOversizeMessageClosesWithMessageTooBig(t *testing.T) {
	ts := startService(t, Config{Server: ServerConfig{MaxMessageBytes: 256}})
	c := dialRaw(t, ts.wsURL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"driver_id":"`+strings.Repeat("x", 300)+`"}`))
	_, err := readNext(t, c)
	if code := websocket.CloseStatus(err); code != websocket.StatusMessageTooBig {
		t.Fatalf("closed with %v (%v), want 1009", code, err)
	}
	waitFor(t, 5*time.Second, "the close to be counted", func() bool {
		return ts.value(t, catalog.LocationConnectionsClosed.Name, map[string]string{"reason": catalog.LocationCloseMessageTooBig}) == 1
	})
}

func TestHTTPErrorsBeforeTheUpgrade(t *testing.T) {
	ts := startService(t, Config{})
	httpURL := ts.srv.URL + Route
	tests := map[string]struct {
		method, url string
		header      map[string]string
		code        int
		field       string
	}{
		"A POST is refused with 405.":                         {method: http.MethodPost, url: httpURL, code: 405, field: ""},
		"A plain GET is told to upgrade.":                     {method: http.MethodGet, url: httpURL, code: 426, field: "Connection"},
		"An upgrade to another protocol names Upgrade.":       {method: http.MethodGet, url: httpURL, header: map[string]string{"Connection": "Upgrade", "Upgrade": "h2c"}, code: 426, field: "Upgrade"},
		"A malformed driver_id in the query names driver_id.": {method: http.MethodGet, url: httpURL + "?driver_id=a%20b", code: 400, field: "driver_id"},
		"An overlong driver_id in the query names driver_id.": {method: http.MethodGet, url: httpURL + "?driver_id=" + strings.Repeat("a", 65), code: 400, field: "driver_id"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader("{}"))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error string  `json:"error"`
				Field *string `json:"field"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tc.code || body.Error == "" || body.Field == nil || *body.Field != tc.field {
				t.Fatalf("got %d %+v, want %d naming %q", resp.StatusCode, body, tc.code, tc.field)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
		})
	}
}

// smallBuffers shrinks the send buffer of every accepted connection so that
// a client that does not read fills it quickly.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func TestSlowConsumerIsClosedWithoutBlockingOthers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServiceOn(t, Config{Server: ServerConfig{MaxConsecutiveBad: 1 << 30, ReplyBuffer: 4, CloseTimeout: 200 * time.Millisecond}}, smallBuffers{ln})

	// The slow driver sends bad messages (each earns a reply) and never reads.
	dialer := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	slow, _, err := websocket.Dial(ctx, ts.wsURL+"?driver_id=slow", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()

	// A well-behaved driver streams at the same time.
	good, err := DialStream(ctx, ts.wsURL+"?driver_id=good")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()

	slowClosed := func() bool {
		return ts.value(t, catalog.LocationConnectionsClosed.Name, map[string]string{"reason": catalog.LocationCloseSlowConsumer}) == 1
	}
	bad := []byte(`{"driver_id":"slow","lat":1000,"lng":0,"ts":"2026-01-01T00:00:00Z","pad":"` + strings.Repeat("x", 200) + `"}`)
	sent := 0
	for ; sent < 200000 && ctx.Err() == nil; sent++ {
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		err := slow.Write(wctx, websocket.MessageText, bad)
		wcancel()
		if err != nil {
			break // the server dropped us
		}
		if sent%100 == 0 {
			_ = good.Send(Position{DriverID: "good", Lat: 1, Lng: 1, TS: time.Now()})
			if slowClosed() {
				break
			}
		}
	}
	waitFor(t, 10*time.Second, "the slow consumer to be closed", slowClosed)
	t.Logf("the slow driver was closed after %d unread replies", sent)
	_ = good.Send(Position{DriverID: "good", Lat: 1, Lng: 1.5, TS: time.Now()})
	waitFor(t, 5*time.Second, "the good driver's positions", func() bool {
		p, ok := ts.Index().Get("good")
		return ok && p.Lng == 1.5
	})
	if !good.Connected() {
		t.Fatal("the good driver lost its connection")
	}
}

func TestRegionDownRefusesAndDropsConnections(t *testing.T) {
	in := &faults.Injector{}
	ts := startService(t, Config{Faults: in})
	c := dialRaw(t, ts.wsURL+"?driver_id=d1")
	writeText(t, c, positionJSON("d1", 1, 1, time.Now()))
	waitFor(t, 5*time.Second, "the first position", func() bool { _, ok := ts.Index().Get("d1"); return ok })

	_ = in.Update(func(s *faults.State) { s.Down = true })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, ts.wsURL, nil); err == nil {
		t.Fatal("a down region accepted a connection")
	}
	writeText(t, c, positionJSON("d1", 2, 2, time.Now()))
	_, err := readNext(t, c)
	if err == nil || websocket.CloseStatus(err) != -1 {
		t.Fatalf("the open connection ended with %v, want a dropped connection without a close frame", err)
	}
	if p, _ := ts.Index().Get("d1"); p.Lat != 1 {
		t.Fatal("a position sent to a down region reached the index")
	}
	waitFor(t, 5*time.Second, "the drop to be counted", func() bool {
		return ts.value(t, catalog.LocationConnectionsClosed.Name, map[string]string{"reason": catalog.LocationCloseRegionDown}) == 1
	})

	in.Clear()
	c2 := dialRaw(t, ts.wsURL)
	writeText(t, c2, positionJSON("d1", 3, 3, time.Now()))
	waitFor(t, 5*time.Second, "positions after recovery", func() bool { p, _ := ts.Index().Get("d1"); return p.Lat == 3 })
}

func TestShutdownClosesConnectionsWithGoingAway(t *testing.T) {
	ts := startService(t, Config{})
	c := dialRaw(t, ts.wsURL)
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, err := c.Read(ctx)
		res <- err
	}()
	waitFor(t, 5*time.Second, "the connection to register", func() bool {
		return ts.value(t, catalog.LocationConnectionsOpen.Name, nil) == 1
	})
	ts.stop()
	if code := websocket.CloseStatus(<-res); code != websocket.StatusGoingAway {
		t.Fatalf("closed with %v, want 1001", code)
	}
	if v := ts.value(t, catalog.LocationConnectionsClosed.Name, map[string]string{"reason": catalog.LocationCloseGoingAway}); v != 1 {
		t.Fatalf("closed{going_away} = %v", v)
	}
}

func TestTraceContextFlowsFromMessageToConsumer(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	ts := startService(t, Config{TracerProvider: tp})

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	c := dialRaw(t, ts.wsURL)
	writeText(t, c, fmt.Sprintf(`{"driver_id":"d1","lat":1,"lng":1,"ts":%q,"traceparent":"00-%s-%s-01"}`,
		time.Now().UTC().Format(time.RFC3339Nano), traceID, parentID))
	var receive, consume sdktrace.ReadOnlySpan
	waitFor(t, 5*time.Second, "the receive and consume spans", func() bool {
		for _, s := range rec.Ended() {
			switch s.Name() {
			case "location.receive":
				receive = s
			case "location.consume":
				consume = s
			}
		}
		return receive != nil && consume != nil
	})
	if got := receive.SpanContext().TraceID().String(); got != traceID {
		t.Fatalf("receive span trace %s, want the driver's %s", got, traceID)
	}
	if got := receive.Parent().SpanID().String(); got != parentID {
		t.Fatalf("receive span parent %s, want %s", got, parentID)
	}
	if consume.SpanContext().TraceID() != receive.SpanContext().TraceID() || consume.Parent().SpanID() != receive.SpanContext().SpanID() {
		t.Fatalf("consume span %v/%v is not a child of the receive span %v", consume.SpanContext().TraceID(), consume.Parent().SpanID(), receive.SpanContext().SpanID())
	}
	if consume.SpanKind() != trace.SpanKindConsumer || receive.SpanKind() != trace.SpanKindProducer {
		t.Fatalf("span kinds %v %v", receive.SpanKind(), consume.SpanKind())
	}
}

func TestServerConfigValidation(t *testing.T) {
	for name, cfg := range map[string]ServerConfig{
		"A server needs a region.":                         {},
		"An unknown queue policy is refused.":              {Region: "eu", QueuePolicy: "block"},
		"A tiny message limit is refused.":                 {Region: "eu", MaxMessageBytes: 10},
		"A max age within the clock allowance is refused.": {Region: "eu", MaxPositionAge: time.Second, MaxClockAhead: 2 * time.Second},
	} {
		if _, err := NewServer(cfg, nil); err == nil {
			t.Errorf("%s It was accepted.", name)
		}
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("a service without a region: %v", err)
	}
}

func TestIdleConnectionsCloseAndPingsKeepThemOpen(t *testing.T) {
	ts := startService(t, Config{Server: ServerConfig{IdleTimeout: 100 * time.Millisecond}})
	quiet := dialRaw(t, ts.wsURL)
	_, err := readNext(t, quiet)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "idle timeout" {
		t.Fatalf("a quiet connection ended with %v, want 1001 idle timeout", err)
	}
	waitFor(t, 5*time.Second, "the idle close to be counted", func() bool {
		return ts.value(t, catalog.LocationConnectionsClosed.Name, map[string]string{"reason": catalog.LocationCloseIdle}) == 1
	})

	c, err := DialStreamConfig(context.Background(), ClientConfig{URL: ts.wsURL, PingInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 10*time.Second, "ten pings, twice the idle timeout", func() bool { return c.Stats().Pings >= 10 })
	if st := c.Stats(); !c.Connected() || st.Connects != 1 {
		t.Fatalf("a pinging client was disconnected: %+v", st)
	}
}
