package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/telemetry"
)

func runServe(ctx context.Context, args []string, _ io.Writer, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (YAML); default $CONFIG_PATH")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	srv, cfg, log, ok := startServe(ctx, *path, os.Environ(), stderr)
	if !ok {
		return 1
	}
	return serveUntilDone(ctx, srv, cfg.Server.ShutdownTimeout, log)
}

// startServe is `mcpgw serve` up to a running gateway: the config file and
// environ loaded and validated, the logger it asks for on stderr, the
// gateway started. A failure is reported on stderr and ok is false. Tests
// start the shipped example configuration through it.
func startServe(ctx context.Context, path string, environ []string, stderr io.Writer) (srv *gateway.Server, cfg *config.Config, log *slog.Logger, ok bool) {
	cfg, err := config.Load(path, environ)
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw: config: %v\n", err)
		return nil, nil, nil, false
	}
	log = telemetry.NewLogger(cfg.Log, stderr)
	if srv, err = gateway.Start(ctx, cfg, gateway.StartOptions{Logger: log, Version: version()}); err != nil {
		log.Error("start failed", "err", err)
		return nil, nil, nil, false
	}
	return srv, cfg, log, true
}

// serveUntilDone waits for a signal or a serve error, then shuts down.
func serveUntilDone(ctx context.Context, srv *gateway.Server, grace time.Duration, log *slog.Logger) int {
	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", grace)
	case err := <-srv.Done():
		if err != nil {
			log.Error("server stopped", "err", err)
			code = 1
		}
	}
	if grace <= 0 {
		grace = 15 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Close(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	return code
}
