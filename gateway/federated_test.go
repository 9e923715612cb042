package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// federatedHarness is the two demo backends behind the shipped policy, with
// the federated endpoint at /mcp; records returns the policy's decision
// records so far.
func federatedHarness(t *testing.T, logger ...*slog.Logger) (*harness, func() []policy.Record) {
	t.Helper()
	engine, records := recordingEngine(t)
	var log *slog.Logger
	if len(logger) > 0 {
		log = logger[0]
	}
	h := newHarness(t, harnessOptions{
		logger:     log,
		authorizer: engine,
		mutate:     func(c *config.Config) { c.Server.FederatedPath = "/mcp" },
	})
	return h, records
}

// recordingEngine is the shipped policy, stopped by the test; records
// returns its decision records so far.
func recordingEngine(t *testing.T) (*policy.Engine, func() []policy.Record) {
	t.Helper()
	var mu sync.Mutex
	var records []policy.Record
	engine, err := policy.New(context.Background(), policy.Options{Source: shippedPolicy, AllowUnsigned: true, Logger: quietLogger(),
		DecisionLog: func(_ context.Context, r policy.Record) {
			mu.Lock()
			records = append(records, r)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatalf("policy engine: %v", err)
	}
	t.Cleanup(func() { engine.Stop(context.Background()) })
	return engine, func() []policy.Record {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(records)
	}
}

func listedNames(t *testing.T, ctx context.Context, c *client.Client, prefix string) []string {
	t.Helper()
	res, err := c.ListTools(ctx, mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, prefix+tl.Name)
	}
	slices.Sort(names)
	return names
}

func callTool(ctx context.Context, c *client.Client, name string, args map[string]any) (*mcpgo.CallToolResult, error) {
	req := mcpgo.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = name, args
	return c.CallTool(ctx, req)
}

// TestFederatedEndpoint: through /mcp, a caller sees exactly the tools each
// backend's own path shows them, prefixed, calls reach the right backend
// with the original name, and a tool hidden on its own path is refused by
// the same decision.
func TestFederatedEndpoint(t *testing.T) {
	h, records := federatedHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	viewer := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, claudeClient)

	fed := h.client("/mcp", viewer, "claude-code")
	init := initialize(ctx, t, fed)
	if init.ServerInfo.Name != "mcpgw" || init.Capabilities.Tools == nil {
		t.Fatalf("initialize = %+v", init)
	}

	// The same caller on each backend's own path.
	var want []string
	for _, b := range []string{"employees", "notes"} {
		own := h.client("/"+b, viewer, "claude-code")
		initialize(ctx, t, own)
		want = append(want, listedNames(t, ctx, own, b+"__")...)
	}
	slices.Sort(want)
	got := listedNames(t, ctx, fed, "")
	if !slices.Equal(got, want) {
		t.Fatalf("federated list %v, want the backends' own lists %v", got, want)
	}
	for _, name := range []string{"employees__get_employee", "notes__echo"} {
		if !slices.Contains(got, name) {
			t.Errorf("federated list lacks %s: %v", name, got)
		}
	}
	if slices.Contains(got, "employees__update_employee") {
		t.Errorf("federated list shows a tool the policy hides from a viewer: %v", got)
	}

	for _, tc := range []struct {
		name string
		args map[string]any
		want string
	}{
		{"employees__get_employee", map[string]any{"id": "e1"}, "e1"},
		{"notes__echo", map[string]any{"message": "hello through /mcp"}, "hello through /mcp"},
	} {
		res, err := callTool(ctx, fed, tc.name, tc.args)
		if err != nil || res.IsError || len(res.Content) == 0 {
			t.Fatalf("%s: %+v %v", tc.name, res, err)
		}
		if text := res.Content[0].(mcpgo.TextContent).Text; !strings.Contains(text, tc.want) {
			t.Errorf("%s answered %q, want it to contain %q", tc.name, text, tc.want)
		}
	}

	// The redact obligation holds as on the backend's own path: a viewer
	// sees no email address, through either.
	own := h.client("/employees", viewer, "claude-code")
	initialize(ctx, t, own)
	ownRes, err := callTool(ctx, own, "get_employee", map[string]any{"id": "e1"})
	if err != nil {
		t.Fatal(err)
	}
	fedRes, err := callTool(ctx, fed, "employees__get_employee", map[string]any{"id": "e1"})
	if err != nil {
		t.Fatal(err)
	}
	ownText, fedText := ownRes.Content[0].(mcpgo.TextContent).Text, fedRes.Content[0].(mcpgo.TextContent).Text
	if ownText != fedText || strings.Contains(fedText, "ada@example.com") {
		t.Fatalf("get_employee for a viewer: own path %q, federated %q; want the same, redacted", ownText, fedText)
	}

	// A tool hidden on its own path: refused on both, by the same decision.
	args := map[string]any{"id": "e2", "title": "CTO"}
	_, ownErr := callTool(ctx, own, "update_employee", args)
	_, fedErr := callTool(ctx, fed, "employees__update_employee", args)
	for _, err := range []error{ownErr, fedErr} {
		if err == nil || !strings.Contains(err.Error(), "forbidden by policy") {
			t.Fatalf("update_employee by a viewer: %v, want forbidden by policy", err)
		}
	}
	var denials []policy.Record
	for _, r := range records() {
		if r.Query == "decision" && r.Tool == "update_employee" {
			denials = append(denials, r)
		}
	}
	if len(denials) != 2 || denials[0].Allow || denials[1].Allow || denials[0].Backend != "employees" || denials[1].Backend != "employees" ||
		!slices.Equal(denials[0].Reasons, denials[1].Reasons) || len(denials[0].Reasons) == 0 {
		t.Fatalf("decision records of the two denials differ or are missing: %+v", denials)
	}

	// Unknown prefix: invalid params.
	_, err = callTool(ctx, fed, "payroll__run", nil)
	if err == nil || !strings.Contains(err.Error(), "names no backend of this session") {
		t.Fatalf("unknown prefix: %v", err)
	}
}

