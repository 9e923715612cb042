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
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw: config: %v\n", err)
		return 1
	}
	log := telemetry.NewLogger(cfg.Log, stderr)
	srv, err := gateway.Start(ctx, cfg, gateway.StartOptions{Logger: log, Version: version()})
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	return serveUntilDone(ctx, srv, cfg.Server.ShutdownTimeout, log)
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
