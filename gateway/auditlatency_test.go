package gateway

import (
	"net/http"
	"testing"
	"time"
)

// TestDecisionRecordsCarryLatencyAndOutcome: the gateway writes a call's
// decision records after the relay, so each says how long the request took
// and how it ended, allowed or denied.
func TestDecisionRecordsCarryLatencyAndOutcome(t *testing.T) {
	w := newAdminWorld(t)
	viewer := w.token("vicky", []string{"mcp:read"}, []string{"mcp-viewers"}, "claude-client")
	if _, err := mcpEchoOnce(w.url, "/notes", viewer, "claude-code", "hello"); err != nil {
		t.Fatalf("echo: %v", err)
	}
	sid, err := mcpSession(w.url, "/notes", viewer, "claude-code")
	if err != nil {
		t.Fatal(err)
	}
	status, _, _, err := mcpPost(w.url, "/notes", viewer, "claude-code", sid,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"/x","content":"y"}}}`)
	// Only mcp:read: refused for its scope (403 insufficient_scope).
	if err != nil || status != http.StatusForbidden {
		t.Fatalf("write_file: %d %v", status, err)
	}
	outcomes := map[string]bool{}
	defer func() { t.Logf("outcomes seen: %v", outcomes) }()
	eventually(t, 30*time.Second, "decision records of vicky's calls in the trail", func() bool {
		recs, _ := w.auditPage(w.root, "kind=decision&subject=vicky")
		for _, r := range recs {
			if r.LatencyMS <= 0 || r.Outcome == "" {
				t.Fatalf("decision record without latency or outcome: %+v", r)
			}
			outcomes[r.Outcome+map[bool]string{true: "/allow", false: "/deny"}[r.Allow]] = true
		}
		return outcomes["ok/allow"] && outcomes["denied/deny"]
	})
}