// TestFederatedBackendDown: with one backend stopped, the list still has
// the other's tools, and calls to it still work.
func TestFederatedBackendDown(t *testing.T) {
	var logs testutil.SyncBuffer
	h, _ := federatedHarness(t, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	viewer := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, claudeClient)
	fed := h.client("/mcp", viewer, "claude-code")
	initialize(ctx, t, fed)
	if err := h.notes.Close(); err != nil {
		t.Fatal(err)
	}
	got := listedNames(t, ctx, fed, "")
	if !slices.Contains(got, "employees__get_employee") || slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, "notes__") }) {
		t.Fatalf("list with notes down: %v", got)
	}
	if line := logs.String(); !strings.Contains(line, "federated tools/list: backend left out of the list") || !strings.Contains(line, "backend=notes") {
		t.Errorf("no warning naming notes in the log:\n%s", line)
	}
	if res, err := callTool(ctx, fed, "employees__get_employee", map[string]any{"id": "e1"}); err != nil || res.IsError {
		t.Fatalf("call with notes down: %+v %v", res, err)
	}
	if _, err := callTool(ctx, fed, "notes__echo", map[string]any{"message": "x"}); err == nil {
		t.Fatal("a call to the stopped backend succeeded")
	}
}

// TestFederatedProblems: the federated path may not be a route of the
// gateway's own, nor at, above or below a backend's path.
func TestFederatedProblems(t *testing.T) {
	backends := map[string]config.Backend{"employees": {Paths: []string{"/employees"}}, "hr": {Paths: []string{"/tools/hr"}}}
	for _, tc := range []struct {
		path string
		want string
	}{
		{"", ""},
		{"/mcp", ""},
		{"/employees", "backends.employees.paths[0]"},
		{"/employees/all", "backends.employees.paths[0]"},
		{"/tools", "backends.hr.paths[0]"},
		{"/healthz", "the gateway's own route /healthz"},
		{"/.well-known/mcp", "the gateway's own route /.well-known"},
	} {
		g := &Gateway{server: config.Server{FederatedPath: tc.path}}
		got := strings.Join(g.federatedProblems(backends), "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%q: problems %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestFederatedEdges: what the federated endpoint answers itself, and what
// it refuses by name, over raw HTTP.
func TestFederatedEdges(t *testing.T) {
	h, _ := federatedHarness(t)
	viewer := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, claudeClient)
	sid := h.openSession("/mcp", viewer, "claude-code")
	// A backend's session does not open here, nor the federated one on a
	// backend's path.
	own := h.openSession("/notes", viewer, "claude-code")
	pv := map[string]string{"Mcp-Protocol-Version": "2025-06-18"}
	for _, tc := range []struct {
		name     string
		req      rawRequest
		status   int
		code     int    // JSON-RPC error code; 0: none
		contains string // in the body
	}{
		{"ping", rawRequest{session: sid, body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, http.StatusOK, 0, `"result":{}`},
		{"no session", rawRequest{body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`}, http.StatusBadRequest, mcpgo.INVALID_REQUEST, "initialize"},
		{"backend session here", rawRequest{session: own, body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, http.StatusNotFound, mcpgo.INVALID_REQUEST, "unknown or expired session"},
		{"federated session on a backend path", rawRequest{path: "/notes", session: sid, body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, http.StatusNotFound, mcpgo.INVALID_REQUEST, "unknown or expired session"},
		{"batch", rawRequest{session: sid, body: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`}, http.StatusBadRequest, mcpgo.INVALID_REQUEST, "not JSON-RPC batches"},
		{"tasks/list", rawRequest{session: sid, body: `{"jsonrpc":"2.0","id":1,"method":"tasks/list"}`}, http.StatusOK, mcpgo.METHOD_NOT_FOUND, "not served by the federated endpoint"},
		{"cursor", rawRequest{session: sid, body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"x"}}`}, http.StatusOK, mcpgo.INVALID_PARAMS, "cursor: not a cursor this endpoint gave"},
		{"unknown prefix", rawRequest{session: sid, body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`}, http.StatusOK, mcpgo.INVALID_PARAMS, "names no backend"},
		{"GET without session", rawRequest{method: http.MethodGet}, http.StatusBadRequest, mcpgo.INVALID_REQUEST, "Mcp-Session-Id required"},
		{"response with a foreign id", rawRequest{session: sid, body: `{"jsonrpc":"2.0","id":7,"result":{}}`}, http.StatusBadRequest, mcpgo.INVALID_REQUEST, "not one the federated endpoint sent"},
		{"response naming no backend", rawRequest{session: sid, body: `{"jsonrpc":"2.0","id":"payroll:7","result":{}}`}, http.StatusBadRequest, mcpgo.INVALID_REQUEST, "names no backend of this session"},
		{"response with a non-canonical id", rawRequest{session: sid, body: `{"jsonrpc":"2.0","id":"notes:07","result":{}}`}, http.StatusBadRequest, mcpgo.INVALID_REQUEST, "canonical JSON-RPC id"},
		{"no token", rawRequest{session: sid, token: "-", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`}, http.StatusUnauthorized, 0, "missing bearer token"},
		{"revision 2026-07-28", rawRequest{session: sid, body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, headers: map[string]string{"Mcp-Protocol-Version": "2026-07-28"}}, http.StatusBadRequest, mcpgo.INVALID_REQUEST, "serves protocol revisions up to"},
		{"DELETE", rawRequest{method: http.MethodDelete, session: sid}, http.StatusNoContent, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req
			r.path = cmp.Or(r.path, "/mcp")
			r.agent = "claude-code"
			if r.headers == nil {
				r.headers = pv
			}
			switch r.token {
			case "":
				r.token = viewer
			case "-":
				r.token = ""
			}
			resp := h.do(r)
			body := string(readAll(t, resp))
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.contains) {
				t.Fatalf("HTTP %d %s, want %d with %q", resp.StatusCode, body, tc.status, tc.contains)
			}
			if tc.code != 0 {
				var m map[string]any
				if err := json.Unmarshal([]byte(body), &m); err != nil {
					t.Fatal(err)
				}
				if code, _ := rpcErrorCode(m); code != tc.code {
					t.Fatalf("JSON-RPC code %d, want %d: %s", code, tc.code, body)
				}
			}
		})
	}
}

// TestFederatedStatelessRevision: a client asking for a stateless revision
// (2026-07-28) at initialize gets the latest revision with sessions.
func TestFederatedStatelessRevision(t *testing.T) {
	h, _ := federatedHarness(t)
	viewer := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, claudeClient)
	resp := h.do(rawRequest{path: "/mcp", token: viewer, agent: "claude-code",
		body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`})
	msgs := rpcMessages(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") == "" || len(msgs) != 1 {
		t.Fatalf("initialize: HTTP %d, %v", resp.StatusCode, msgs)
	}
	if got := msgs[0]["result"].(map[string]any)["protocolVersion"]; got != mcpgo.LATEST_LEGACY_PROTOCOL_VERSION {
		t.Fatalf("protocolVersion %v, want %s", got, mcpgo.LATEST_LEGACY_PROTOCOL_VERSION)
	}
}
