package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

func TestTransportRejections(t *testing.T) {
	h := newHarness(t, harnessOptions{mutate: func(c *config.Config) {
		disabled := false
		c.Agents["retired"] = config.Agent{AgentID: "retired", ClientID: "retired-client", Scopes: []string{"mcp:read"}, BackendAccess: []string{"notes"}, Enabled: &disabled}
		c.Backends["frozen"] = config.Backend{URL: "http://127.0.0.1:1/mcp", Paths: []string{"/frozen"}, AuthMethod: "none", Enabled: &disabled}
		a := c.Agents["claude-code"]
		a.BackendAccess = append(a.BackendAccess, "frozen")
		c.Agents["claude-code"] = a
	}})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	cases := []struct {
		name       string
		req        rawRequest
		wantStatus int
		wantInBody string
		wantHeader map[string]string
	}{
		{"no token", rawRequest{path: "/notes", body: list}, 401, "missing bearer token",
			map[string]string{"WWW-Authenticate": `Bearer resource_metadata="` + h.url + `/.well-known/oauth-protected-resource/notes"`}},
		{"garbage token", rawRequest{path: "/notes", token: "not-a-jwt", body: list}, 401, "invalid_token",
			map[string]string{"WWW-Authenticate": `Bearer error="invalid_token"`}},
		{"unknown path", rawRequest{path: "/nowhere", token: tok, agent: "claude-code", body: list}, 404, "no backend serves path /nowhere", nil},
		{"unknown agent", rawRequest{path: "/notes", token: tok, agent: "mallory", body: list}, 403, `unknown agent \"mallory\"`, nil},
		{"agent of another client", rawRequest{path: "/notes", token: tok, agent: "cursor", body: list}, 403, "bound to another OAuth client", nil},
		{"disabled agent", rawRequest{path: "/notes", token: h.token("bob", []string{"mcp:read"}, nil, "retired-client"), agent: "retired", body: list}, 403, "disabled", nil},
		{"backend not granted", rawRequest{path: "/employees", token: h.token("carol", []string{"mcp:read"}, nil, "cursor-client"), agent: "cursor", body: list}, 403, "backend_access",
			map[string]string{"WWW-Authenticate": `error="insufficient_scope"`}},
		{"disabled backend", rawRequest{path: "/frozen", token: tok, agent: "claude-code", body: list}, 403, "backend frozen is disabled", nil},
		{"wrong content type", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: list, headers: map[string]string{"Content-Type": "text/plain"}}, 415, "Content-Type must be application/json", nil},
		{"accept without SSE", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: list, headers: map[string]string{"Accept": "application/json"}}, 406, "text/event-stream", nil},
		{"malformed JSON", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: `{"jsonrpc":`}, 400, "-32700", nil},
		{"not JSON-RPC", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: `{"hello":"world"}`}, 400, "-32600", nil},
		{"wrong jsonrpc version", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`}, 400, `\"jsonrpc\" must be \"2.0\"`, nil},
		{"batch outside 2025-03-26", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: "[" + list + "]", headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"}}, 400, "batches are only allowed", nil},
		{"unknown protocol version", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: list, headers: map[string]string{"Mcp-Protocol-Version": "1999-01-01"}}, 400, "unsupported MCP-Protocol-Version", nil},
		{"forged session", rawRequest{path: "/notes", token: tok, agent: "claude-code", session: "bm90LWEtc2Vzc2lvbg", body: list}, 404, "unknown or expired session", nil},
		{"foreign Host", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: list, headers: map[string]string{"Host": "evil.example.com"}}, 403, "Host header", nil},
		{"foreign Origin", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: list, headers: map[string]string{"Origin": "http://evil.example.com"}}, 403, "Origin", nil},
		{"Mcp-Method disagrees with body", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}`,
			headers: map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}}, 400, "Mcp-Method", nil},
		{"Mcp-Name disagrees with body", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}`,
			headers: map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "write_file"}}, 400, "Mcp-Name", nil},
		{"body too large", rawRequest{path: "/notes", token: tok, agent: "claude-code", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", 2<<20) + `"}}`}, 413, "max_body_bytes", nil},
		{"PUT", rawRequest{method: http.MethodPut, path: "/notes", token: tok, agent: "claude-code", body: list}, 405, "method not allowed", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.headers["Host"] != "" {
				// net/http takes Host from the request, not the header map.
				tc.req.headers = withoutHost(tc.req.headers)
				resp := h.doHost(tc.req, "evil.example.com")
				checkResponse(t, resp, tc.wantStatus, tc.wantInBody, tc.wantHeader)
				return
			}
			checkResponse(t, h.do(tc.req), tc.wantStatus, tc.wantInBody, tc.wantHeader)
		})
	}
}

func withoutHost(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != "Host" {
			out[k] = v
		}
	}
	return out
}

func (h *harness) doHost(r rawRequest, host string) *http.Response {
	req, err := http.NewRequest(http.MethodPost, h.url+r.path, strings.NewReader(r.body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("X-Agent-ID", r.agent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func checkResponse(t *testing.T, resp *http.Response, status int, inBody string, headers map[string]string) {
	t.Helper()
	body := string(readAll(t, resp))
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if !strings.Contains(body, inBody) {
		t.Fatalf("body %s does not contain %q", body, inBody)
	}
	for k, v := range headers {
		if got := resp.Header.Get(k); !strings.Contains(got, v) {
			t.Fatalf("%s = %q, want it to contain %q", k, got, v)
		}
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("security headers missing: %v", resp.Header)
	}
}

func TestSessionsAcrossReplicasAndSubjects(t *testing.T) {
	first := newHarness(t, harnessOptions{})
	second := newHarness(t, harnessOptions{share: first, key: first.key})
	other := newHarness(t, harnessOptions{share: first})
	alice := first.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	sid := first.openSession("/notes", alice, "claude-code")
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"replica"}}}`
	pv := map[string]string{"Mcp-Protocol-Version": "2025-06-18"}

	// Another replica with the same key serves the session.
	msgs := rpcMessages(t, second.do(rawRequest{path: "/notes", token: alice, agent: "claude-code", session: sid, headers: pv, body: call}))
	if len(msgs) != 1 || !strings.Contains(toJSON(msgs[0]), "replica") {
		t.Fatalf("second replica reply = %v", msgs)
	}
	// A replica with another key cannot open it.
	checkResponse(t, other.do(rawRequest{path: "/notes", token: alice, agent: "claude-code", session: sid, headers: pv, body: call}), 404, "unknown or expired session", nil)
	// Another subject presenting alice's session is rejected.
	mallory := first.token("mallory", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	checkResponse(t, first.do(rawRequest{path: "/notes", token: mallory, agent: "claude-code", session: sid, headers: pv, body: call}), 404, "unknown or expired session", nil)
	// The session is bound to its backend too.
	checkResponse(t, first.do(rawRequest{path: "/employees", token: alice, agent: "claude-code", session: sid, headers: pv, body: call}), 404, "unknown or expired session", nil)
	// A truncated id is unknown, not a crash.
	checkResponse(t, first.do(rawRequest{path: "/notes", token: alice, agent: "claude-code", session: sid[:len(sid)-4], headers: pv, body: call}), 404, "unknown or expired session", nil)

	// GET opens the server's stream on the session; it stays open until we leave.
	get := first.do(rawRequest{method: http.MethodGet, path: "/notes", token: alice, agent: "claude-code", session: sid, headers: pv})
	testutil.WantStatus(t, get, http.StatusOK)
	if ct := get.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("GET stream: Content-Type %q", ct)
	}
	get.Body.Close()

	// DELETE ends it; the backend then no longer knows it.
	del := first.do(rawRequest{method: http.MethodDelete, path: "/notes", token: alice, agent: "claude-code", session: sid, headers: pv})
	testutil.WantStatus(t, del, http.StatusOK)
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp := first.do(rawRequest{path: "/notes", token: alice, agent: "claude-code", session: sid, headers: pv, body: call})
		if resp.StatusCode == 404 || resp.StatusCode == 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still usable after DELETE: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
