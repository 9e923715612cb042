package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/secrets"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

func TestAdminAuthentication(t *testing.T) {
	w := newAdminWorld(t)
	meta := `resource_metadata="` + w.url + `/.well-known/oauth-protected-resource"`
	for _, tc := range []struct {
		name, method, path, auth string
		wantChallenge            string
	}{
		{"no token", http.MethodGet, "/admin/v1/agents", "", meta},
		{"not a bearer token", http.MethodGet, "/admin/v1/backends", "Basic cm9vdDpyb290", `error="invalid_token"`},
		{"forged token", http.MethodGet, "/admin/v1/audit", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyb290In0.c2ln", `error="invalid_token"`},
		{"write without token", http.MethodPut, "/admin/v1/backends/x", "", meta},
		{"unknown route without token", http.MethodGet, "/admin/v1/nope", "", meta},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, w.url+tc.path, strings.NewReader(`{}`))
			req.Header.Set("Content-Type", "application/json")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			checkResponse(t, resp, http.StatusUnauthorized, `"error":"invalid_`, map[string]string{"WWW-Authenticate": tc.wantChallenge})
			if !strings.Contains(resp.Header.Get("WWW-Authenticate"), meta) {
				t.Fatalf("challenge %q does not point at the gateway's resource metadata", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// DNS rebinding protection applies here as on the MCP route, even with
	// a valid token.
	checkResponse(t, w.doHost(rawRequest{path: "/admin/v1/agents", token: w.root}, "evil.example:80"),
		http.StatusForbidden, "Host header", nil)
}

func TestAdminAuthorization(t *testing.T) {
	w := newAdminWorld(t)
	hr := `{"url":"http://127.0.0.1:9/mcp","auth_method":"none"}`
	for _, tc := range []struct {
		name, who, token, method, path, body string
		want                                 int
	}{
		{"viewer may not list agents", "viewer", w.viewer, http.MethodGet, "/admin/v1/agents", "", http.StatusForbidden},
		{"no role may not read the audit", "nobody", w.nobody, http.MethodGet, "/admin/v1/audit", "", http.StatusForbidden},
		{"admin lists agents", "admin", w.admin, http.MethodGet, "/admin/v1/agents", "", http.StatusOK},
		{"admin gets a backend", "admin", w.admin, http.MethodGet, "/admin/v1/backends/notes", "", http.StatusOK},
		{"admin reads the audit", "admin", w.admin, http.MethodGet, "/admin/v1/audit", "", http.StatusOK},
		{"admin may not create", "admin", w.admin, http.MethodPut, "/admin/v1/backends/hr", hr, http.StatusForbidden},
		{"admin may not update", "admin", w.admin, http.MethodPut, "/admin/v1/backends/notes", hr, http.StatusForbidden},
		{"admin may not delete", "admin", w.admin, http.MethodDelete, "/admin/v1/agents/claude-code", "", http.StatusForbidden},
		{"super-admin creates", "super-admin", w.root, http.MethodPut, "/admin/v1/backends/hr", hr, http.StatusCreated},
		{"super-admin deletes", "super-admin", w.root, http.MethodDelete, "/admin/v1/backends/hr", "", http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.revision()
			status, _, body := w.api(tc.method, tc.path, tc.token, tc.body)
			if status != tc.want {
				t.Fatalf("status %d, want %d; body %s", status, tc.want, body)
			}
			if tc.want != http.StatusForbidden {
				return
			}
			var e apiError
			decodeJSON(t, body, &e)
			if e.Error != "access_denied" || e.DecisionID == "" || len(e.Reasons) == 0 {
				t.Fatalf("denial %s: want access_denied with a decision id and reasons", body)
			}
			if !strings.Contains(e.Description, "requires role") {
				t.Fatalf("denial %q does not say which role is needed", e.Description)
			}
			if after := w.revision(); after != before {
				t.Fatalf("a denied call changed the store: revision %d -> %d", before, after)
			}
			// The denial is in the audit trail under its decision id.
			var sub string
			switch tc.who {
			case "viewer":
				sub = "vera"
			case "nobody":
				sub = "nina"
			default:
				sub = "bob"
			}
			testutil.Eventually(t, 5*time.Second, "denial "+e.DecisionID+" in the audit trail", func() bool {
				recs, _ := w.auditPage(w.root, "kind=decision&decision=deny&subject="+sub)
				return slices.ContainsFunc(recs, func(r audit.Record) bool { return r.DecisionID == e.DecisionID && !r.Allow })
			})
		})
	}
	// The denied create wrote nothing.
	w.must(http.StatusNotFound, http.MethodGet, "/admin/v1/backends/hr", w.root, "")
}

func TestAdminCRUD(t *testing.T) {
	w := newAdminWorld(t)
	start := time.Now().Add(-time.Second)

	var list struct{ Backends []apiEntry }
	decodeJSON(t, w.must(http.StatusOK, http.MethodGet, "/admin/v1/backends", w.root, ""), &list)
	if len(list.Backends) != 1 || list.Backends[0].Name != "notes" || list.Backends[0].Source != "config" || list.Backends[0].Value["url"] != w.notes.URL {
		t.Fatalf("seeded backends = %+v", list.Backends)
	}

	status, hdr, body := w.api(http.MethodPut, "/admin/v1/backends/hr", w.root, `{"url":"`+w.notes.URL+`","auth_method":"None"}`)
	if status != http.StatusCreated || hdr.Get("Location") != "/admin/v1/backends/hr" {
		t.Fatalf("create: %d Location %q: %s", status, hdr.Get("Location"), body)
	}
	var created apiEntry
	decodeJSON(t, body, &created)
	if created.Name != "hr" || created.Source != "admin" || created.UpdatedBy != "root" || created.Version <= 0 || created.UpdatedAt.Before(start) {
		t.Fatalf("created entry = %+v", created)
	}
	// Stored normalized, as a loaded config file would be.
	if created.Value["auth_method"] != "none" || fmt.Sprint(created.Value["paths"]) != "[/hr]" {
		t.Fatalf("created value = %v, want auth_method none and the default path /hr", created.Value)
	}

	var updated apiEntry
	decodeJSON(t, w.must(http.StatusOK, http.MethodPut, "/admin/v1/backends/hr", w.root,
		`{"name":"hr","url":"`+w.notes.URL+`","auth_method":"none","paths":["/hr","/people"],"description":"HR directory","labels":{"team":"hr"}}`), &updated)
	if updated.Version <= created.Version || updated.Value["description"] != "HR directory" || fmt.Sprint(updated.Value["paths"]) != "[/hr /people]" {
		t.Fatalf("updated entry = %+v (created version %d)", updated, created.Version)
	}
	var got apiEntry
	decodeJSON(t, w.must(http.StatusOK, http.MethodGet, "/admin/v1/backends/hr", w.root, ""), &got)
	if got.Version != updated.Version || got.Value["description"] != "HR directory" {
		t.Fatalf("GET after update = %+v", got)
	}

	status, hdr, body = w.api(http.MethodPut, "/admin/v1/agents/hr-bot", w.root,
		`{"agent_id":"hr-bot-1","client_id":"hr-client","scopes":["mcp:read"],"backend_access":["hr"],"enabled":false}`)
	if status != http.StatusCreated || hdr.Get("Location") != "/admin/v1/agents/hr-bot" {
		t.Fatalf("create agent: %d: %s", status, body)
	}
	var agents struct{ Agents []apiEntry }
	decodeJSON(t, w.must(http.StatusOK, http.MethodGet, "/admin/v1/agents", w.root, ""), &agents)
	var names []string
	for _, a := range agents.Agents {
		names = append(names, a.Name+":"+a.Source)
	}
	if strings.Join(names, ",") != "admin-console:config,claude-code:config,hr-bot:admin" {
		t.Fatalf("agents = %v", names)
	}
	if a := agents.Agents[2].Value; a["agent_id"] != "hr-bot-1" || a["enabled"] != false {
		t.Fatalf("hr-bot value = %v", a)
	}

	// A backend an agent still grants cannot go.
	status, _, body = w.api(http.MethodDelete, "/admin/v1/backends/hr", w.root, "")
	if status != http.StatusConflict || !strings.Contains(string(body), "agents.hr-bot.backend_access[0]") {
		t.Fatalf("delete granted backend: %d %s", status, body)
	}
	w.must(http.StatusNoContent, http.MethodDelete, "/admin/v1/agents/hr-bot", w.root, "")
	w.must(http.StatusNotFound, http.MethodGet, "/admin/v1/agents/hr-bot", w.root, "")
	w.must(http.StatusNotFound, http.MethodDelete, "/admin/v1/agents/hr-bot", w.root, "")
	w.must(http.StatusNoContent, http.MethodDelete, "/admin/v1/backends/hr", w.root, "")
	w.must(http.StatusNotFound, http.MethodGet, "/admin/v1/backends/hr", w.root, "")

	// Names may hold dots, as config keys may.
	w.must(http.StatusCreated, http.MethodPut, "/admin/v1/backends/svc.v2", w.root, `{"url":"`+w.notes.URL+`","auth_method":"none"}`)
	w.must(http.StatusOK, http.MethodGet, "/admin/v1/backends/svc.v2", w.root, "")

	// What is not an admin route says so, after authentication.
	status, hdr, body = w.api(http.MethodPost, "/admin/v1/agents", w.root, `{}`)
	if status != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET" {
		t.Fatalf("POST /admin/v1/agents: %d Allow %q: %s", status, hdr.Get("Allow"), body)
	}
	for _, p := range []string{"/admin/v1/nope", "/admin/v1", "/admin/v1/agents/a/b"} {
		if status, _, body := w.api(http.MethodGet, p, w.root, ""); status != http.StatusNotFound || !strings.Contains(string(body), "no admin API route") {
			t.Fatalf("GET %s: %d %s", p, status, body)
		}
	}
}

func TestAdminValidation(t *testing.T) {
	w := newAdminWorld(t)
	okURL := w.notes.URL
	for _, tc := range []struct {
		name, path, body, contentType string
		want                          int
		inBody                        []string
	}{
		{"bad url", "/admin/v1/backends/hr", `{"url":"ftp://hr.example.com","auth_method":"none"}`, "", 400,
			[]string{"backends.hr.url: must be an absolute http(s) URL"}},
		{"unknown auth_method", "/admin/v1/backends/hr", `{"url":"` + okURL + `","auth_method":"magic"}`, "", 400,
			[]string{`backends.hr.auth_method: unknown \"magic\"`}},
		{"pre-shared-key without key", "/admin/v1/backends/hr", `{"url":"` + okURL + `","auth_method":"pre-shared-key"}`, "", 400,
			[]string{"backends.hr.auth_config: pre-shared-key needs api_key"}},
		{"every problem at once", "/admin/v1/backends/hr", `{"url":"hr","paths":["no-slash"],"timeout_seconds":-1,"auth_method":"none"}`, "", 400,
			[]string{"backends.hr.url:", `backends.hr.paths[0]: must start with \"/\"`, "backends.hr.timeout_seconds: must be >= 0 (0 means 30)"}},
		{"unknown field", "/admin/v1/backends/hr", `{"urll":"` + okURL + `","auth_method":"none"}`, "", 400,
			[]string{`backends.hr.urll: unknown field (did you mean \"url\"?)`}},
		{"wrong type", "/admin/v1/agents/bot", `{"scopes":"mcp:read"}`, "", 400,
			[]string{"agents.bot.scopes: want a list of strings, got a JSON string"}},
		{"name differs from the URL", "/admin/v1/backends/hr", `{"name":"finance","url":"` + okURL + `","auth_method":"none"}`, "", 400,
			[]string{`backends.hr.name: must be \"hr\", the name in the URL`}},
		{"name not a config key", "/admin/v1/backends/-hr", `{"url":"` + okURL + `","auth_method":"none"}`, "", 400,
			[]string{"backends.-hr: name must be letters, digits"}},
		{"name too long", "/admin/v1/agents/" + strings.Repeat("a", 201), `{}`, "", 400,
			[]string{"longer than 200 bytes"}},
		{"agent grants an unknown backend", "/admin/v1/agents/bot", `{"backend_access":["notes","payroll"]}`, "", 400,
			[]string{`agents.bot.backend_access[1]: unknown backend \"payroll\"`}},
		{"duplicate agent_id", "/admin/v1/agents/bot", `{"agent_id":"claude-code"}`, "", 409,
			[]string{`agents.bot.agent_id: \"claude-code\" is already the id of agents.claude-code`}},
		{"duplicate path", "/admin/v1/backends/hr", `{"url":"` + okURL + `","paths":["/notes/"],"auth_method":"none"}`, "", 409,
			[]string{`backends.hr.paths[0]: \"/notes\" is already routed to backends.notes`}},
		{"path of the admin API", "/admin/v1/backends/hr", `{"url":"` + okURL + `","paths":["/admin/v1/hr"],"auth_method":"none"}`, "", 409,
			[]string{"backends.hr.paths[0]", "the gateway's own route /admin/v1"}},
		{"deleting a granted backend", "/admin/v1/backends/notes", "", "", 409,
			[]string{"backends.notes: still granted by agents.claude-code.backend_access[0]"}},
		{"environment reference", "/admin/v1/backends/hr", `{"url":"` + okURL + `","auth_method":"pre-shared-key","auth_config":{"api_key":"${MCPGW_SESSION_KEY}"}}`, "", 400,
			[]string{"backends.hr.auth_config.api_key: ${...} environment references are resolved only in the config file"}},
		{"secret file", "/admin/v1/backends/hr", `{"url":"` + okURL + `","auth_method":"pre-shared-key","auth_config":{"api_key_file":"/etc/passwd"}}`, "", 400,
			[]string{"backends.hr.auth_config.api_key_file: files are read only for the config file"}},
		{"agent secret file", "/admin/v1/agents/bot", `{"private_key_file":"/etc/mcpgw/key.pem"}`, "", 400,
			[]string{"agents.bot.private_key_file: files are read only for the config file"}},
		{"redaction marker with nothing stored", "/admin/v1/agents/bot", `{"client_secret":"[REDACTED]"}`, "", 400,
			[]string{"agents.bot.client_secret: [REDACTED] stands for a stored secret, but none is stored here"}},
		{"not JSON", "/admin/v1/agents/bot", `{"scopes":`, "", 400, []string{"request body: invalid JSON"}},
		{"not an object", "/admin/v1/agents/bot", `["scopes"]`, "", 400, []string{"request body: must be a JSON object"}},
		{"null body", "/admin/v1/agents/bot", `null`, "", 400, []string{"request body: must be a JSON object"}},
		{"form body", "/admin/v1/agents/bot", `scopes=mcp:read`, "application/x-www-form-urlencoded", 415, []string{"Content-Type must be application/json"}},
		{"body over server.max_body_bytes", "/admin/v1/agents/bot", `{"description":"` + strings.Repeat("x", 70<<10) + `"}`, "", 413, []string{"max_body_bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.revision()
			method := http.MethodPut
			if tc.body == "" {
				method = http.MethodDelete
			}
			req, _ := http.NewRequest(method, w.url+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+w.root)
			req.Header.Set("Content-Type", "application/json")
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			do := http.DefaultClient.Do
			if len(tc.body) > 64<<10 {
				do = sendHeadersOnly
			}
			resp, err := do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := string(readAll(t, resp))
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.want, body)
			}
			for _, s := range tc.inBody {
				if !strings.Contains(body, s) {
					t.Errorf("body %s does not contain %q", body, s)
				}
			}
			if after := w.revision(); after != before {
				t.Fatalf("a refused change was written: revision %d -> %d", before, after)
			}
		})
	}
	// Nothing refused was written, and the gateway still routes as before.
	for _, p := range []string{"/admin/v1/backends/hr", "/admin/v1/agents/bot"} {
		w.must(http.StatusNotFound, http.MethodGet, p, w.root, "")
	}
	if _, err := mcpEchoOnce(w.url, "/notes", w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "claude-client"), "claude-code", "still routed"); err != nil {
		t.Fatal(err)
	}
}

