package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// Two replicas on one PostgreSQL database agree on tool integrity: what one
// approves the other serves once it follows the store, a change one sees is
// held on both and announced once, and an approval on either releases it.
func TestReplicasAgreeOnToolIntegrity(t *testing.T) {
	dsn, idp, notes, ok := replicaWorld(t)
	if !ok {
		return
	}
	ctx := t.Context()
	enforce := func(cfg *config.Config) {
		withIntegrity(config.IntegrityEnforce)(cfg)
		cfg.Agents["claude-code"] = config.Agent{ClientID: "claude-client", Scopes: []string{"mcp:read", "mcp:write"}, BackendAccess: []string{"notes"}}
	}
	one, two := startReplica(t, dsn, idp, notes.URL, enforce), startReplica(t, dsn, idp, notes.URL, enforce)
	h1 := &harness{t: t, idp: idp, url: one.URL}
	root := h1.token("root", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "admin-cli")
	carol := h1.token("carol", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	on1, on2 := newMCPUser(t, one.URL, carol), newMCPUser(t, two.URL, carol)
	decide := func(srv *Server, action, body string) {
		t.Helper()
		resp := (&harness{t: t, url: srv.URL}).do(rawRequest{path: "/admin/v1/tool-integrity/notes/" + action, token: root,
			headers: map[string]string{"Content-Type": "application/json"}, body: body})
		testutil.WantStatus(t, resp, http.StatusOK)
	}
	follow := func(srv *Server) {
		t.Helper()
		// What the poll loop does every store.poll_interval, done now.
		if err := srv.Gateway.FollowPins(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Both replicas remember that nothing is approved.
	if a, b := on1.tools(), on2.tools(); len(a) != 0 || len(b) != 0 {
		t.Fatalf("before any approval: %v and %v", a, b)
	}
	decide(one, "approve", `{"all":true}`)
	follow(two)
	if got := on2.tools(); !slices.Equal(got, notesTools) {
		t.Fatalf("replica two after replica one approved: %v", got)
	}

	rugPull(t, notes)
	if got := on2.tools(); slices.Contains(got, "echo") {
		t.Fatalf("replica two lists the changed echo: %v", got)
	}
	if msg := on1.echo(); !strings.Contains(msg, "changed: description") {
		t.Fatalf("replica one calls the changed echo: %q", msg)
	}
	recs, _, err := one.Store.QueryAudit(ctx, audit.Query{Kind: audit.KindToolChange, Backend: "notes"})
	if err != nil {
		t.Fatal(err)
	}
	changes := slices.DeleteFunc(recs, func(r audit.Record) bool { return !slices.Contains(r.Reasons, "changed: description") })
	if len(changes) != 1 {
		t.Errorf("the change was announced %d times, want once", len(changes))
	}

	decide(two, "approve", fmt.Sprintf(`{"kind":"tool","name":"echo","hash":%q}`, pendingHash(t, two, root)))
	follow(one)
	if got := on1.tools(); !slices.Equal(got, notesTools) {
		t.Fatalf("replica one after replica two approved the change: %v", got)
	}
	if msg := on1.echo(); msg != "" {
		t.Fatalf("replica one refuses the approved echo: %q", msg)
	}
}

// pendingHash is the current hash of the one pending item.
func pendingHash(t *testing.T, srv *Server, token string) string {
	t.Helper()
	resp := (&harness{t: t, url: srv.URL}).do(rawRequest{method: http.MethodGet, path: "/admin/v1/tool-integrity/notes/pending", token: token})
	var p pendingView
	decodeJSON(t, readAll(t, resp), &p)
	if len(p.Pending) != 1 {
		t.Fatalf("pending = %+v, want one item", p.Pending)
	}
	return p.Pending[0].CurrentHash
}
