package gateway

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// TestRejectUnit: the one mapper from a rejection to an answer. Each form's
// status, headers and body, as clients (MCP SDKs reading RFC 6750 / RFC
// 9728 challenges, JSON-RPC peers) read them; a reason with quotes or
// control characters cannot break the challenge header.
func TestRejectUnit(t *testing.T) {
	g := unitGateway(t, visibleOnly{})
	meta := "https://gw.example.com/.well-known/oauth-protected-resource/notes"
	id7 := mcpgo.NewRequestId(int64(7))
	idS := mcpgo.NewRequestId("req-a")
	for _, tc := range []struct {
		name    string
		path    string
		r       *rejection
		status  int
		headers map[string]string // "" means absent
		body    map[string]any
	}{
		{"oauth error", "/notes", oauthRefusal(403, "access_denied", "agent \"x\" is disabled"), 403,
			map[string]string{"WWW-Authenticate": "", "Content-Type": "application/json"},
			map[string]any{"error": "access_denied", "error_description": "agent \"x\" is disabled"}},
		{"oauth error with a decision", "/notes", &rejection{form: formOAuth, status: 403, code: "access_denied", msg: "denied by policy", decisionID: "d-1"}, 403,
			map[string]string{"WWW-Authenticate": ""},
			map[string]any{"error": "access_denied", "error_description": "denied by policy", "decision_id": "d-1"}},
		{"oauth error with Retry-After", "/notes", &rejection{form: formOAuth, status: 503, code: "temporarily_unavailable", msg: "keys", headers: map[string]string{"Retry-After": "5"}}, 503,
			map[string]string{"Retry-After": "5", "WWW-Authenticate": ""},
			map[string]any{"error": "temporarily_unavailable", "error_description": "keys"}},
		{"no token", "/notes", &rejection{form: formNoToken, status: 401, code: "invalid_request", msg: "missing bearer token in Authorization header", meta: meta}, 401,
			map[string]string{"WWW-Authenticate": `Bearer resource_metadata="` + meta + `"`},
			map[string]any{"error": "invalid_request", "error_description": "missing bearer token in Authorization header"}},
		{"invalid token", "/notes", challengeRefusal(meta, "token expired"), 401,
			map[string]string{"WWW-Authenticate": `Bearer error="invalid_token", error_description="token expired", resource_metadata="` + meta + `"`},
			map[string]any{"error": "invalid_token", "error_description": "token expired"}},
		{"invalid token, hostile reason", "/notes", challengeRefusal(meta, "bad \"aud\"\\\r\nSet-Cookie: x=1 é"), 401,
			map[string]string{"WWW-Authenticate": `Bearer error="invalid_token", error_description="bad 'aud''''Set-Cookie: x=1 '", resource_metadata="` + meta + `"`, "Set-Cookie": ""},
			map[string]any{"error": "invalid_token", "error_description": "bad \"aud\"\\\r\nSet-Cookie: x=1 é"}},
		{"insufficient scope with a scope", "/notes/sub", scopeRefusal("mcp:write", "tools/call needs mcp:write", "d-2"), 403,
			map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope", scope="mcp:write", error_description="tools/call needs mcp:write", resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/notes"`},
			map[string]any{"error": "insufficient_scope", "error_description": "tools/call needs mcp:write", "decision_id": "d-2"}},
		{"insufficient scope, no scope", "/elsewhere", scopeRefusal("", `agent "a" has no access`, ""), 403,
			map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope", error_description="agent 'a' has no access", resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/elsewhere"`},
			map[string]any{"error": "insufficient_scope", "error_description": `agent "a" has no access`}},
		{"JSON-RPC error, integer id", "/notes", rpcRefusal(400, &id7, mcpgo.INVALID_PARAMS, "bad params"), 400,
			map[string]string{"Content-Type": "application/json", "WWW-Authenticate": ""},
			map[string]any{"jsonrpc": "2.0", "id": float64(7), "error": map[string]any{"code": float64(mcpgo.INVALID_PARAMS), "message": "bad params"}}},
		{"JSON-RPC error, string id", "/notes", rpcRefusal(404, &idS, mcpgo.INVALID_REQUEST, "unknown session"), 404,
			map[string]string{"Content-Type": "application/json"},
			map[string]any{"jsonrpc": "2.0", "id": "req-a", "error": map[string]any{"code": float64(mcpgo.INVALID_REQUEST), "message": "unknown session"}}},
		{"JSON-RPC error, no id", "/notes", rpcRefusal(400, nil, mcpgo.PARSE_ERROR, "not JSON"), 400,
			map[string]string{"Content-Type": "application/json"},
			map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": float64(mcpgo.PARSE_ERROR), "message": "not JSON"}}},
		{"JSON-RPC error with data and headers", "/notes",
			&rejection{form: formRPC, status: 429, id: &id7, rpc: CodeRateLimited, msg: "rate limit exceeded",
				data: map[string]any{"limit": "requests_per_minute", "retry_after": 3}, headers: map[string]string{"Retry-After": "3"}}, 429,
			map[string]string{"Retry-After": "3", "Content-Type": "application/json"},
			map[string]any{"jsonrpc": "2.0", "id": float64(7), "error": map[string]any{"code": float64(CodeRateLimited), "message": "rate limit exceeded",
				"data": map[string]any{"limit": "requests_per_minute", "retry_after": float64(3)}}}},
		{"method not allowed", "/notes",
			&rejection{form: formRPC, status: 405, rpc: mcpgo.INVALID_REQUEST, msg: "method not allowed", headers: map[string]string{"Allow": "GET, POST, DELETE"}}, 405,
			map[string]string{"Allow": "GET, POST, DELETE"},
			map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": float64(mcpgo.INVALID_REQUEST), "message": "method not allowed"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := unitCtx(t, http.MethodPost, tc.path, nil)
			if err := g.reject(c, tc.r); err != nil {
				t.Fatal(err)
			}
			resp := c.Response()
			if resp.StatusCode() != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode(), tc.status)
			}
			for name, want := range tc.headers {
				got := string(resp.Header.Peek(name))
				if name == "Content-Type" {
					got = mediaType(got)
				}
				if got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			var body map[string]any
			if err := json.Unmarshal(resp.Body(), &body); err != nil {
				t.Fatalf("body %q: %v", resp.Body(), err)
			}
			if !reflect.DeepEqual(body, tc.body) {
				t.Errorf("body %v, want %v", body, tc.body)
			}
		})
	}
}
