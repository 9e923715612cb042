package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/mcp"
)

// A shutdown lets a running tool call finish its stream, while new
// connections are no longer accepted.
func TestShutdownLetsRunningStreamsFinish(t *testing.T) {
	w := newAdminWorld(t)
	tok := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	sid := w.openSession("/notes", tok, "claude-code")
	resp := w.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"},
		body:    `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"long_running","arguments":{"steps":4,"step_ms":200},"_meta":{"progressToken":"s"}}}`})
	r := mcp.NewEventReader(resp.Body)
	next := func() map[string]any {
		for {
			ev, err := r.Next()
			if ev.HasData {
				var m map[string]any
				if json.Unmarshal(ev.Data, &m) != nil {
					t.Fatalf("bad event %s", ev.Data)
				}
				return m
			}
			if err != nil {
				return nil
			}
		}
	}
	if m := next(); m["method"] != "notifications/progress" {
		t.Fatalf("first event = %v, want progress", m)
	}

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closed <- w.srv.Close(ctx)
	}()
	// New connections are refused once shutdown has begun.
	deadline := time.Now().Add(2 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, w.url+"/healthz", nil)
		req.Close = true
		r2, err := http.DefaultClient.Do(req)
		if err != nil {
			break
		}
		r2.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("gateway still accepts connections during shutdown")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var result map[string]any
	for m := next(); m != nil; m = next() {
		if m["id"] != nil {
			result = m
		}
	}
	if result == nil || !strings.Contains(toJSON(result), "done after 4 steps") {
		t.Fatalf("the running call did not finish during shutdown: %v", result)
	}
	select {
	case <-closed:
	case <-time.After(6 * time.Second):
		t.Fatal("shutdown did not return")
	}
}
