package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name      string
		cfg       config.Log
		wantJSON  bool
		wantDebug bool
		wantInfo  bool
	}{
		{"defaults: JSON at info", config.Log{}, true, false, true},
		{"json debug", config.Log{Level: "debug", Format: "json"}, true, true, true},
		{"text warn", config.Log{Level: "warn", Format: "text"}, false, false, false},
		{"upper case", config.Log{Level: "DEBUG", Format: "TEXT"}, false, true, true},
		{"unknown level falls back to info", config.Log{Level: "loud"}, true, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := NewLogger(tc.cfg, &buf)
			l.Debug("debug line")
			l.Info("info line", "backend", "employees")
			l.Error("error line")
			out := buf.String()
			if got := strings.Contains(out, "debug line"); got != tc.wantDebug {
				t.Errorf("debug logged = %v, want %v", got, tc.wantDebug)
			}
			if got := strings.Contains(out, "info line"); got != tc.wantInfo {
				t.Errorf("info logged = %v, want %v", got, tc.wantInfo)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			var rec map[string]any
			isJSON := json.Unmarshal([]byte(last), &rec) == nil
			if isJSON != tc.wantJSON {
				t.Fatalf("JSON = %v, want %v: %s", isJSON, tc.wantJSON, last)
			}
			if isJSON && (rec["msg"] != "error line" || rec["level"] != "ERROR") {
				t.Errorf("record = %v", rec)
			}
			if !isJSON && !strings.Contains(last, `msg="error line"`) {
				t.Errorf("text record = %s", last)
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestScrubWriterReportsErrors(t *testing.T) {
	w := scrubWriter{w: failingWriter{}}
	if _, err := w.Write([]byte("token " + testJWT)); err == nil {
		t.Error("scrubbing write swallowed the error")
	}
	if _, err := w.Write([]byte("plain")); err == nil {
		t.Error("plain write swallowed the error")
	}
	var buf bytes.Buffer
	n, err := scrubWriter{w: &buf}.Write([]byte("x " + testJWT + "\n"))
	if err != nil || n != len("x "+testJWT+"\n") {
		t.Errorf("Write = %d, %v; want the input length", n, err)
	}
	if got := buf.String(); got != "x "+Redacted+"\n" {
		t.Errorf("written %q", got)
	}
}

// A duration reads the same in both formats: milliseconds under a key that
// says so, never JSON's bare nanoseconds or text's "15s".
func TestLoggerDurationsInMilliseconds(t *testing.T) {
	tests := []struct {
		format string
		want   []string
	}{
		{"json", []string{`"grace_ms":15000`, `"eval_ms":0.109`, `"timeout_ms":2000`, `"req":{"duration_ms":1.5}`, `"count":3`}},
		{"text", []string{"grace_ms=15000", "eval_ms=0.109", "timeout_ms=2000", "req.duration_ms=1.5", "count=3"}},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			NewLogger(config.Log{Format: tc.format}, &buf).Info("durations",
				"grace", 15*time.Second, slog.Duration("eval", 109*time.Microsecond+400*time.Nanosecond),
				slog.Duration("timeout_ms", 2*time.Second), slog.Group("req", slog.Duration("duration", 1500*time.Microsecond)),
				"count", 3)
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s line lacks %s: %s", tc.format, w, out)
				}
			}
			for _, bad := range []string{"15s", "15000000000", `"grace":`, "grace=", "timeout_ms_ms"} {
				if strings.Contains(out, bad) {
					t.Errorf("%s line shows %s: %s", tc.format, bad, out)
				}
			}
		})
	}
}
