package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/ratelimit/redistest"
)

// contactsBackend is a small MCP server whose get_contact tool answers
// with an email address, as JSON or, when asked for "sse", as an SSE event.
func contactsBackend(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Arguments map[string]any `json:"arguments"`
			} `json:"params"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &msg); err != nil || msg.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		var result string
		switch msg.Method {
		case "initialize":
			result = `{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"contacts","version":"1"}}`
		case "tools/list":
			result = `{"tools":[{"name":"get_contact","inputSchema":{"type":"object","properties":{"sse":{"type":"boolean"}}},"annotations":{"readOnlyHint":true}}]}`
		case "tools/call":
			result = `{"content":[{"type":"text","text":"write to ada@example.com"}],"structuredContent":{"email":"ada@example.com","ssn":"078-05-1120"}}`
		default:
			result = `{}`
		}
		reply := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, result)
		if msg.Params.Arguments["sse"] == true {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: message\ndata: %s\n\n", reply)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, reply)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func callContact(t *testing.T, base, token string, sse bool) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_contact","arguments":{"sse":%v}}}`, sse)
	status, _, out, err := mcpPost(base, "/contacts", token, "claude-code", "", body)
	if err != nil {
		t.Fatal(err)
	}
	return status, out
}

// TestObligationRedact: the shipped policy's redact obligation masks what a
// viewer's call returns, in a JSON reply and in an SSE event alike,
// structured and text content; an admin's call is not masked.
func TestObligationRedact(t *testing.T) {
	contacts := contactsBackend(t)
	w := newAdminWorld(t, func(cfg *config.Config) {
		cfg.Backends["contacts"] = config.Backend{URL: contacts, Paths: []string{"/contacts"}, AuthMethod: "none", TimeoutSeconds: 5}
		a := cfg.Agents["claude-code"]
		a.BackendAccess = append(a.BackendAccess, "contacts")
		cfg.Agents["claude-code"] = a
	})
	viewer := w.token("vicky", []string{"mcp:read"}, []string{"mcp-viewers"}, "claude-client")
	admin := w.token("adam", []string{"mcp:read"}, []string{"mcp-admins"}, "claude-client")
	for _, sse := range []bool{false, true} {
		status, out := callContact(t, w.url, viewer, sse)
		if status != http.StatusOK || strings.Contains(out, "ada@example.com") || strings.Contains(out, "078-05-1120") ||
			!strings.Contains(out, `"text":"write to [REDACTED]"`) || !strings.Contains(out, `"ssn":"[REDACTED]"`) {
			t.Fatalf("viewer's call (sse %v): HTTP %d %s", sse, status, out)
		}
		if sse && !strings.HasPrefix(strings.TrimSpace(out), "event:") && !strings.Contains(out, "data:") {
			t.Fatalf("the SSE reply was not relayed as SSE: %s", out)
		}
		status, out = callContact(t, w.url, admin, sse)
		if status != http.StatusOK || !strings.Contains(out, "ada@example.com") {
			t.Fatalf("admin's call (sse %v): HTTP %d %s", sse, status, out)
		}
	}
}

// TestObligationRateLimitSharedByReplicas: the policy's per-user budget of a
// tool is counted in Redis, so two replicas share it; the call over it is
// refused with -32029 and when to retry.
func TestObligationRateLimitSharedByReplicas(t *testing.T) {
	redisURL, ok := redistest.URL(t)
	if !ok {
		return
	}
	dsn, idp, notes, ok := replicaWorld(t)
	if !ok {
		return
	}
	budget := copyPolicies(t, func(body []byte) []byte {
		if !bytes.Contains(body, []byte(`"tool_budget"`)) {
			return nil
		}
		return bytes.Replace(body, []byte(`"tool_budget": {"limit": 600, "window": "1h"}`), []byte(`"tool_budget": {"limit": 2, "window": "1h"}`), 1)
	})
	prefix := fmt.Sprintf("mcpgw:test:%d:", time.Now().UnixNano())
	contacts := contactsBackend(t)
	withBudget := func(cfg *config.Config) {
		cfg.Policy.Bundle = budget
		cfg.RateLimit = config.RateLimit{RedisURL: redisURL, RedisKeyPrefix: prefix}
		cfg.Backends["contacts"] = config.Backend{URL: contacts, Paths: []string{"/contacts"}, AuthMethod: "none", TimeoutSeconds: 5}
		cfg.Agents["claude-code"] = config.Agent{AgentID: "claude-code", ClientID: "claude-client", Scopes: []string{"mcp:read"}, BackendAccess: []string{"contacts"}}
	}
	one, two := startReplica(t, dsn, idp, notes.URL, withBudget), startReplica(t, dsn, idp, notes.URL, withBudget)
	tok := mintToken(t, idp, "rita", []string{"mcp:read"}, []string{"mcp-admins"}, "claude-client")
	for i, base := range []string{one.URL, two.URL} {
		if status, out := callContact(t, base, tok, false); status != http.StatusOK || !strings.Contains(out, `"result"`) {
			t.Fatalf("call %d within the budget: HTTP %d %s", i+1, status, out)
		}
	}
	status, _, out, err := mcpPost(one.URL, "/contacts", tok, "claude-code", "",
		`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"get_contact","arguments":{}}}`)
	if err != nil || status != http.StatusTooManyRequests || !strings.Contains(out, `"code":-32029`) || !strings.Contains(out, `"retry_after"`) {
		t.Fatalf("third call, over the budget the other replica counted: HTTP %d %s %v", status, out, err)
	}
	// Another user's budget is their own.
	other := mintToken(t, idp, "otto", []string{"mcp:read"}, []string{"mcp-admins"}, "claude-client")
	if status, _ := callContact(t, two.URL, other, false); status != http.StatusOK {
		t.Fatalf("another user's first call: HTTP %d", status)
	}
}