// requireHeader is a demo backend wrapper that refuses requests without the
// expected credential, which proves which secret the gateway injected.
func requireHeader(name string, want *atomic.Value) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.Header.Get(name) != want.Load().(string) {
				http.Error(rw, "wrong or missing "+name, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(rw, r)
		})
	}
}

func TestAdminSecretsAreWriteOnly(t *testing.T) {
	w := newAdminWorld(t)
	var want atomic.Value
	want.Store("psk-123")
	vault, err := demo.StartNotes(demo.Options{Wrap: requireHeader("X-Vault-Key", &want)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vault.Close() })
	// A real key: one that does not parse is refused at the write.
	pem, pemBody := testPEMKey(t)
	leaks := []string{"psk-123", "qs-123", "cs-123", pemBody}
	var seen []string // every admin API reply, checked for secrets at the end
	call := func(want int, method, path, body string) []byte {
		t.Helper()
		b := w.must(want, method, path, w.root, body)
		seen = append(seen, string(b))
		return b
	}

	call(http.StatusCreated, http.MethodPut, "/admin/v1/backends/vault", `{"url":"`+vault.URL+`?access_token=qs-123","auth_method":"pre-shared-key",`+
		`"auth_config":{"api_key":"psk-123","header_name":"X-Vault-Key"}}`)
	call(http.StatusCreated, http.MethodPut, "/admin/v1/agents/vault-bot", toJSON(map[string]any{
		"client_id": "vault-client", "client_secret": "cs-123", "private_key": pem,
		"scopes": []string{"mcp:read", "mcp:write"}, "backend_access": []string{"vault"},
	}))
	user := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "vault-client")
	if _, err := mcpEchoOnce(w.url, "/vault", user, "vault-bot", "through the vault"); err != nil {
		t.Fatalf("call with the stored key: %v", err)
	}

	// GET-modify-PUT: what GET shows, sent back with one change, keeps
	// every secret.
	var b, a apiEntry
	decodeJSON(t, call(http.StatusOK, http.MethodGet, "/admin/v1/backends/vault", ""), &b)
	decodeJSON(t, call(http.StatusOK, http.MethodGet, "/admin/v1/agents/vault-bot", ""), &a)
	if b.Value["auth_config"].(map[string]any)["api_key"] != secrets.Placeholder || !strings.Contains(b.Value["url"].(string), "access_token=REDACTED") {
		t.Fatalf("GET shows backend %v", b.Value)
	}
	if a.Value["client_secret"] != secrets.Placeholder || a.Value["private_key"] != secrets.Placeholder {
		t.Fatalf("GET shows agent %v", a.Value)
	}
	b.Value["description"] = "edited"
	a.Value["description"] = "edited"
	call(http.StatusOK, http.MethodPut, "/admin/v1/backends/vault", toJSON(b.Value))
	call(http.StatusOK, http.MethodPut, "/admin/v1/agents/vault-bot", toJSON(a.Value))
	ctx := context.Background()
	sb, err := w.srv.Store.GetBackend(ctx, "vault")
	if err != nil {
		t.Fatal(err)
	}
	sa, err := w.srv.Store.GetAgent(ctx, "vault-bot")
	if err != nil {
		t.Fatal(err)
	}
	if sb.Value.Description != "edited" || sb.Value.AuthConfig["api_key"] != "psk-123" || sb.Value.URL != vault.URL+"?access_token=qs-123" {
		t.Fatalf("stored backend after round trip = %+v", sb.Value)
	}
	if sa.Value.Description != "edited" || sa.Value.ClientSecret != "cs-123" || sa.Value.PrivateKey != pem {
		t.Fatalf("stored agent after round trip: description %q, secrets kept: %v %v", sa.Value.Description, sa.Value.ClientSecret == "cs-123", sa.Value.PrivateKey == pem)
	}
	if _, err := mcpEchoOnce(w.url, "/vault", user, "vault-bot", "after the round trip"); err != nil {
		t.Fatalf("call after GET-modify-PUT: %v", err)
	}

	// Omitted agent secrets are kept; "" and null clear them.
	call(http.StatusOK, http.MethodPut, "/admin/v1/agents/vault-bot", `{"client_id":"vault-client","scopes":["mcp:read","mcp:write"],"backend_access":["vault"]}`)
	if sa, _ = w.srv.Store.GetAgent(ctx, "vault-bot"); sa.Value.ClientSecret != "cs-123" || sa.Value.PrivateKey != pem || sa.Value.Description != "" {
		t.Fatalf("omitted secrets not kept (or description not replaced): %q", sa.Value.Description)
	}
	call(http.StatusOK, http.MethodPut, "/admin/v1/agents/vault-bot", `{"client_id":"vault-client","client_secret":"","private_key":null,"scopes":["mcp:read","mcp:write"],"backend_access":["vault"]}`)
	if sa, _ = w.srv.Store.GetAgent(ctx, "vault-bot"); sa.Value.ClientSecret != "" || sa.Value.PrivateKey != "" {
		t.Fatal("secrets sent empty were not cleared")
	}

	// A new key replaces the stored one and is used at once; auth_config
	// omitted keeps it.
	want.Store("psk-456")
	if status, _ := mcpEchoOnce(w.url, "/vault", user, "vault-bot", "old key"); status == http.StatusOK {
		t.Fatal("the backend accepted the old key: the credential check proves nothing")
	}
	call(http.StatusOK, http.MethodPut, "/admin/v1/backends/vault", toJSON(map[string]any{
		"url": b.Value["url"], "auth_method": "pre-shared-key", "auth_config": map[string]any{"api_key": "psk-456", "header_name": "X-Vault-Key"},
	}))
	call(http.StatusOK, http.MethodPut, "/admin/v1/backends/vault", toJSON(map[string]any{"url": b.Value["url"], "auth_method": "pre-shared-key", "timeout_seconds": 7}))
	if sb, _ = w.srv.Store.GetBackend(ctx, "vault"); sb.Value.AuthConfig["api_key"] != "psk-456" || sb.Value.TimeoutSeconds != 7 {
		t.Fatalf("stored backend = api_key kept %v, timeout %d", sb.Value.AuthConfig["api_key"] == "psk-456", sb.Value.TimeoutSeconds)
	}
	if _, err := mcpEchoOnce(w.url, "/vault", user, "vault-bot", "new key"); err != nil {
		t.Fatalf("call with the new key: %v", err)
	}

	call(http.StatusOK, http.MethodGet, "/admin/v1/backends", "")
	call(http.StatusOK, http.MethodGet, "/admin/v1/agents", "")
	seen = append(seen, string(call(http.StatusOK, http.MethodGet, "/admin/v1/audit?kind=change&limit=1000", "")))
	all := strings.Join(seen, "\n")
	for _, s := range append(leaks, "psk-456") {
		if strings.Contains(all, s) {
			t.Errorf("secret %q appears in an admin API reply", s)
		}
	}
	if !strings.Contains(all, `"before":{`) || !strings.Contains(all, secrets.Placeholder) {
		t.Fatal("the audit reply shows no redacted before/after snapshots")
	}
}

