package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/mcpgw/mcpgw/internal/bridge"
)

const connectUsage = `usage: mcpgw connect [flags] https://gateway/<backend-path>

Speaks MCP over stdio (stdin/stdout) to a local client and Streamable HTTP to
the gateway, logging the person in through the gateway's OAuth facade in the
browser on first use. Logs go to stderr.

flags:
`

// loginHandlerEnv names a login handler when --login-handler is not given.
// Not MCPGW_*: every MCPGW_* variable is a configuration key of `serve`,
// which would refuse to start in an environment that sets this one.
const loginHandlerEnv = "MCP_CONNECT_LOGIN_HANDLER"

func runConnect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, connectUsage)
		fs.PrintDefaults()
	}
	printConfig := fs.Bool("print-config", false, "print Claude Desktop and VS Code configuration for this URL, then exit")
	noBrowser := fs.Bool("no-browser", false, "do not open a browser: print the login URL on stderr only")
	loginHandler := fs.String("login-handler", os.Getenv(loginHandlerEnv),
		"command run with the login URL as last argument instead of the browser (words split on spaces; env "+loginHandlerEnv+")")
	tokenFile := fs.String("token-file", "", "where the client registration and tokens are kept (default: the user config dir, mcpgw/connect/<hash of URL>.json)")
	clientName := fs.String("client-name", "mcpgw connect", "client_name registered at the gateway (its registration rules pick the agent by it)")
	verbose := fs.Bool("v", false, "log every step (debug)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	target := fs.Arg(0)
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		fmt.Fprintf(stderr, "mcpgw connect: %q is not an http(s) URL\n", target)
		return 2
	}
	if *printConfig {
		exe, err := os.Executable()
		if err == nil {
			exe, err = filepath.Abs(exe)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mcpgw connect: the path of this binary: %v\n", err)
			return 1
		}
		if err := printConnectConfig(stdout, exe, target); err != nil {
			fmt.Fprintf(stderr, "mcpgw connect: %v\n", err)
			return 1
		}
		return 0
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("component", "mcpgw connect")
	path := *tokenFile
	if path == "" {
		if path, err = bridge.DefaultTokenFile(target); err != nil {
			fmt.Fprintf(stderr, "mcpgw connect: %v\n", err)
			return 1
		}
	}
	var open func(context.Context, string) error
	switch {
	case *loginHandler != "":
		open = bridge.HandlerOpener(*loginHandler, stderr)
	case !*noBrowser:
		open = bridge.BrowserOpener
	}
	httpClient := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	auth := &bridge.Auth{GatewayURL: target, TokenFile: path, ClientName: *clientName, Open: open, HTTP: httpClient, Log: log}
	b := &bridge.Bridge{URL: target, Auth: auth, HTTP: httpClient, Log: log}
	if err := b.Run(ctx, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "mcpgw connect: %v\n", err)
		return 1
	}
	return 0
}

// printConnectConfig prints the snippets for Claude Desktop
// (claude_desktop_config.json) and VS Code (.vscode/mcp.json) that start
// exe connect target. The server's name is the URL's last path segment.
func printConnectConfig(w io.Writer, exe, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	name := path.Base(strings.TrimRight(u.Path, "/"))
	if name == "." || name == "/" || name == "" {
		name = u.Hostname()
	}
	args := []string{"connect", target}
	claude := map[string]any{"mcpServers": map[string]any{name: map[string]any{"command": exe, "args": args}}}
	vscode := map[string]any{"servers": map[string]any{name: map[string]any{"type": "stdio", "command": exe, "args": args}}}
	for _, part := range []struct {
		title string
		v     any
	}{{"Claude Desktop (claude_desktop_config.json):", claude}, {"VS Code (.vscode/mcp.json or the user mcp.json):", vscode}} {
		b, err := json.MarshalIndent(part.v, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\n%s\n\n", part.title, b)
	}
	return nil
}
