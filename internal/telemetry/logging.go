package telemetry

import (
	"io"
	"log/slog"
	"strings"

	"github.com/mcpgw/mcpgw/internal/config"
)

// NewLogger returns the gateway's logger writing to w: JSON lines unless
// cfg.Format is "text", at cfg.Level (debug, info, warn or error; anything
// else is info, since config validation already rejects it). Every record
// passes NewRedactingHandler, and the written bytes are scrubbed of JWTs
// and bearer credentials once more.
func NewLogger(cfg config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: parseLevel(cfg.Level)}
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