func TestAdminHotApply(t *testing.T) {
	w := newAdminWorld(t)
	user := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "newbot-client")
	if status, _ := mcpEchoOnce(w.url, "/notes2", user, "newbot", "before"); status != http.StatusNotFound {
		t.Fatalf("before the change: status %d, want 404 (no backend at /notes2)", status)
	}
	w.must(http.StatusCreated, http.MethodPut, "/admin/v1/backends/notes2", w.root,
		`{"url":"`+w.notes.URL+`","paths":["/notes2"],"auth_method":"none","timeout_seconds":5}`)
	w.must(http.StatusCreated, http.MethodPut, "/admin/v1/agents/newbot", w.root,
		`{"client_id":"newbot-client","scopes":["mcp:read","mcp:write"],"backend_access":["notes2"]}`)
	// The store is polled hourly: this works because the write applied it.
	if _, err := mcpEchoOnce(w.url, "/notes2", user, "newbot", "hot"); err != nil {
		t.Fatalf("call through the new backend and agent: %v", err)
	}
	sid, err := mcpSession(w.url, "/notes2", user, "newbot")
	if err != nil {
		t.Fatal(err)
	}

	w.must(http.StatusOK, http.MethodPut, "/admin/v1/agents/newbot", w.root,
		`{"client_id":"newbot-client","scopes":["mcp:read","mcp:write"],"backend_access":["notes2"],"enabled":false}`)
	if err := mcpEcho(w.url, "/notes2", user, "newbot", sid, 3, "disabled"); err == nil || err.(*mcpFailure).status != http.StatusForbidden {
		t.Fatalf("call by a disabled agent: %v, want 403", err)
	}
	w.must(http.StatusOK, http.MethodPut, "/admin/v1/agents/newbot", w.root,
		`{"client_id":"newbot-client","scopes":["mcp:read","mcp:write"],"backend_access":["notes2"]}`)
	if err := mcpEcho(w.url, "/notes2", user, "newbot", sid, 4, "enabled again"); err != nil {
		t.Fatalf("call after re-enabling: %v", err)
	}

	w.must(http.StatusNoContent, http.MethodDelete, "/admin/v1/agents/newbot", w.root, "")
	err = mcpEcho(w.url, "/notes2", user, "newbot", sid, 5, "deleted")
	if f, ok := err.(*mcpFailure); !ok || f.status != http.StatusForbidden || !strings.Contains(f.body, "unknown agent") {
		t.Fatalf("call by a deleted agent: %v, want 403 unknown agent", err)
	}
}

