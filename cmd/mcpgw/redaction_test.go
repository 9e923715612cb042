package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// A full demo session at debug level: sessions, a streamed tool call, a
// token exchange, a policy denial, an admin change carrying a secret. No
// token, secret, key or password may appear in the logs or the audit trail.
func TestNoSecretInLogsOrAuditForADemoSession(t *testing.T) {
	t.Setenv("MCPGW_LOG__LEVEL", "debug")
	t.Setenv("MCPGW_LOG__FORMAT", "json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs testutil.SyncBuffer
	type world struct {
		url    string
		tokens map[string]string
		w      *demo.World
	}
	ready := make(chan world, 1)
	done := make(chan error, 1)
	go func() {
		done <- demoMain(ctx, "127.0.0.1:0", "../../policies", &out, &logs, func(url string, tokens map[string]string, w *demo.World) {
			ready <- world{url, tokens, w}
		})
	}()
	var w world
	select {
	case w = <-ready:
	case err := <-done:
		t.Fatalf("demo stopped early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("demo not ready")
	}
	call := func(method, path, token, body string, headers map[string]string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, w.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	agent := map[string]string{"X-Agent-ID": "claude-code"}
	alice, bob, carol := w.tokens["ALICE"], w.tokens["BOB"], w.tokens["CAROL"]

	// Cross App Access exchange, a denial, a stateful session with progress.
	if code, _, body := call("POST", "/employees", alice, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_employee","arguments":{"id":"e1"}}}`, agent); code != 200 || !strings.Contains(body, "Ada") {
		t.Fatalf("alice get_employee: %d %s", code, body)
	}
	call("POST", "/employees", bob, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_employee","arguments":{"id":"*"}}}`, agent)
	_, hdr, _ := call("POST", "/notes", carol, `{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, agent)
	session := map[string]string{"X-Agent-ID": "claude-code", "Mcp-Session-Id": hdr.Get("Mcp-Session-Id"), "Mcp-Protocol-Version": "2025-06-18"}
	call("POST", "/notes", carol, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, session)
	if code, _, body := call("POST", "/notes", carol, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"long_running","arguments":{"steps":2,"step_ms":10},"_meta":{"progressToken":"x"}}}`, session); code != 200 || !strings.Contains(body, "done after 2 steps") {
		t.Fatalf("long_running: %d %s", code, body)
	}
	// A rejected token is logged about, never echoed.
	call("POST", "/notes", alice+"tampered", `{"jsonrpc":"2.0","id":5,"method":"ping"}`, agent)

	// An admin change that carries a secret.
	const apiKey = "demo-api-key-0123456789abcdef"
	if code, _, body := call("PUT", "/admin/v1/backends/wiki", carol, `{"url":"http://127.0.0.1:9/mcp","auth_method":"pre-shared-key","auth_config":{"api_key":"`+apiKey+`"}}`, nil); code != 201 {
		t.Fatalf("admin PUT: %d %s", code, body)
	}
	if code, _, body := call("GET", "/admin/v1/backends/wiki", carol, "", nil); code != 200 || strings.Contains(body, apiKey) {
		t.Fatalf("admin GET returned the secret or failed: %d %s", code, body)
	}
	// The audit trail is flushed in batches; wait for the decisions.
	var audit string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, _, audit = call("GET", "/admin/v1/audit?limit=1000", carol, "", nil)
		if strings.Count(audit, `"kind":"decision"`) >= 5 && strings.Contains(audit, `"kind":"change"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit trail incomplete: %s", audit)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo stop: %v", err)
	}

	var jwk struct {
		D string `json:"d"`
	}
	if err := json.Unmarshal([]byte(w.w.AgentKeyJWK), &jwk); err != nil || jwk.D == "" {
		t.Fatalf("agent key: %v", err)
	}
	secrets := map[string]string{
		"alice's token": alice, "bob's token": bob, "carol's token": carol,
		"HR client secret": w.w.HRClientSecret, "agent private key": jwk.D, "admin-set API key": apiKey,
	}
	jwt := regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.`)
	for where, text := range map[string]string{"logs": logs.String(), "audit trail": audit} {
		if len(text) < 200 {
			t.Fatalf("%s suspiciously empty: %q", where, text)
		}
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains %s", where, what)
			}
		}
		if m := jwt.FindString(text); m != "" {
			t.Errorf("%s contains a JWT-shaped string %q…", where, m[:20])
		}
	}
}
