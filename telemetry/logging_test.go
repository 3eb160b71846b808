package telemetry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// memorySink is a LogSink that keeps the records.
type memorySink struct {
	mu   sync.Mutex
	recs []Record
}

func (s *memorySink) Write(rec Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, rec)
	return nil
}

func (s *memorySink) records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.recs...)
}

func decodeLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("log line %q is not JSON: %v", line, err)
	}
	return m
}

func TestLogLineInsideASpanCarriesItsIDs(t *testing.T) {
	tp, _, _ := newTestProvider(t, "order", "eu", 1)
	var buf bytes.Buffer
	log, err := NewLogger(LogConfig{Service: "order", Region: "eu", Sink: NewWriterSink(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tp.Tracer("t").Start(context.Background(), "create ride")
	log.InfoContext(ctx, "ride created", "ride_id", "r1")
	span.End()
	log.InfoContext(context.Background(), "outside")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	in, out := decodeLine(t, lines[0]), decodeLine(t, lines[1])
	want := map[string]any{
		"level": "INFO", "msg": "ride created", "service": "order", "region": "eu", "ride_id": "r1",
		"trace_id": span.SpanContext().TraceID().String(), "span_id": span.SpanContext().SpanID().String(),
	}
	for k, v := range want {
		if in[k] != v {
			t.Errorf("inside the span %s = %v, want %v (line %s)", k, in[k], v, lines[0])
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, in["time"].(string)); err != nil {
		t.Errorf("time %v: %v", in["time"], err)
	}
	if _, ok := out["trace_id"]; ok {
		t.Errorf("a line outside any span carries a trace id: %s", lines[1])
	}
	if out["service"] != "order" || out["region"] != "eu" {
		t.Errorf("a line outside any span lost its fixed attributes: %s", lines[1])
	}
}

func TestRecordColumns(t *testing.T) {
	tp, _, _ := newTestProvider(t, "order", "eu", 1)
	sink := &memorySink{}
	log, err := NewLogger(LogConfig{Service: "order", Region: "eu", Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	log.With("a", 1).WarnContext(ctx, "m", "b", "x")
	recs := sink.records()
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.Level != slog.LevelWarn || r.Message != "m" || r.Service != "order" || r.Region != "eu" ||
		r.TraceID != span.SpanContext().TraceID().String() || r.SpanID != span.SpanContext().SpanID().String() ||
		string(r.Attrs) != `{"a":1,"b":"x"}` || r.Time.IsZero() {
		t.Fatalf("record %+v attrs %s", r, r.Attrs)
	}
}

// TestAttributesEncodeLikeSlogJSON compares the attributes NewLogger's handler
// encodes with what slog.JSONHandler writes for the same calls.
func TestAttributesEncodeLikeSlogJSON(t *testing.T) {
	type call func(l *slog.Logger)
	cases := map[string]call{
		"Plain attributes of every kind.": func(l *slog.Logger) {
			l.Info("m", "s", "x", "i", -3, "u", uint64(7), "f", 1.5, "b", true, "d", 1500*time.Millisecond,
				"e", errors.New("boom"), "any", map[string]int{"k": 1}, "nil", nil, "big", 1e21)
		},
		"Logger attributes then call attributes.": func(l *slog.Logger) { l.With("a", 1).Info("m", "b", 2) },
		"A group from WithGroup holds later attributes.": func(l *slog.Logger) {
			l.With("a", 1).WithGroup("g").With("b", 2).Info("m", "c", 3)
		},
		"A group with no attributes vanishes.":         func(l *slog.Logger) { l.WithGroup("g").Info("m") },
		"Nested empty groups vanish.":                  func(l *slog.Logger) { l.With("a", 1).WithGroup("g").WithGroup("h").Info("m") },
		"An empty group attribute vanishes.":           func(l *slog.Logger) { l.Info("m", slog.Group("g"), "a", 1) },
		"A group attribute with an empty key inlines.": func(l *slog.Logger) { l.Info("m", slog.Group("", "a", 1, "b", 2)) },
		"A group attribute nests.":                     func(l *slog.Logger) { l.Info("m", slog.Group("req", "method", "GET", slog.Group("u", "p", "/x"))) },
		"An empty attribute is dropped.":               func(l *slog.Logger) { l.Info("m", slog.Attr{}, "a", 1) },
		"Groups opened by WithGroup with only an empty call.": func(l *slog.Logger) {
			l.WithGroup("g").With(slog.Attr{}).Info("m", slog.Group("h"))
		},
		"Strings that need escaping.": func(l *slog.Logger) {
			l.Info("m", "q", `say "hi"\`, "ctl", "a\nb\tc\x01", "html", "<a&b>", "bad", "x\xffy", "ls", "a\u2028b", "uni", "héllo ✓")
		},
		"A LogValuer is resolved.": func(l *slog.Logger) { l.Info("m", "v", valuer{}) },
		"Keys that need escaping.": func(l *slog.Logger) { l.Info("m", `k"1`, 1) },
	}
	strip := func(m map[string]any) map[string]any {
		for _, k := range []string{"time", "level", "msg", "service", "region"} {
			delete(m, k)
		}
		return m
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var ours, theirs bytes.Buffer
			l, err := NewLogger(LogConfig{Service: "s", Region: "r", Sink: NewWriterSink(&ours)})
			if err != nil {
				t.Fatal(err)
			}
			c(l)
			c(slog.New(slog.NewJSONHandler(&theirs, nil)))
			got, want := strip(decodeLine(t, ours.Bytes())), strip(decodeLine(t, theirs.Bytes()))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ours   %s\ntheirs %s", ours.Bytes(), theirs.Bytes())
			}
		})
	}
}

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.GroupValue(slog.Int("x", 1)) }

func TestLogValuesSlogRefuses(t *testing.T) {
	var buf bytes.Buffer
	l, _ := NewLogger(LogConfig{Service: "s", Region: "r", Sink: NewWriterSink(&buf)})
	ts := time.Date(2026, 11, 25, 10, 0, 0, 123, time.UTC)
	l.Info("m", "nan", math.NaN(), "inf", math.Inf(1), "ch", make(chan int), "t", ts)
	m := decodeLine(t, buf.Bytes())
	if m["nan"] != "NaN" || m["inf"] != "+Inf" || m["t"] != "2026-11-25T10:00:00.000000123Z" {
		t.Fatalf("line %s", buf.Bytes())
	}
	if s, ok := m["ch"].(string); !ok || !strings.HasPrefix(s, "0x") {
		t.Fatalf("an unmarshalable value became %v", m["ch"])
	}
}

func TestLogLevel(t *testing.T) {
	cases := map[string]struct {
		level     string
		wantLines int
		wantErr   bool
	}{
		"The default level drops debug.": {"", 3, false},
		"warn keeps warn and error.":     {"warn", 2, false},
		"Levels ignore case.":            {"ERROR", 1, false},
		"An offset level is understood.": {"info+4", 2, false},
		"debug keeps everything.":        {"debug", 4, false},
		"An unknown level is refused.":   {"verbose", 0, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sink := &memorySink{}
			l, err := NewLogger(LogConfig{Service: "s", Region: "r", Level: tc.level, Sink: sink})
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			l.Debug("d")
			l.Info("i")
			l.Warn("w")
			l.Error("e")
			if got := len(sink.records()); got != tc.wantLines {
				t.Fatalf("%d records, want %d", got, tc.wantLines)
			}
		})
	}
}

func TestLogConfigValidate(t *testing.T) {
	cases := map[string]struct {
		cfg  LogConfig
		want string
	}{
		"A config without a service is refused.": {LogConfig{Region: "r"}, "service is empty"},
		"A config without a region is refused.":  {LogConfig{Service: "s"}, "region is empty"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := NewLogger(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestContextHandlerWrapsAnyHandler(t *testing.T) {
	tp, _, _ := newTestProvider(t, "order", "eu", 1)
	var buf bytes.Buffer
	l := slog.New(NewContextHandler(slog.NewJSONHandler(&buf, nil), "order", "eu"))
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	l.With("k", "v").InfoContext(ctx, "m")
	span.End()
	m := decodeLine(t, buf.Bytes())
	if m["trace_id"] != span.SpanContext().TraceID().String() || m["span_id"] != span.SpanContext().SpanID().String() ||
		m["service"] != "order" || m["region"] != "eu" || m["k"] != "v" {
		t.Fatalf("line %s", buf.Bytes())
	}
	buf.Reset()
	l.Info("outside")
	if m := decodeLine(t, buf.Bytes()); m["trace_id"] != nil {
		t.Fatalf("a line outside any span carries a trace id: %s", buf.Bytes())
	}
}

func TestFileSinkAppendsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "order.log")
	for i := range 2 { // the second open appends
		sink, err := OpenFileSink(path)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := NewLogger(LogConfig{Service: "order", Region: "eu", Sink: sink})
		l.Info("line", "n", i)
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		if err := sink.Write(Record{Message: "after close"}); err == nil {
			t.Fatal("a write after Close succeeded")
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 {
		t.Fatalf("file %q", raw)
	}
	for i, line := range lines {
		if m := decodeLine(t, []byte(line)); m["n"] != float64(i) {
			t.Fatalf("line %d: %s", i, line)
		}
	}
	if _, err := OpenFileSink(filepath.Join(t.TempDir(), "missing", "x.log")); err == nil {
		t.Fatal("opening a file in a missing directory succeeded")
	}
}

// TestConcurrentLoggingKeepsLinesWhole logs from many goroutines through
// derived loggers and checks that every line is whole JSON.
func TestConcurrentLoggingKeepsLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	base, _ := NewLogger(LogConfig{Service: "s", Region: "r", Sink: NewWriterSink(&buf)})
	const workers, per = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := base.With("w", w).WithGroup("g")
			for i := range per {
				l.Info("m", "i", i, "pad", strings.Repeat("x", i))
			}
		}()
	}
	wg.Wait()
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		m := decodeLine(t, sc.Bytes())
		if g, ok := m["g"].(map[string]any); !ok || g["i"] == nil {
			t.Fatalf("line %s", sc.Bytes())
		}
		n++
	}
	if n != workers*per {
		t.Fatalf("%d lines, want %d", n, workers*per)
	}
}

func TestAppendJSONString(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got := string(appendJSONString(nil, in))
		if got != want {
			t.Fatalf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
		if !json.Valid([]byte(got)) {
			t.Fatalf("%s is not valid JSON", got)
		}
	}
	f("plain", `"plain"`)
	f(`q"b\`, `"q\"b\\"`)
	f("a\nb\r\tc\x00\x1f", `"a\nb\r\tc\u0000\u001f"`)
	f("<a&b>", `"<a&b>"`)
	f("x\xffy", `"x\ufffdy"`)
	f("a\u2028b\u2029", `"a\u2028b\u2029"`)
	f("héllo ✓", `"héllo ✓"`)
}