func TestAdminUpdatesUnderLoad(t *testing.T) {
	w := newAdminWorld(t)
	user := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers"}, "claude-client")
	const workers, perWorker, updates = 4, 25, 10
	var (
		wg       sync.WaitGroup
		failures = make(chan error, 1000)
		done     atomic.Int64
		stop     atomic.Bool
	)
	for i := range workers {
		sid, err := mcpSession(w.url, "/notes", user, "claude-code")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker makes its share and goes on until the updates
			// are over, so requests span the whole update window.
			for j := 0; j < perWorker || !stop.Load(); j++ {
				// Distinct ids: the backend refuses a duplicate in-flight id.
				if err := mcpEcho(w.url, "/notes", user, "claude-code", sid, 1000*(i+1)+j, fmt.Sprintf("w%d-%d", i, j)); err != nil {
					select {
					case failures <- err:
					default:
					}
				}
				done.Add(1)
			}
		}()
	}
	rev := w.revision()
	before := done.Load()
	for i := range updates {
		w.must(http.StatusOK, http.MethodPut, "/admin/v1/backends/notes", w.root, toJSON(map[string]any{
			"url": w.notes.URL, "paths": []string{"/notes"}, "auth_method": "none",
			"timeout_seconds": 5 + i, "description": fmt.Sprintf("update %d", i),
		}))
		status := http.StatusOK
		if i == 0 {
			status = http.StatusCreated
		}
		w.must(status, http.MethodPut, "/admin/v1/backends/spare", w.root, `{"url":"`+w.notes.URL+`","auth_method":"none","description":"`+fmt.Sprint(i)+`"}`)
	}
	during := done.Load() - before
	stop.Store(true)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	if total := done.Load(); total < workers*perWorker || during == 0 {
		t.Fatalf("%d requests, %d of them while the backends were rewritten: the test proved nothing", total, during)
	}
	t.Logf("%d requests, %d during %d updates", done.Load(), during, 2*updates)
	if got := w.revision() - rev; got != 2*updates {
		t.Fatalf("revision moved by %d, want %d", got, 2*updates)
	}
	// The last update is the one serving.
	if d := w.gw.topo.Load().backends["notes"].backend.Description; d != fmt.Sprintf("update %d", updates-1) {
		t.Fatalf("serving description %q", d)
	}
}

