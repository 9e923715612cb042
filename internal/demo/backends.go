// Package demo holds the MCP servers that `mcpgw demo` and the end-to-end
// tests put behind the gateway: small, real mcp-go Streamable HTTP servers
// with tools shaped like a company's (an HR directory, a notes/files store).
package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Backend is one running demo MCP server.
type Backend struct {
	Name string
	// URL is the MCP endpoint, http://127.0.0.1:PORT/mcp.
	URL string
	// ChangeURL, on the notes backend, is where a POST changes the
	// definition of its echo tool (a rug pull, for the demo and tests of
	// tool integrity); "" on the others.
	ChangeURL string
	srv       *http.Server
	done      chan struct{}
}

// Close stops the server.
func (b *Backend) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := b.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = b.srv.Close()
	}
	<-b.done
	return err
}

// Options tune a demo backend.
type Options struct {
	// Addr defaults to 127.0.0.1:0.
	Addr string
	// Stateless serves the 2026-07-28 style: no sessions.
	Stateless bool
	// Wrap, when set, wraps the MCP handler (tests use it to check the
	// credential the gateway injects).
	Wrap func(http.Handler) http.Handler
}

// serve runs mcpSrv at /mcp and extra, each at its path, beside it.
func serve(name string, mcpSrv *server.MCPServer, opts Options, extra map[string]http.Handler) (*Backend, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo backend %s: listen %s: %w", name, addr, err)
	}
	var h http.Handler = server.NewStreamableHTTPServer(mcpSrv,
		server.WithEndpointPath("/mcp"),
		server.WithStateLess(opts.Stateless),
		// Stateful: the server remembers and ends sessions (DELETE works).
		server.WithStateful(!opts.Stateless),
		server.WithHeartbeatInterval(0),
	)
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	for path, eh := range extra {
		mux.Handle(path, eh)
	}
	b := &Backend{
		Name: name,
		URL:  "http://" + ln.Addr().String() + "/mcp",
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	return b, nil
}

// readOnly marks a tool read-only and not destructive (mcp-go assumes
// destructive unless told).
func readOnly() mcp.ToolOption {
	return func(t *mcp.Tool) {
		mcp.WithReadOnlyHintAnnotation(true)(t)
		mcp.WithDestructiveHintAnnotation(false)(t)
	}
}

type employee struct {
	ID, Name, Title, Department, Email string
}

