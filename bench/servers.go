package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// serveUntilSignal serves h on a free loopback port, prints the URL of
// path on stdout (how the harness learns it) and serves until SIGTERM.
func serveUntilSignal(h http.Handler, path string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "http://%s%s\n", ln.Addr(), path)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// runBackend is the fast backend: an mcp-go Streamable HTTP server
// (stateful, JSON replies) with an echo tool and n more tools, every
// second one read-only so a list is really filtered for a read-only caller.
func runBackend(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	n := fs.Int("tools", 50, "tools listed besides echo")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := server.NewMCPServer("bench-backend", "1", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echo a message back"),
		mcp.WithReadOnlyHintAnnotation(true), mcp.WithDestructiveHintAnnotation(false),
		mcp.WithString("message", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("message", "")), nil
		})
	for i := range *n {
		s.AddTool(mcp.NewTool(fmt.Sprintf("tool_%06d", i),
			mcp.WithDescription(fmt.Sprintf("Tool number %d of a large catalog, with a description of ordinary length", i)),
			mcp.WithReadOnlyHintAnnotation(i%2 == 0), mcp.WithDestructiveHintAnnotation(false),
			mcp.WithString("query", mcp.Description("what to look for")),
			mcp.WithNumber("limit", mcp.Description("at most this many"))),
			func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText("ok"), nil
			})
	}
	h := server.NewStreamableHTTPServer(s, server.WithEndpointPath("/mcp"), server.WithStateful(true), server.WithHeartbeatInterval(0))
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	return serveUntilSignal(mux, "/mcp", stdout)
}

// runProxy is the plain reverse proxy the gateway is compared with: Go's
// httputil.ReverseProxy, full duplex (without it Go's HTTP/1 server closes
// the request body once an SSE response starts), flushing SSE at once.
func runProxy(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	target := fs.String("target", "", "backend MCP URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("proxy target %q: %v", *target, err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: u.Scheme, Host: u.Host})
			r.Out.URL.Path = u.Path
		},
		FlushInterval: -1,
		// A run's end cancels requests in flight: not worth a log line each.
		ErrorLog:  log.New(io.Discard, "", 0),
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		rp.ServeHTTP(w, r)
	})
	return serveUntilSignal(h, "/mcp", stdout)
}
