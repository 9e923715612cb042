package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

func TestProtectedResourceMetadata(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, tc := range []struct{ path, resource string }{
		{"/.well-known/oauth-protected-resource", h.url},
		{"/.well-known/oauth-protected-resource/notes", h.url + "/notes"},
		{"/.well-known/oauth-protected-resource/employees", h.url + "/employees"},
	} {
		resp, err := http.Get(h.url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Resource               string   `json:"resource"`
			AuthorizationServers   []string `json:"authorization_servers"`
			ScopesSupported        []string `json:"scopes_supported"`
			BearerMethodsSupported []string `json:"bearer_methods_supported"`
		}
		err = json.NewDecoder(resp.Body).Decode(&meta)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", tc.path, resp.StatusCode, err)
		}
		if meta.Resource != tc.resource || len(meta.AuthorizationServers) != 1 || meta.AuthorizationServers[0] != h.idp.Issuer() ||
			fmt.Sprint(meta.BearerMethodsSupported) != "[header]" || fmt.Sprint(meta.ScopesSupported) != "[mcp:read mcp:write]" {
			t.Fatalf("%s = %+v", tc.path, meta)
		}
	}
	resp, err := http.Get(h.url + "/.well-known/oauth-protected-resource/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	testutil.WantStatus(t, resp, http.StatusNotFound)
}

// A backend that is down or too slow gives a JSON-RPC error naming it,
// promptly: 502 and 504, never a hang.
func TestBackendFailuresNameTheBackend(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String() + "/mcp"
	dead.Close()
	slowLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	go func() { _ = slow.Serve(slowLn) }()
	t.Cleanup(func() { close(release); _ = slow.Close() })

	h := newHarness(t, harnessOptions{mutate: func(c *config.Config) {
		c.Backends["gone"] = config.Backend{URL: deadURL, Paths: []string{"/gone"}, AuthMethod: "none"}
		c.Backends["sleepy"] = config.Backend{URL: "http://" + slowLn.Addr().String() + "/mcp", Paths: []string{"/sleepy"}, AuthMethod: "none", TimeoutSeconds: 1}
		a := c.Agents["claude-code"]
		a.BackendAccess = append(a.BackendAccess, "gone", "sleepy")
		c.Agents["claude-code"] = a
	}})
	tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
	for _, tc := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/gone", 502, "backend gone is unreachable"},
		{"/sleepy", 504, "backend sleepy did not answer in time"},
	} {
		start := time.Now()
		resp := h.do(rawRequest{path: tc.path, token: tok, agent: "claude-code", body: `{"jsonrpc":"2.0","id":"x","method":"tools/list"}`})
		msgs := rpcMessages(t, resp)
		code, msg := rpcErrorCode(msgs[0])
		if resp.StatusCode != tc.status || code != -32010 || !strings.HasPrefix(msg, tc.msg) || msgs[0]["id"] != "x" {
			t.Fatalf("%s: HTTP %d, %v", tc.path, resp.StatusCode, msgs)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("%s took %v", tc.path, took)
		}
	}
}

// A backend's error that is not JSON-RPC (the TypeScript SDK's plain-text
// "Invalid session ID", a proxy's HTML page) reaches the client as a
// JSON-RPC error with the request's id, keeping a 4xx status and turning a
// 5xx into 502; the page itself is only in the gateway's log.
func TestBackendErrorPagesBecomeJSONRPC(t *testing.T) {
	for _, tc := range []struct {
		name, contentType string
		status            int
		body              string
		method, request   string
		wantStatus        int
		wantID            any
	}{
		{"TypeScript SDK unknown session", "text/plain", 404, "Invalid session ID", "POST", `{"jsonrpc":"2.0","id":"x","method":"tools/list"}`, 404, "x"},
		{"proxy HTML page", "text/html", 502, "<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>", "POST", `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`, 502, float64(7)},
		{"plain-text crash", "text/plain; charset=utf-8", 500, "panic: runtime error", "POST", `{"jsonrpc":"2.0","id":"y","method":"tools/list"}`, 502, "y"},
		{"empty 405 to a GET", "", 405, "", "GET", "", 405, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := fixedBackend(t, tc.contentType, tc.status, tc.body)
			logs, logger := newLogBuffer()
			h := newHarness(t, harnessOptions{logger: logger, mutate: withBackend("fixed", backend)})
			tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
			resp := h.do(rawRequest{method: tc.method, path: "/fixed", token: tok, agent: "claude-code", body: tc.request})
			testutil.WantStatus(t, resp, tc.wantStatus)
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q, want application/json", ct)
			}
			msgs := rpcMessages(t, resp)
			code, msg := rpcErrorCode(msgs[0])
			if len(msgs) != 1 || code != -32010 || msgs[0]["id"] != tc.wantID ||
				!strings.Contains(msg, fmt.Sprintf("backend fixed answered HTTP %d", tc.status)) {
				t.Fatalf("reply %v, want one -32010 naming the backend and HTTP %d, id %v", msgs, tc.status, tc.wantID)
			}
			if tc.body != "" && strings.Contains(msg, tc.body[:5]) {
				t.Errorf("the backend's page reached the client: %q", msg)
			}
			// The operator sees the page's start, on one line.
			lines := logs.lines("mcp request")
			if len(lines) != 1 || lines[0]["status"] != float64(tc.wantStatus) || lines[0]["backend"] != "fixed" {
				t.Fatalf("request log %v", lines)
			}
			reason, _ := lines[0]["reason"].(string)
			_, ex, _ := strings.Cut(reason, "not JSON-RPC: ")
			if !strings.HasPrefix(reason, fmt.Sprintf("backend answered HTTP %d", tc.status)) || strings.ContainsAny(reason, "\n\r") ||
				(tc.body != "" && !strings.HasPrefix(tc.body, strings.Fields(ex)[0])) {
				t.Errorf("request log reason %q for the page %q", reason, tc.body)
			}
		})
	}
}