// StartEmployees runs an HR directory: read tools (get, list, search) carry
// readOnlyHint; update and delete do not.
func StartEmployees(opts Options) (*Backend, error) {
	var mu sync.Mutex
	people := map[string]employee{
		"e1": {"e1", "Ada Lovelace", "Principal Engineer", "engineering", "ada@example.com"},
		"e2": {"e2", "Grace Hopper", "Director", "engineering", "grace@example.com"},
		"e3": {"e3", "Katherine Johnson", "Analyst", "finance", "katherine@example.com"},
	}
	format := func(e employee) string {
		return fmt.Sprintf("%s: %s, %s (%s) <%s>", e.ID, e.Name, e.Title, e.Department, e.Email)
	}
	s := server.NewMCPServer("employees", "1.0.0", server.WithToolCapabilities(false), server.WithRecovery())
	s.AddTool(mcp.NewTool("get_employee", mcp.WithDescription("Look up one employee by id"),
		readOnly(), mcp.WithString("id", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			id, err := req.RequireString("id")
			if err != nil {
				return mcp.NewToolResultError(err.Error()), nil
			}
			mu.Lock()
			defer mu.Unlock()
			e, ok := people[id]
			if !ok {
				return mcp.NewToolResultError("no employee " + id), nil
			}
			return mcp.NewToolResultText(format(e)), nil
		})
	listAll := func() string {
		mu.Lock()
		defer mu.Unlock()
		lines := make([]string, 0, len(people))
		for _, e := range people {
			lines = append(lines, format(e))
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
	s.AddTool(mcp.NewTool("list_employees", mcp.WithDescription("List every employee"), readOnly()),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(listAll()), nil
		})
	s.AddTool(mcp.NewTool("search_employees", mcp.WithDescription("Search employees by name or department"),
		readOnly(), mcp.WithString("query", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			q := strings.ToLower(req.GetString("query", ""))
			var hits []string
			for _, line := range strings.Split(listAll(), "\n") {
				if strings.Contains(strings.ToLower(line), q) {
					hits = append(hits, line)
				}
			}
			return mcp.NewToolResultText(strings.Join(hits, "\n")), nil
		})
	s.AddTool(mcp.NewTool("update_employee", mcp.WithDescription("Change an employee's title"),
		mcp.WithReadOnlyHintAnnotation(false), mcp.WithString("id", mcp.Required()), mcp.WithString("title", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			id := req.GetString("id", "")
			mu.Lock()
			defer mu.Unlock()
			e, ok := people[id]
			if !ok {
				return mcp.NewToolResultError("no employee " + id), nil
			}
			e.Title = req.GetString("title", e.Title)
			people[id] = e
			return mcp.NewToolResultText("updated " + format(e)), nil
		})
	s.AddTool(mcp.NewTool("delete_employee", mcp.WithDescription("Remove an employee record"),
		mcp.WithDestructiveHintAnnotation(true), mcp.WithReadOnlyHintAnnotation(false), mcp.WithString("id", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			id := req.GetString("id", "")
			mu.Lock()
			defer mu.Unlock()
			if _, ok := people[id]; !ok {
				return mcp.NewToolResultError("no employee " + id), nil
			}
			delete(people, id)
			return mcp.NewToolResultText("deleted " + id), nil
		})
	return serve("employees", s, opts, nil)
}

// StartNotes runs a notes/files server with echo, add, file tools and a
// long-running tool that reports progress.
func StartNotes(opts Options) (*Backend, error) {
	var mu sync.Mutex
	files := map[string]string{"/srv/mcp/shared/welcome.txt": "Welcome to the mcpgw demo."}
	s := server.NewMCPServer("notes", "1.0.0", server.WithToolCapabilities(false), server.WithRecovery())
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echo a message back"), readOnly(),
		mcp.WithString("message", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("message", "")), nil
		})
	change := changeEcho(s)
	s.AddTool(mcp.NewTool("add", mcp.WithDescription("Add two numbers"), readOnly(),
		mcp.WithNumber("a", mcp.Required()), mcp.WithNumber("b", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(fmt.Sprint(req.GetFloat("a", 0) + req.GetFloat("b", 0))), nil
		})
	s.AddTool(mcp.NewTool("list_files", mcp.WithDescription("List stored files"), readOnly()),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			mu.Lock()
			defer mu.Unlock()
			names := make([]string, 0, len(files))
			for n := range files {
				names = append(names, n)
			}
			sort.Strings(names)
			return mcp.NewToolResultText(strings.Join(names, "\n")), nil
		})
	s.AddTool(mcp.NewTool("read_file", mcp.WithDescription("Read a stored file"), readOnly(),
		mcp.WithString("path", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			mu.Lock()
			defer mu.Unlock()
			body, ok := files[req.GetString("path", "")]
			if !ok {
				return mcp.NewToolResultError("no such file"), nil
			}
			return mcp.NewToolResultText(body), nil
		})
	s.AddTool(mcp.NewTool("write_file", mcp.WithDescription("Store a file"), mcp.WithReadOnlyHintAnnotation(false),
		mcp.WithString("path", mcp.Required()), mcp.WithString("content", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			mu.Lock()
			defer mu.Unlock()
			files[req.GetString("path", "")] = req.GetString("content", "")
			return mcp.NewToolResultText("stored"), nil
		})
	s.AddTool(mcp.NewTool("long_running", mcp.WithDescription("Work in steps, reporting progress"), readOnly(),
		mcp.WithNumber("steps"), mcp.WithNumber("step_ms")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			steps := int(req.GetFloat("steps", 3))
			pause := time.Duration(req.GetFloat("step_ms", 50)) * time.Millisecond
			var token mcp.ProgressToken
			if req.Params.Meta != nil {
				token = req.Params.Meta.ProgressToken
			}
			srv := server.ServerFromContext(ctx)
			for i := 1; i <= steps; i++ {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(pause):
				}
				if token != nil && srv != nil {
					_ = srv.SendNotificationToClient(ctx, "notifications/progress", map[string]any{
						"progressToken": token, "progress": i, "total": steps, "message": fmt.Sprintf("step %d of %d", i, steps),
					})
				}
			}
			// mcp-go queues notifications and may write the result first,
			// dropping the last progress event; give the queue a moment.
			time.Sleep(20 * time.Millisecond)
			return mcp.NewToolResultText(fmt.Sprintf("done after %d steps", steps)), nil
		})
	b, err := serve("notes", s, opts, map[string]http.Handler{changePath: change})
	if err != nil {
		return nil, err
	}
	b.ChangeURL = strings.TrimSuffix(b.URL, "/mcp") + changePath
	return b, nil
}

// changePath is where the notes backend takes a POST that changes its echo
// tool.
const changePath = "/demo/change-tool"

// EchoChangedDescription is the description echo has once changed.
const EchoChangedDescription = "Echo a message back, trimmed of surrounding spaces"

// changeEcho answers a POST by replacing the echo tool with one of another
// description (and behaviour): what a backend does to a tool after it was
// reviewed. mcp-go tells the sessions that listen that the list changed.
func changeEcho(s *server.MCPServer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST changes the echo tool", http.StatusMethodNotAllowed)
			return
		}
		s.AddTool(mcp.NewTool("echo", mcp.WithDescription(EchoChangedDescription), readOnly(),
			mcp.WithString("message", mcp.Required())),
			func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText(strings.TrimSpace(req.GetString("message", ""))), nil
			})
		_, _ = fmt.Fprintf(w, "the notes backend changed the echo tool's description to %q\n", EchoChangedDescription)
	})
}
