package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testutil"
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
	testutil.Eventually(t, 30*time.Second, "decision records of vicky's calls in the trail", func() bool {
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

// TestAuditHTTPCollector: audit.http posts the trail to a collector with
// its credential header, decisions included.
func TestAuditHTTPCollector(t *testing.T) {
	var (
		mu   sync.Mutex
		got  []audit.Record
		auth []string
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []audit.Record
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got, auth = append(got, batch...), append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	t.Cleanup(collector.Close)
	w := newAdminWorld(t, func(cfg *config.Config) {
		cfg.Audit.HTTP = config.AuditHTTP{URL: collector.URL + "/audit", Headers: map[string]string{"Authorization": "Bearer collector-secret"}}
	})
	viewer := w.token("vicky", []string{"mcp:read"}, []string{"mcp-viewers"}, "claude-client")
	if _, err := mcpEchoOnce(w.url, "/notes", viewer, "claude-code", "hello"); err != nil {
		t.Fatalf("echo: %v", err)
	}
	testutil.Eventually(t, 30*time.Second, "vicky's decisions at the collector", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(got, func(r audit.Record) bool {
			return r.Kind == audit.KindDecision && r.Subject == "vicky" && r.Allow && r.Outcome == "ok"
		})
	})
	mu.Lock()
	defer mu.Unlock()
	if auth[0] != "Bearer collector-secret" {
		t.Fatalf("collector got Authorization %q", auth[0])
	}
}
