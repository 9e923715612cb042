package gateway

import (
	"github.com/mcpgw/mcpgw/internal/testutil"

	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
)

// A backend URL with a password and an api_key in its query: when the
// backend cannot be reached, neither reaches the caller's 502 body nor the
// gateway's log lines. The logger is a plain JSON handler, not the
// production one whose redactor would hide them anyway: the gateway itself
// must not write them.
func TestBackendURLSecretsNeverShown(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	leakyURL := "http://mcpuser:pw-hunter2@" + dead.Addr().String() + "/mcp?api_key=Q-SECRET-42&region=eu"
	dead.Close()
	logs := &testutil.SyncBuffer{}
	h := newHarness(t, harnessOptions{
		logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		mutate: func(c *config.Config) {
			c.Backends["leaky"] = config.Backend{URL: leakyURL, Paths: []string{"/leaky"}, AuthMethod: "none", TimeoutSeconds: 5}
			a := c.Agents["claude-code"]
			a.BackendAccess = append(a.BackendAccess, "leaky")
			c.Agents["claude-code"] = a
		},
	})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	secrets := []string{"Q-SECRET-42", "pw-hunter2", "mcpuser"}
	for _, tc := range []struct {
		name       string
		req        rawRequest
		wantStatus int
		wantInBody string
	}{
		{"relayed request", rawRequest{path: "/leaky", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`}, http.StatusBadGateway, "backend leaky is unreachable"},
		// A call makes the gateway list the backend's tools itself first.
		{"tool call", rawRequest{path: "/leaky", body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{}}}`}, http.StatusBadGateway, "backend leaky"},
		{"initialize", rawRequest{path: "/leaky", body: initBody}, http.StatusBadGateway, "backend leaky is unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.token, tc.req.agent = tok, "claude-code"
			resp := h.do(tc.req)
			body := string(readAll(t, resp))
			if resp.StatusCode != tc.wantStatus || !strings.Contains(body, tc.wantInBody) {
				t.Fatalf("HTTP %d %s, want %d containing %q", resp.StatusCode, body, tc.wantStatus, tc.wantInBody)
			}
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Errorf("the 502 body shows %q: %s", s, body)
				}
			}
		})
	}
	out := logs.String()
	if !strings.Contains(out, "backend failed") {
		t.Fatalf("the failure was not logged; the test proves nothing:\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the log shows %q:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "api_key=REDACTED") {
		t.Errorf("the log no longer names the URL's query parameters:\n%s", out)
	}
}
