package gateway

import (
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// A shadow policy that would allow what the active one denies: the call is
// still denied, and the disagreement lands in the audit trail tied to the
// enforced decision.
func TestShadowDisagreementIsAudited(t *testing.T) {
	w := newAdminWorld(t, func(c *config.Config) {
		c.Policy.Shadow = "../testdata/policy/allow-all"
	})
	viewer := w.token("vera", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "claude-client")
	sid := w.openSession("/notes", viewer, "claude-code")
	msgs := rpcMessages(t, w.do(rawRequest{path: "/notes", token: viewer, agent: "claude-code", session: sid,
		headers: map[string]string{"Mcp-Protocol-Version": "2025-06-18"},
		body:    `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"/srv/mcp/shared/x","content":"y"}}}`}))
	code, _ := rpcErrorCode(msgs[0])
	if code != -32003 {
		t.Fatalf("the active policy must still deny: %v", msgs)
	}
	enforcedID := msgs[0]["error"].(map[string]any)["data"].(map[string]any)["decision_id"]

	var shadow []audit.Record
	testutil.Eventually(t, 5*time.Second, "a shadow record in the audit trail", func() bool {
		shadow, _ = w.auditPage(w.root, "kind=shadow")
		return len(shadow) > 0
	})
	r := shadow[0]
	if r.DecisionID != enforcedID || !r.Allow || r.Tool != "write_file" || r.Subject != "vera" || len(r.Reasons) == 0 {
		t.Fatalf("shadow record %+v, want the enforced decision %v with the shadow's allow", r, enforcedID)
	}
}
