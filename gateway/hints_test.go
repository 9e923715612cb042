package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// headerLog keeps, per relayed request, the hint headers it carried.
// Requests without X-Request-ID are the gateway's own (listing a backend's
// tools to decide a call) and are not kept.
type headerLog struct {
	mu   sync.Mutex
	seen []http.Header
}

func (l *headerLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Request-ID") == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := http.Header{}
		for k, v := range r.Header {
			lk := strings.ToLower(k)
			if lk == "mcp-method" || lk == "mcp-name" || strings.HasPrefix(lk, "mcp-param-") || lk == "x-request-id" {
				h[k] = v
			}
		}
		l.mu.Lock()
		l.seen = append(l.seen, h)
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// reset forgets what was seen and returns it.
func (l *headerLog) reset() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.seen
	l.seen = nil
	return out
}

// startRouteBackend is a real mcp-go server with one tool, route, whose
// region argument travels in Mcp-Param-Region (x-mcp-header) in 2026-07-28.
func startRouteBackend(t *testing.T, log *headerLog) string {
	t.Helper()
	srv := server.NewMCPServer("route", "1", server.WithToolCapabilities(false))
	schema := json.RawMessage(`{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"note":{"type":"string"}},"required":["region"]}`)
	srv.AddTool(mcpgo.NewToolWithRawSchema("route", "routes a call", schema), func(_ context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		return mcpgo.NewToolResultText("routed to " + req.GetString("region", "")), nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", log.wrap(server.NewStreamableHTTPServer(srv, server.WithEndpointPath("/mcp"), server.WithStateful(true), server.WithHeartbeatInterval(0))))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

// Mcp-Method, Mcp-Name and Mcp-Param-* are checked against the body
// whatever MCP-Protocol-Version says, refused on a batch, a response or a
// header sent twice, and never forwarded as the client sent them: a
// 2026-07-28 backend gets them derived from the forwarded message, an older
// one none.
func TestHintHeadersCheckedWhateverTheVersion(t *testing.T) {
	notesLog, routeLog := &headerLog{}, &headerLog{}
	routeURL := startRouteBackend(t, routeLog)
	h := newHarness(t, harnessOptions{wrapNotes: notesLog.wrap, mutate: func(c *config.Config) {
		c.Backends["route"] = config.Backend{URL: routeURL, Paths: []string{"/route"}, AuthMethod: "none", TimeoutSeconds: 5}
		a := c.Agents["claude-code"]
		a.BackendAccess = append(a.BackendAccess, "route")
		c.Agents["claude-code"] = a
	}})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	sid := h.openSession("/notes", tok, "claude-code")
	notesLog.reset()

	const (
		legacy = "2025-06-18"
		modern = "2026-07-28"
	)
	echo := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}`
	list := `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`
	route := func(region string) string {
		return `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"route","arguments":{"region":"` + region + `","note":"n"},` + meta + `}}`
	}

	tests := []struct {
		name    string
		path    string
		body    string
		headers map[string]string
		// raw adds headers net/http would merge (a header sent twice).
		raw        [][2]string
		wantStatus int
		wantInBody string
		// backend is what the backend must have received of the hint
		// headers (name → value, "" = absent); nil: nothing may reach it.
		backend map[string]string
	}{
		{name: "Mcp-Method disagrees, older revision", path: "/notes", body: echo,
			headers: map[string]string{"Mcp-Protocol-Version": legacy, "Mcp-Method": "tools/list"}, wantStatus: 400, wantInBody: `Mcp-Method: header value \"tools/list\" does not match body value \"tools/call\"`},
		{name: "Mcp-Name disagrees, older revision", path: "/notes", body: echo,
			headers: map[string]string{"Mcp-Protocol-Version": legacy, "Mcp-Method": "tools/call", "Mcp-Name": "delete_everything"}, wantStatus: 400, wantInBody: "Mcp-Name"},
		{name: "Mcp-Name alone disagrees, no version header", path: "/notes", body: echo,
			headers: map[string]string{"Mcp-Name": "delete_everything"}, wantStatus: 400, wantInBody: "Mcp-Name"},
		{name: "Mcp-Name on a method without a name", path: "/notes", body: list,
			headers: map[string]string{"Mcp-Protocol-Version": legacy, "Mcp-Name": "echo"}, wantStatus: 400, wantInBody: "Mcp-Name: method \\\"tools/list\\\" carries no name"},
		{name: "Mcp-Param on a method that is not tools/call", path: "/notes", body: list,
			headers: map[string]string{"Mcp-Protocol-Version": legacy, "Mcp-Param-Region": "eu"}, wantStatus: 400, wantInBody: "Mcp-Param-Region: Mcp-Param-* headers belong to tools/call only"},
		{name: "Mcp-Param the tool does not bind", path: "/notes", body: echo,
			headers: map[string]string{"Mcp-Protocol-Version": legacy, "Mcp-Param-Message": "x"}, wantStatus: 400, wantInBody: "Mcp-Param-Message: the input schema of tool \\\"echo\\\" binds no parameter"},
		{name: "Mcp-Method sent twice", path: "/notes", body: echo, headers: map[string]string{"Mcp-Protocol-Version": legacy},
			raw: [][2]string{{"Mcp-Method", "tools/call"}, {"Mcp-Method", "tools/list"}}, wantStatus: 400, wantInBody: "Mcp-Method: header sent more than once"},
		{name: "hints on a batch", path: "/notes", body: "[" + list + "]",
			headers: map[string]string{"Mcp-Method": "tools/list"}, wantStatus: 400, wantInBody: "a JSON-RPC batch cannot carry them"},
		{name: "hints on a response", path: "/notes", body: `{"jsonrpc":"2.0","id":"s1","result":{}}`,
			headers: map[string]string{"Mcp-Protocol-Version": legacy, "Mcp-Method": "tools/call"}, wantStatus: 400, wantInBody: "a JSON-RPC response has no method"},
		{name: "matching hints, older revision: checked, not forwarded", path: "/notes", body: echo,
			headers:    map[string]string{"Mcp-Protocol-Version": legacy, "Mcp-Method": "tools/call", "Mcp-Name": "echo"},
			wantStatus: 200, wantInBody: `"x"`, backend: map[string]string{"Mcp-Method": "", "Mcp-Name": ""}},
		{name: "2026-07-28 without Mcp-Param for a bound argument", path: "/route", body: route("eu"),
			headers: map[string]string{"Mcp-Protocol-Version": modern, "Mcp-Method": "tools/call", "Mcp-Name": "route"}, wantStatus: 400, wantInBody: "Mcp-Param-Region: missing header"},
		{name: "2026-07-28 Mcp-Param disagrees with the argument", path: "/route", body: route("eu"),
			headers: map[string]string{"Mcp-Protocol-Version": modern, "Mcp-Method": "tools/call", "Mcp-Name": "route", "Mcp-Param-Region": "us"}, wantStatus: 400, wantInBody: "Mcp-Param-Region"},
		{name: "2026-07-28 matching: the backend gets hints derived from the body", path: "/route", body: route("eu"),
			headers:    map[string]string{"Mcp-Protocol-Version": modern, "Mcp-Method": "tools/call", "Mcp-Name": "route", "mcp-param-region": "eu"},
			wantStatus: 200, wantInBody: "routed to eu", backend: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "route", "Mcp-Param-Region": "eu"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			notesLog.reset()
			routeLog.reset()
			session := sid
			if tc.path != "/notes" {
				session = "" // 2026-07-28 is stateless
			}
			resp := h.doRaw(rawRequest{path: tc.path, token: tok, agent: "claude-code", session: session, headers: tc.headers, body: tc.body}, tc.raw)
			body := string(readAll(t, resp))
			if resp.StatusCode != tc.wantStatus || !strings.Contains(body, tc.wantInBody) {
				t.Fatalf("HTTP %d %s, want %d containing %q", resp.StatusCode, body, tc.wantStatus, tc.wantInBody)
			}
			seen := notesLog.reset()
			if tc.path == "/route" {
				seen = routeLog.reset()
			}
			if tc.backend == nil {
				if len(seen) != 0 {
					t.Fatalf("a refused request reached the backend: %v", seen)
				}
				return
			}
			if len(seen) != 1 {
				t.Fatalf("backend saw %d requests, want 1", len(seen))
			}
			for name, want := range tc.backend {
				if got := seen[0].Get(name); got != want {
					t.Errorf("backend got %s = %q, want %q", name, got, want)
				}
			}
		})
	}

	// A GET stream has no message for a hint to describe: whatever the
	// client sends is dropped.
	notesLog.reset()
	get := h.do(rawRequest{method: http.MethodGet, path: "/notes", token: tok, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": legacy, "Mcp-Method": "tools/call", "Mcp-Name": "delete_everything", "Mcp-Param-Path": "/"}})
	testutil.WantStatus(t, get, http.StatusOK)
	get.Body.Close()
	seen := notesLog.reset()
	if len(seen) != 1 {
		t.Fatalf("GET: backend saw %d requests, want 1", len(seen))
	}
	for _, name := range []string{"Mcp-Method", "Mcp-Name", "Mcp-Param-Path"} {
		if v := seen[0].Get(name); v != "" {
			t.Errorf("GET forwarded %s: %q", name, v)
		}
	}
}

// doRaw is do with extra header lines added, not set: a header sent twice.
func (h *harness) doRaw(r rawRequest, extra [][2]string) *http.Response {
	h.t.Helper()
	if len(extra) == 0 {
		return h.do(r)
	}
	req, err := http.NewRequest(http.MethodPost, h.url+r.path, strings.NewReader(r.body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("X-Agent-ID", r.agent)
	if r.session != "" {
		req.Header.Set("Mcp-Session-Id", r.session)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	for _, kv := range extra {
		req.Header.Add(kv[0], kv[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}