func TestAdminAuditTrail(t *testing.T) {
	w := newAdminWorld(t)
	start := time.Now().UTC()
	w.must(http.StatusCreated, http.MethodPut, "/admin/v1/backends/hr", w.root,
		`{"url":"`+w.notes.URL+`","auth_method":"pre-shared-key","auth_config":{"api_key":"audit-secret-1"}}`)
	w.must(http.StatusOK, http.MethodPut, "/admin/v1/backends/hr", w.root,
		`{"url":"`+w.notes.URL+`","auth_method":"pre-shared-key","auth_config":{"api_key":"[REDACTED]"},"description":"HR"}`)
	w.must(http.StatusCreated, http.MethodPut, "/admin/v1/agents/hr-bot", w.root, `{"backend_access":["hr"]}`)
	w.must(http.StatusNoContent, http.MethodDelete, "/admin/v1/agents/hr-bot", w.root, "")
	var denied apiError
	decodeJSON(t, w.must(http.StatusForbidden, http.MethodDelete, "/admin/v1/backends/hr", w.admin, ""), &denied)
	end := time.Now().UTC()

	// Records reach the store through a batching sink. Every change record is
	// also handed to that sink (for the other sinks) before the decision of
	// any later call, so once a later decision is stored, so is the
	// forwarded copy, and a duplicate would show.
	testutil.Eventually(t, 5*time.Second, "a decision made after the changes in the audit trail", func() bool {
		recs, _ := w.auditPage(w.root, "kind=decision&subject=root&since="+url.QueryEscape(end.Format(time.RFC3339Nano)))
		return slices.ContainsFunc(recs, func(r audit.Record) bool { return r.Tool == "audit" })
	})

	changes, next := w.auditPage(w.admin, "kind=change&subject=root")
	var got []string
	for _, r := range changes {
		got = append(got, fmt.Sprintf("%s %s/%s", r.Action, r.ObjectKind, r.ObjectName))
	}
	if strings.Join(got, ", ") != "delete agent/hr-bot, create agent/hr-bot, update backend/hr, create backend/hr" || next != "" {
		t.Fatalf("change records (newest first) = %v, next %q", got, next)
	}
	// The extra sink got each change once, the same record as the store.
	var sunk []string
	for _, r := range w.sink.changes() {
		if r.Source == audit.SourceAdmin {
			sunk = append(sunk, r.ID)
		}
	}
	var stored []string
	for _, r := range slices.Backward(changes) {
		stored = append(stored, r.ID)
	}
	if !slices.Equal(sunk, stored) {
		t.Fatalf("extra sink got change records %v, store holds %v", sunk, stored)
	}
	decisions, _ := w.auditPage(w.root, "kind=decision&subject=root&limit=1000")
	for _, r := range changes {
		if r.DecisionID == "" || r.Subject != "root" || r.Agent != "admin-console" || r.Source != "admin" || r.RequestID == "" || !r.Allow {
			t.Errorf("change record %+v lacks who, what or on what authority", r)
		}
		i := slices.IndexFunc(decisions, func(d audit.Record) bool { return d.DecisionID == r.DecisionID })
		if i < 0 {
			t.Errorf("change %s %s: decision %s not in the audit trail", r.Action, r.ObjectName, r.DecisionID)
			continue
		}
		// A PUT is decided as "write" before the store is read, so the
		// decision cannot say whether it created or updated; the change
		// record does.
		wantMethod := "write"
		if r.Action == audit.ActionDelete {
			wantMethod = "delete"
		}
		if d := decisions[i]; !d.Allow || d.Method != wantMethod || d.Tool != string(r.ObjectKind)+"s/"+r.ObjectName || d.Revision != r.Revision {
			t.Errorf("decision %+v does not match change %s %s", d, r.Action, r.ObjectName)
		}
	}
	update := changes[2]
	if !strings.Contains(string(update.Before), secrets.Placeholder) || !strings.Contains(string(update.After), secrets.Placeholder) ||
		!strings.Contains(string(update.After), `"description":"HR"`) || strings.Contains(string(update.Before), "description") {
		t.Fatalf("update before %s after %s", update.Before, update.After)
	}
	if del := changes[0]; len(del.Before) == 0 || len(del.After) != 0 {
		t.Fatalf("delete before %s after %s", del.Before, del.After)
	}
	raw := w.must(http.StatusOK, http.MethodGet, "/admin/v1/audit?limit=1000", w.root, "")
	if strings.Contains(string(raw), "audit-secret-1") {
		t.Fatal("a secret appears in the audit trail")
	}

	for _, tc := range []struct {
		name, query string
		check       func(audit.Record) bool
		want        int // records expected; -1: at least one
	}{
		{"by backend", "kind=change&backend=hr", func(r audit.Record) bool { return r.ObjectName == "hr" && r.ObjectKind == audit.ObjectBackend }, 2},
		{"by agent changed", "kind=change&agent=hr-bot", func(r audit.Record) bool { return r.ObjectName == "hr-bot" }, 2},
		{"by agent acting", "kind=change&subject=root&agent=admin-console", func(r audit.Record) bool { return r.Agent == "admin-console" }, 4},
		{"denials of a subject", "decision=deny&subject=bob", func(r audit.Record) bool { return !r.Allow && r.Subject == "bob" }, 1},
		{"since after the changes", "kind=change&subject=root&since=" + url.QueryEscape(end.Add(time.Second).Format(time.RFC3339)), nil, 0},
		{"until before the changes", "kind=change&subject=root&until=" + url.QueryEscape(start.Add(-time.Second).Format(time.RFC3339)), nil, 0},
		{"time window", "kind=change&since=" + url.QueryEscape(start.Format(time.RFC3339Nano)) + "&until=" + url.QueryEscape(end.Add(time.Second).Format(time.RFC3339Nano)),
			func(r audit.Record) bool { return r.Subject == "root" }, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, _ := w.auditPage(w.root, tc.query)
			if tc.want >= 0 && len(recs) != tc.want {
				t.Fatalf("%d records, want %d: %+v", len(recs), tc.want, recs)
			}
			for _, r := range recs {
				if tc.check != nil && !tc.check(r) {
					t.Fatalf("record %+v does not match %s", r, tc.query)
				}
			}
		})
	}
	denials, _ := w.auditPage(w.root, "decision=deny&subject=bob")
	if len(denials) != 1 || denials[0].DecisionID != denied.DecisionID {
		t.Fatalf("bob's denial %s not found: %+v", denied.DecisionID, denials)
	}

	// Paging by cursor returns the same records, once each, in order.
	var paged []string
	cursor := ""
	for range 10 {
		q := "kind=change&subject=root&limit=1"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		recs, next := w.auditPage(w.root, q)
		for _, r := range recs {
			paged = append(paged, r.ID)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	var ids []string
	for _, r := range changes {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(paged, ids) {
		t.Fatalf("paged %v, want %v", paged, ids)
	}

	for _, tc := range []struct{ query, inBody string }{
		{"decision=maybe", "decision"},
		{"kind=everything", "kind"},
		{"since=yesterday", "query parameter since: want an RFC 3339 time"},
		{"limit=ten", "query parameter limit: want an integer from 1 to 1000"},
		{"limit=-1", "query parameter limit: want an integer from 1 to 1000"},
		{"limit=0", "query parameter limit: want an integer from 1 to 1000"},
		{"limit=5000", `query parameter limit: want an integer from 1 to 1000, got \"5000\"`},
		{"limit=1&limit=2", "query parameter limit: given more than once"},
		{"cursor=not-a-cursor", "query parameter cursor: is malformed"},
		{"since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "is not before until"},
		{"user=root", `query parameter \"user\": unknown`},
	} {
		t.Run("bad "+tc.query, func(t *testing.T) {
			status, _, body := w.api(http.MethodGet, "/admin/v1/audit?"+tc.query, w.root, "")
			if status != http.StatusBadRequest || !strings.Contains(string(body), tc.inBody) {
				t.Fatalf("status %d body %s, want 400 containing %q", status, body, tc.inBody)
			}
			var e apiError
			if json.Unmarshal(body, &e) != nil || e.Error != "invalid_request" {
				t.Fatalf("error body %s", body)
			}
		})
	}

	// Every bad parameter is named in one answer, not only the first.
	status, _, body := w.api(http.MethodGet, "/admin/v1/audit?kind=everything&limit=5000&decision=maybe&since=yesterday&cursor=x&until=2020-01-01T00:00:00Z&subject=root", w.root, "")
	var e apiError
	if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error != "invalid_request" {
		t.Fatalf("status %d body %s, want 400 invalid_request", status, body)
	}
	var named []string
	for _, d := range e.Details {
		param, _, _ := strings.Cut(strings.TrimPrefix(d, "query parameter "), ":")
		named = append(named, param)
	}
	slices.Sort(named)
	if want := []string{"cursor", "decision", "kind", "limit", "since"}; !slices.Equal(named, want) {
		t.Fatalf("problems name %v, want %v: %s", named, want, body)
	}
}

// testPEMKey is a fresh PKCS#8 EC private key in PEM, and a piece of its
// body to look for where the key must never appear.
func testPEMKey(t *testing.T) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	text := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	lines := strings.Split(text, "\n")
	return text, lines[1][:32]
}
