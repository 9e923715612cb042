package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/testutil"
)

// A tools/call's decision reads the tool's readOnlyHint from the catalog.
// A replica that never relayed the backend's tools/list (a fresh one, or
// one just restarted) fetches the list itself before deciding, so the same
// call gets the same decision on every replica: with mcp:read alone, a
// read-only tool is allowed and another is not, whichever gateway answers.
func TestFreshReplicaDecidesReadOnlyCallsAlike(t *testing.T) {
	warm := newHarness(t, harnessOptions{authorizer: shippedEngine(t)})
	fresh := newHarness(t, harnessOptions{share: warm, authorizer: shippedEngine(t)})
	readOnly := warm.token("dave", []string{"mcp:read"}, []string{"mcp-super-admins"}, "claude-client")
	pv := map[string]string{"Mcp-Protocol-Version": "2025-06-18"}

	// Only the warm replica has seen the list.
	sid := warm.openSession("/employees", readOnly, "claude-code")
	resp := warm.do(rawRequest{path: "/employees", token: readOnly, agent: "claude-code", session: sid, headers: pv,
		body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
	testutil.WantStatus(t, resp, http.StatusOK)
	readAll(t, resp)

	tests := []struct {
		tool       string
		wantStatus int // 403 insufficient_scope when mcp:write is demanded
	}{
		{tool: "get_employee", wantStatus: http.StatusOK},
		{tool: "update_employee", wantStatus: http.StatusForbidden},
	}
	for _, tc := range tests {
		for name, h := range map[string]*harness{"warm": warm, "fresh": fresh} {
			t.Run(tc.tool+" on "+name, func(t *testing.T) {
				sid := h.openSession("/employees", readOnly, "claude-code")
				resp := h.do(rawRequest{path: "/employees", token: readOnly, agent: "claude-code", session: sid, headers: pv,
					body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"` + tc.tool + `","arguments":{"id":"e2","title":"CTO"}}}`})
				body := readAll(t, resp)
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("%s on the %s replica: HTTP %d, want %d: %s", tc.tool, name, resp.StatusCode, tc.wantStatus, body)
				}
				// Allowed means answered by the tool: a replica that could
				// not find the tool would answer 200 with a JSON-RPC error.
				if tc.wantStatus == http.StatusOK && (!strings.Contains(string(body), `"result"`) || strings.Contains(string(body), `"error"`)) {
					t.Fatalf("%s on the %s replica: %s, want the tool's result", tc.tool, name, body)
				}
			})
		}
	}
}
