package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/policy"
)

// shippedEngine is the policy engine over the policies this repo ships.
func shippedEngine(t testing.TB) *policy.Engine {
	t.Helper()
	return engineFor(t, "../policies")
}

func engineFor(t testing.TB, source string) *policy.Engine {
	t.Helper()
	e, err := policy.New(context.Background(), policy.Options{Source: source, AllowUnsigned: true, Logger: quietLogger(),
		DecisionLog: func(context.Context, policy.Record) {}})
	if err != nil {
		t.Fatalf("policy engine: %v", err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

func listedTools(t *testing.T, msgs []map[string]any) []string {
	t.Helper()
	if len(msgs) != 1 || msgs[0]["result"] == nil {
		t.Fatalf("tools/list reply = %v", msgs)
	}
	var names []string
	for _, tl := range msgs[0]["result"].(map[string]any)["tools"].([]any) {
		names = append(names, tl.(map[string]any)["name"].(string))
	}
	sort.Strings(names)
	return names
}

func rpcErrorCode(m map[string]any) (int, string) {
	e, ok := m["error"].(map[string]any)
	if !ok {
		return 0, ""
	}
	return int(e["code"].(float64)), fmt.Sprint(e["message"])
}

func TestPolicyDecidesCallsAndFiltersLists(t *testing.T) {
	h := newHarness(t, harnessOptions{authorizer: shippedEngine(t)})
	pv := map[string]string{"Mcp-Protocol-Version": "2025-06-18"}
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	call := func(name string) string {
		return `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"` + name + `","arguments":{"id":"e2","title":"CTO"}}}`
	}
	viewer := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "claude-client")
	admin := h.token("bob", []string{"mcp:read", "mcp:write"}, []string{"mcp-admins"}, "claude-client")
	readOnly := h.token("dave", []string{"mcp:read"}, []string{"mcp-super-admins"}, "claude-client")

	for _, tc := range []struct {
		who, token string
		want       string
	}{
		{"viewer", viewer, "get_employee,list_employees,search_employees"},
		{"admin", admin, "get_employee,list_employees,search_employees,update_employee"},
		// mcp:read alone cannot call a tool that is not read-only, so the
		// policy hides it even from a super-admin.
		{"read scope only", readOnly, "get_employee,list_employees,search_employees"},
	} {
		sid := h.openSession("/employees", tc.token, "claude-code")
		got := listedTools(t, rpcMessages(t, h.do(rawRequest{path: "/employees", token: tc.token, agent: "claude-code", session: sid, headers: pv, body: list})))
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s sees %v, want %s", tc.who, got, tc.want)
		}
	}

	sid := h.openSession("/employees", viewer, "claude-code")
	msgs := rpcMessages(t, h.do(rawRequest{path: "/employees", token: viewer, agent: "claude-code", session: sid, headers: pv, body: call("get_employee")}))
	if code, msg := rpcErrorCode(msgs[0]); code != 0 {
		t.Fatalf("viewer get_employee denied: %d %s", code, msg)
	}
	// A tool hidden from the list cannot be called either.
	msgs = rpcMessages(t, h.do(rawRequest{path: "/employees", token: viewer, agent: "claude-code", session: sid, headers: pv, body: call("update_employee")}))
	code, msg := rpcErrorCode(msgs[0])
	if code != -32003 || !strings.Contains(msg, "forbidden by policy") {
		t.Fatalf("viewer update_employee = %d %q, want -32003", code, msg)
	}
	data := msgs[0]["error"].(map[string]any)["data"].(map[string]any)
	if data["decision_id"] == "" || len(data["reasons"].([]any)) == 0 {
		t.Fatalf("denial carries no decision id or reasons: %v", data)
	}

	// Admins may update but not delete.
	sid = h.openSession("/employees", admin, "claude-code")
	if code, _ := rpcErrorCode(rpcMessages(t, h.do(rawRequest{path: "/employees", token: admin, agent: "claude-code", session: sid, headers: pv, body: call("update_employee")}))[0]); code != 0 {
		t.Fatalf("admin update_employee denied: %d", code)
	}
	if code, _ := rpcErrorCode(rpcMessages(t, h.do(rawRequest{path: "/employees", token: admin, agent: "claude-code", session: sid, headers: pv, body: call("delete_employee")}))[0]); code != -32003 {
		t.Fatalf("admin delete_employee = %d, want -32003", code)
	}

	// A missing scope is a transport-level denial naming the scope.
	sid = h.openSession("/employees", readOnly, "claude-code")
	resp := h.do(rawRequest{path: "/employees", token: readOnly, agent: "claude-code", session: sid, headers: pv, body: call("update_employee")})
	checkResponse(t, resp, http.StatusForbidden, "insufficient_scope", map[string]string{"WWW-Authenticate": `scope="mcp:write"`})
}

func TestPolicyDeniesBatchMembersSeparately(t *testing.T) {
	h := newHarness(t, harnessOptions{authorizer: shippedEngine(t)})
	viewer := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "claude-client")
	sid := h.openSession("/employees", viewer, "claude-code")
	batch := `[{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"get_employee","arguments":{"id":"e1"}}},` +
		`{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"delete_employee","arguments":{"id":"e1"}}}]`
	msgs := rpcMessages(t, h.do(rawRequest{path: "/employees", token: viewer, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-03-26"}, body: batch}))
	byID := map[string]map[string]any{}
	for _, m := range msgs {
		byID[fmt.Sprint(m["id"])] = m
	}
	if len(byID) != 2 || byID["a"]["result"] == nil {
		t.Fatalf("batch reply = %v, want a result for a and an error for b", msgs)
	}
	if code, _ := rpcErrorCode(byID["b"]); code != -32003 {
		t.Fatalf("b = %v, want -32003", byID["b"])
	}
}

// sseBackend answers every POST with an SSE stream, as some servers (the
// reference "everything" server among them) always do.
func sseBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[")
		fmt.Fprint(w, "{\"name\":\"get_employee\"},{\"name\":\"delete_employee\"},{\"name\":\"list_employees\"}],\"nextCursor\":\"page2\"}}\n\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

func TestPolicyFiltersInsideSSE(t *testing.T) {
	backend := sseBackend(t)
	h := newHarness(t, harnessOptions{authorizer: shippedEngine(t), mutate: func(c *config.Config) {
		c.Backends["streamer"] = config.Backend{URL: backend, Paths: []string{"/streamer"}, AuthMethod: "none"}
		a := c.Agents["claude-code"]
		a.BackendAccess = append(a.BackendAccess, "streamer")
		c.Agents["claude-code"] = a
	}})
	viewer := h.token("alice", []string{"mcp:read"}, []string{"mcp-viewers"}, "claude-client")
	resp := h.do(rawRequest{path: "/streamer", token: viewer, agent: "claude-code", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("Content-Type = %q", resp.Header.Get("Content-Type"))
	}
	msgs := rpcMessages(t, resp)
	if got := strings.Join(listedTools(t, msgs), ","); got != "get_employee,list_employees" {
		t.Fatalf("filtered SSE list = %s", got)
	}
	if msgs[0]["result"].(map[string]any)["nextCursor"] != "page2" {
		t.Fatalf("nextCursor lost: %v", msgs[0])
	}
}

func TestPolicyEngineFailureDenies(t *testing.T) {
	dir := t.TempDir()
	// A decision whose allow is not a boolean is malformed: fail closed.
	rego := "package mcp.gateway\n\ndecision := {\"allow\": \"yes\", \"reasons\": []}\n\nvisible_tools contains t.name if some t in input.tools\n"
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte(rego), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{authorizer: engineFor(t, dir)})
	tok := h.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	msgs := rpcMessages(t, h.do(rawRequest{path: "/employees", token: tok, agent: "claude-code", body: initBody}))
	if code, msg := rpcErrorCode(msgs[0]); code != -32003 {
		t.Fatalf("initialize under a malformed policy = %d %q, want -32003", code, msg)
	}
}
