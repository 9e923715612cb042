package telemetry

import (
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
)

// NewLogger returns the gateway's logger writing to w: JSON lines unless
// cfg.Format is "text", at cfg.Level (debug, info, warn or error; anything
// else is info, since config validation already rejects it). Every record
// passes NewRedactingHandler, and the written bytes are scrubbed of JWTs
// and bearer credentials once more. Durations are written as milliseconds
// (DurationAttr) in both formats.
func NewLogger(cfg config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: parseLevel(cfg.Level), ReplaceAttr: DurationAttr}
	out := scrubWriter{w: w}
	var h slog.Handler
	if strings.EqualFold(strings.TrimSpace(cfg.Format), "text") {
		h = slog.NewTextHandler(out, opts)
	} else {
		h = slog.NewJSONHandler(out, opts)
	}
	return slog.New(NewRedactingHandler(h))
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// DurationAttr is a slog ReplaceAttr that writes every time.Duration as a
// number of milliseconds (to the microsecond) under its key plus "_ms":
// "grace"=15s becomes "grace_ms": 15000 and a 109 µs evaluation
// "eval_ms": 0.109. slog's own rendering differs by handler (JSON:
// integer nanoseconds, text: "15s"), so the same line would read
// differently in each format and neither says its unit in a way a log
// query can rely on.
func DurationAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindDuration {
		return a
	}
	key := a.Key
	if !strings.HasSuffix(key, "_ms") {
		key += "_ms"
	}
	return slog.Float64(key, milliseconds(a.Value.Duration()))
}

// milliseconds is d in milliseconds, rounded to the microsecond.
func milliseconds(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
}
