package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// apiAs calls the admin API with a Content-Type of the caller's choosing.
func (w *adminWorld) apiAs(contentType, method, path, token, body string) (int, []byte) {
	w.t.Helper()
	req, err := http.NewRequest(method, w.url+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAll(w.t, resp)
}

// changeLog lists the change records the extra audit sink received, as
// "subject action kind/name".
func (w *adminWorld) changeLog() []string {
	var out []string
	for _, r := range w.sink.changes() {
		out = append(out, r.Subject+" "+string(r.Action)+" "+string(r.ObjectKind)+"/"+r.ObjectName)
	}
	return out
}

// A PUT replaces the whole entry, so one that leaves out an agent's
// client_id would unbind it from its OAuth client without a word: refused
// unless asked for. PATCH changes only what it names.
func TestAdminUnbindNeedsConsentAndPatchMerges(t *testing.T) {
	w := newAdminWorld(t)
	w.must(http.StatusCreated, http.MethodPut, "/admin/v1/agents/bot", w.root,
		`{"agent_id":"bot-ide","client_id":"bot-client","client_secret":"cs-1","scopes":["mcp:read"],"backend_access":["notes"]}`)

	refusals := []struct {
		name, method, path, contentType, body, want string
	}{
		{"PUT without client_id", http.MethodPut, "/admin/v1/agents/bot", "application/json",
			`{"agent_id":"bot-ide","scopes":["mcp:read"],"backend_access":["notes"]}`,
			`agents.bot.client_id: this write removes the agent's client binding (client_id \"bot-client\"), after which tokens of any client could use it; send client_id to keep it (PATCH changes only the fields it names), or add ?unbind=true to remove it`},
		{"PUT with an empty client_id", http.MethodPut, "/admin/v1/agents/bot", "application/json",
			`{"agent_id":"bot-ide","client_id":"","backend_access":["notes"]}`, "agents.bot.client_id: this write removes the agent's client binding"},
		{"PUT without agent_id", http.MethodPut, "/admin/v1/agents/bot", "application/json",
			`{"client_id":"bot-client","backend_access":["notes"]}`,
			`agents.bot.agent_id: left out, it would change from \"bot-ide\" to \"bot\" (the entry's name); send agent_id (PATCH changes only the fields it names)`},
		{"PATCH removing client_id", http.MethodPatch, "/admin/v1/agents/bot", "application/merge-patch+json",
			`{"client_id":null}`, "agents.bot.client_id: this write removes the agent's client binding"},
		{"PATCH that is not an object", http.MethodPatch, "/admin/v1/agents/bot", "application/merge-patch+json",
			`["scopes"]`, "request body: a merge patch must be a JSON object naming the fields to change (null removes one)"},
		{"PATCH as text", http.MethodPatch, "/admin/v1/agents/bot", "text/plain",
			`{"description":"x"}`, "Content-Type must be application/json or application/merge-patch+json"},
		{"unbind that is not a boolean", http.MethodPut, "/admin/v1/agents/bot?unbind=yes", "application/json",
			`{"agent_id":"bot-ide","backend_access":["notes"]}`, "query parameter unbind: want true or false"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			status, body := w.apiAs(tt.contentType, tt.method, tt.path, w.root, tt.body)
			if status/100 != 4 || !strings.Contains(string(body), tt.want) {
				t.Fatalf("status %d body %s, want a refusal saying %q", status, body, tt.want)
			}
		})
	}
	if status, body := w.apiAs("application/merge-patch+json", http.MethodPatch, "/admin/v1/agents/nobody", w.root, `{"description":"x"}`); status != http.StatusNotFound {
		t.Fatalf("PATCH of a missing agent: %d %s", status, body)
	}
	if status, _ := w.apiAs("application/merge-patch+json", http.MethodPatch, "/admin/v1/agents/bot", w.admin, `{"description":"x"}`); status != http.StatusForbidden {
		t.Fatalf("PATCH by a read-only admin: %d", status)
	}

	// PATCH changes the description and scopes; the client binding, the
	// agent id and the secret GET never shows stay.
	status, body := w.apiAs("application/merge-patch+json", http.MethodPatch, "/admin/v1/agents/bot", w.root, `{"description":"patched","scopes":[]}`)
	if status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", status, body)
	}
	ctx := context.Background()
	e, err := w.srv.Store.GetAgent(ctx, "bot")
	if err != nil {
		t.Fatal(err)
	}
	if a := e.Value; a.Description != "patched" || a.ClientID != "bot-client" || a.AgentID != "bot-ide" || a.ClientSecret != "cs-1" || a.Scopes == nil || len(a.Scopes) != 0 {
		t.Fatalf("after PATCH: %+v (scopes nil: %v)", a, a.Scopes == nil)
	}
	// null removes: scopes absent again means the token's scopes decide.
	w.mustAs(http.StatusOK, "application/json", http.MethodPatch, "/admin/v1/agents/bot", `{"scopes":null,"client_secret":null}`)
	if e, _ = w.srv.Store.GetAgent(ctx, "bot"); e.Value.Scopes != nil || e.Value.ClientSecret != "" {
		t.Fatalf("after PATCH with nulls: scopes %#v, secret kept %v", e.Value.Scopes, e.Value.ClientSecret != "")
	}

	// Asked for, the binding goes.
	w.mustAs(http.StatusOK, "application/json", http.MethodPut, "/admin/v1/agents/bot?unbind=true", `{"agent_id":"bot-ide","backend_access":["notes"]}`)
	if e, _ = w.srv.Store.GetAgent(ctx, "bot"); e.Value.ClientID != "" {
		t.Fatalf("client_id after ?unbind=true: %q", e.Value.ClientID)
	}
	want := []string{"root create agent/bot", "root update agent/bot", "root update agent/bot", "root update agent/bot"}
	if got := w.changeLog(); !slices.Equal(got, want) {
		t.Fatalf("change records %v, want %v", got, want)
	}
}

