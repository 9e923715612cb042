package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/internal/config"
)

// promptBackend is a real mcp-go server with one prompt, review.
func promptBackend(t *testing.T) string {
	t.Helper()
	s := server.NewMCPServer("prompty", "1.0.0", server.WithPromptCapabilities(false))
	s.AddPrompt(mcp.NewPrompt("review", mcp.WithPromptDescription("Review a change")),
		func(context.Context, mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return mcp.NewGetPromptResult("review", []mcp.PromptMessage{mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent("please review"))}), nil
		})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: server.NewStreamableHTTPServer(s)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp"
}

// In enforce, prompts/get of a prompt not approved is refused as lists hide
// it, whether a list showed it or not; once approved it is served.
func TestToolIntegrityHoldsPromptGet(t *testing.T) {
	url := promptBackend(t)
	w := newAdminWorld(t, withBackend("prompty", url), func(c *config.Config) {
		b := c.Backends["prompty"]
		b.ToolIntegrity = config.IntegrityEnforce
		c.Backends["prompty"] = b
	})
	tok := w.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	sid, err := mcpSession(w.url, "/prompty", tok, "claude-code")
	if err != nil {
		t.Fatal(err)
	}
	id := 0
	post := func(method, params string) string {
		t.Helper()
		id++
		status, _, body, err := mcpPost(w.url, "/prompty", tok, "claude-code", sid,
			fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params))
		if err != nil || status != http.StatusOK {
			t.Fatalf("%s: HTTP %d %v: %s", method, status, err, body)
		}
		return body
	}
	get := `{"name":"review"}`

	// Never listed: new, refused.
	if body := post("prompts/get", get); !strings.Contains(body, "held by tool integrity (new)") {
		t.Fatalf("prompts/get before any list: %s", body)
	}
	// Listed: recorded, still new, hidden and refused.
	if body := post("prompts/list", "{}"); strings.Contains(body, `"review"`) {
		t.Fatalf("prompts/list shows a prompt not approved: %s", body)
	}
	if body := post("prompts/get", get); !strings.Contains(body, "held by tool integrity (new)") || strings.Contains(body, "please review") {
		t.Fatalf("prompts/get of a listed, unapproved prompt: %s", body)
	}
	w.must(http.StatusOK, http.MethodPost, "/admin/v1/tool-integrity/prompty/approve", w.root, `{"kind":"prompt","name":"review"}`)
	if body := post("prompts/get", get); !strings.Contains(body, "please review") {
		t.Fatalf("prompts/get after approval: %s", body)
	}
}
