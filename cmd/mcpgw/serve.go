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
	sources := addSourceFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	src, environ, envFile, err := sources.find()
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw: %v\n", err)
		return 1
	}
	srv, cfg, log, ok := startServe(ctx, src, environ, envFile, stderr)
	if !ok {
		return 1
	}
	return serveUntilDone(ctx, srv, cfg.Server.ShutdownTimeout, log)
}

// startServe is `mcpgw serve` up to a running gateway: the configuration
// loaded and validated, the logger it asks for on stderr, the gateway
// started. A failure is reported on stderr and ok is false. Tests start the
// shipped example configuration through it.
func startServe(ctx context.Context, src config.Source, environ []string, envFile config.EnvFile, stderr io.Writer) (srv *gateway.Server, cfg *config.Config, log *slog.Logger, ok bool) {
	cfg, err := config.LoadSource(src, environ)
	if err != nil {
		fmt.Fprintf(stderr, "mcpgw: config: %v\n", err)
		return nil, nil, nil, false
	}
	log = telemetry.NewLogger(cfg.Log, stderr)
	logSources(log, src, envFile)
	if srv, err = gateway.Start(ctx, cfg, gateway.StartOptions{Logger: log, Version: version()}); err != nil {
		log.Error("start failed", "err", err)
		return nil, nil, nil, false
	}
	return srv, cfg, log, true
}

// sourceFlags are the flags naming where configuration comes from, shared
// by serve and config check so both read exactly the same thing.
type sourceFlags struct {
	config, envFile *string
}

func addSourceFlags(fs *flag.FlagSet) sourceFlags {
	return sourceFlags{
		config:  fs.String("config", "", "config file (YAML); default $MCPGW_CONFIG, $CONFIG_PATH or $CONFIG_YAML (the YAML itself), then ./config/config.yaml, ./config.yaml"),
		envFile: fs.String("env-file", "", "KEY=VALUE file read into the environment first, never replacing a variable already set (default ./"+config.DefaultEnvFile+" when present)"),
	}
}

// find reads the env file, then finds the configuration in the resulting
// environment. Finding none is an error: serving from defaults alone would
// only fail later, after creating a database in the working directory.
func (f sourceFlags) find() (config.Source, []string, config.EnvFile, error) {
	environ, envFile, err := config.ReadEnvFile(*f.envFile, os.Environ())
	if err != nil {
		return config.Source{}, nil, envFile, err
	}
	src, err := config.Find(*f.config, environ)
	if err == nil && !src.Found() {
		err = config.NotFoundError()
	}
	return src, environ, envFile, err
}

// logSources says where the configuration and the env file's variables
// came from (names only: values may be secrets).
func logSources(log *slog.Logger, src config.Source, envFile config.EnvFile) {
	log.Info("configuration", "from", src.From, "path", src.Path)
	if envFile.Path != "" {
		log.Info("environment file read", "path", envFile.Path, "set", envFile.Set, "already_in_environment", envFile.Kept)
	}
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