func (w *adminWorld) mustAs(want int, contentType, method, path, body string) []byte {
	w.t.Helper()
	status, b := w.apiAs(contentType, method, path, w.root, body)
	if status != want {
		w.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, b)
	}
	return b
}

// The Okta MCP adapter's admin routes, on the same store, policy and audit
// as /admin/v1.
func TestAdminAdapterRoutes(t *testing.T) {
	w := newAdminWorld(t)
	const agent = `{"agent_name":"copilot","agent_id":"copilot-ide","client_id":"copilot-client","client_secret":"cs-9","backend_access":["notes"],"enabled":true}`

	// The same authorization as /admin/v1: no token, a reader, nobody.
	if status, _, _ := w.api(http.MethodGet, "/api/admin/agents", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("list without a token: %d", status)
	}
	if status, _, body := w.api(http.MethodPost, "/api/admin/agents", w.admin, agent); status != http.StatusForbidden || !strings.Contains(string(body), "decision_id") {
		t.Fatalf("create by a read-only admin: %d %s", status, body)
	}
	if status, _, _ := w.api(http.MethodGet, "/api/admin/backends", w.nobody, ""); status != http.StatusForbidden {
		t.Fatalf("list by nobody: %d", status)
	}

	// Create, shown as the adapter showed it, secrets hidden.
	var created map[string]any
	decodeJSON(t, w.must(http.StatusCreated, http.MethodPost, "/api/admin/agents", w.root, agent), &created)
	if created["agent_name"] != "copilot" || created["client_id"] != "copilot-client" || created["client_secret"] != secrets.Placeholder {
		t.Fatalf("created %v", created)
	}
	if status, _, body := w.api(http.MethodPost, "/api/admin/agents", w.root, agent); status != http.StatusConflict ||
		!strings.Contains(string(body), "agents.copilot: already exists; PUT /api/admin/agents/copilot changes it") {
		t.Fatalf("second create: %d %s", status, body)
	}
	if status, _, body := w.api(http.MethodPost, "/api/admin/agents", w.root, `{"client_id":"x"}`); status != http.StatusBadRequest ||
		!strings.Contains(string(body), "agent_name: required: the name of the new entry") {
		t.Fatalf("create without a name: %d %s", status, body)
	}

	// The agent works at once (it sets no scopes: the token's decide).
	user := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "copilot-client")
	if status, err := mcpEchoOnce(w.url, "/notes", user, "copilot-ide", "via the adapter's admin API"); err != nil {
		t.Fatalf("call through the created agent: %d %v", status, err)
	}

	// Update merges: only the fields sent change.
	var updated map[string]any
	decodeJSON(t, w.must(http.StatusOK, http.MethodPut, "/api/admin/agents/copilot", w.root, `{"description":"merged","enabled":false}`), &updated)
	e, err := w.srv.Store.GetAgent(context.Background(), "copilot")
	if err != nil {
		t.Fatal(err)
	}
	if a := e.Value; a.Description != "merged" || a.IsEnabled() || a.ClientID != "copilot-client" || a.ClientSecret != "cs-9" || a.AgentID != "copilot-ide" {
		t.Fatalf("after merge: %+v", a)
	}
	if updated["description"] != "merged" || updated["agent_name"] != "copilot" {
		t.Fatalf("update answered %v", updated)
	}
	if status, _, body := w.api(http.MethodPut, "/api/admin/agents/copilot", w.root, `{"client_id":null}`); status != http.StatusBadRequest ||
		!strings.Contains(string(body), "removes the agent's client binding") {
		t.Fatalf("merge unbinding the client: %d %s", status, body)
	}
	if status, _, _ := w.api(http.MethodPut, "/api/admin/agents/nobody", w.root, `{"description":"x"}`); status != http.StatusNotFound {
		t.Fatalf("update of a missing agent: %d", status)
	}

	// Backends: create, and a merge that re-points the URL while keeping
	// the stored key is refused as on /admin/v1.
	w.must(http.StatusCreated, http.MethodPost, "/api/admin/backends", w.root,
		`{"backend_name":"wiki","url":"`+w.notes.URL+`","paths":["/wiki"],"auth_method":"static-key","auth_config":{"api_key":"wk-1"}}`)
	if status, _, body := w.api(http.MethodPut, "/api/admin/backends/wiki", w.root, `{"url":"http://127.0.0.1:9/mcp"}`); status != http.StatusBadRequest ||
		!strings.Contains(string(body), "backends.wiki.auth_config.api_key: the destination changed (url); give the secret again") {
		t.Fatalf("re-pointing merge: %d %s", status, body)
	}

	// List, then delete.
	var list struct {
		Agents []map[string]any `json:"agents"`
	}
	decodeJSON(t, w.must(http.StatusOK, http.MethodGet, "/api/admin/agents", w.root, ""), &list)
	var names []string
	for _, a := range list.Agents {
		names = append(names, a["agent_name"].(string))
		if s, ok := a["client_secret"]; ok && s != secrets.Placeholder {
			t.Errorf("list shows a secret: %v", a)
		}
	}
	if !slices.Contains(names, "copilot") || !slices.Contains(names, "claude-code") {
		t.Fatalf("listed %v", names)
	}
	var gone map[string]string
	decodeJSON(t, w.must(http.StatusOK, http.MethodDelete, "/api/admin/agents/copilot", w.root, ""), &gone)
	if gone["message"] != "Agent 'copilot' deleted" {
		t.Fatalf("delete answered %v", gone)
	}
	if status, _, _ := w.api(http.MethodDelete, "/api/admin/agents/copilot", w.root, ""); status != http.StatusNotFound {
		t.Fatalf("second delete: %d", status)
	}
	if status, _, body := w.api(http.MethodPost, "/api/admin/login", "", `{"username":"admin","password":"admin123"}`); status != http.StatusUnauthorized {
		t.Fatalf("adapter login: %d %s", status, body)
	}
	if status, _, body := w.api(http.MethodPost, "/api/admin/login", w.root, `{}`); status != http.StatusNotFound ||
		!strings.Contains(string(body), "there is no admin login") {
		t.Fatalf("adapter login with a token: %d %s", status, body)
	}

	// The same audit trail as /admin/v1, by the same subject.
	want := []string{"root create agent/copilot", "root update agent/copilot", "root create backend/wiki", "root delete agent/copilot"}
	if got := w.changeLog(); !slices.Equal(got, want) {
		t.Fatalf("change records %v, want %v", got, want)
	}
	recs, _ := w.auditPage(w.root, "kind=change&agent=copilot")
	if len(recs) != 3 {
		t.Fatalf("stored change records for copilot: %d", len(recs))
	}
}
