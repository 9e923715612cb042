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
