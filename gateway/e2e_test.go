package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func toolNames(res *mcpgo.ListToolsResult) map[string]bool {
	out := map[string]bool{}
	for _, tl := range res.Tools {
		out[tl.Name] = true
	}
	return out
}

func TestEndToEndSessionToolsAndProgress(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx := ctxT(t)
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	c := h.client("/notes", tok, "claude-code")
	initialize(ctx, t, c)
	if c.GetSessionId() == "" {
		t.Fatal("gateway issued no Mcp-Session-Id")
	}
	tools, err := c.ListTools(ctx, mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if names := toolNames(tools); !names["echo"] || !names["long_running"] {
		t.Fatalf("tools/list = %v, want echo and long_running", names)
	}
	req := mcpgo.CallToolRequest{}
	req.Params.Name = "echo"
	req.Params.Arguments = map[string]any{"message": "hello through the gateway"}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("tools/call echo: %v", err)
	}
	if txt := res.Content[0].(mcpgo.TextContent).Text; txt != "hello through the gateway" {
		t.Fatalf("echo = %q", txt)
	}

	// Progress must reach the client before the result does.
	var mu sync.Mutex
	var progress []float64
	c.OnNotification(func(n mcpgo.JSONRPCNotification) {
		if n.Method == "notifications/progress" {
			mu.Lock()
			defer mu.Unlock()
			if p, ok := n.Params.AdditionalFields["progress"].(float64); ok {
				progress = append(progress, p)
			}
		}
	})
	lr := mcpgo.CallToolRequest{}
	lr.Params.Name = "long_running"
	lr.Params.Arguments = map[string]any{"steps": 3, "step_ms": 30}
	lr.Params.Meta = &mcpgo.Meta{ProgressToken: "p1"}
	res, err = c.CallTool(ctx, lr)
	if err != nil {
		t.Fatalf("tools/call long_running: %v", err)
	}
	// mcp-go hands notifications to OnNotification asynchronously, so the
	// client may see the last one after CallTool returns; the raw SSE test
	// below checks order on the wire.
	var got []float64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		got = append(got[:0], progress...)
		mu.Unlock()
		if len(got) == 3 {
			break
		}
	}
	if len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("progress = %v, want [1 2 3]", got)
	}
	if txt := res.Content[0].(mcpgo.TextContent).Text; txt != "done after 3 steps" {
		t.Fatalf("long_running = %q", txt)
	}
}
