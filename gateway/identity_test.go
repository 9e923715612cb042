package gateway

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// Identity at the gateway's door: which tokens may act as which agent, what a
// token must look like, how long it may be, and whose groups count. Every
// token comes from a real testidp; the second issuer plays a partner IdP (or
// an attacker holding one) that the gateway also trusts (startIdP).

func mintUser(t *testing.T, idp *testidp.Server, sub string, groups []string, extra map[string]any) string {
	t.Helper()
	tok, err := idp.MintUser(sub, []string{"mcp:read", "mcp:write"}, groups, extra)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAgentBinding: the agent a request acts as must be one the token may
// use. The table runs twice: under a policy that allows everything, so every
// refusal is the gateway's own boundary (agentFor), and under the shipped
// policy, whose caller rules must agree (they see the agent's issuer and
// allow_clientless_tokens), so what the boundary lets through is allowed.
func TestAgentBinding(t *testing.T) {
	for _, policyName := range []string{"allow-all", "shipped"} {
		t.Run(policyName, func(t *testing.T) { testAgentBinding(t, policyName == "shipped") })
	}
}

func testAgentBinding(t *testing.T, shipped bool) {
	b := startIdP(t)
	var authz policy.Authorizer
	if shipped {
		authz = shippedEngine(t)
	}
	h := newHarness(t, harnessOptions{authorizer: authz, mutate: func(c *config.Config) {
		a := c.Identity.Issuers[0].Issuer
		c.Identity.Issuers = append(c.Identity.Issuers, config.Issuer{Issuer: b.Issuer(), Audiences: []string{testAudience}})
		notes := []string{"notes"}
		scopes := []string{"mcp:read", "mcp:write"}
		c.Agents = map[string]config.Agent{
			"claude-code": {ClientID: "claude-client", Issuer: a, Scopes: scopes, BackendAccess: notes},
			"cursor":      {ClientID: "cursor-client", Issuer: a, Scopes: scopes, BackendAccess: notes},
			"b-bot":       {ClientID: "b-client", Issuer: b.Issuer(), Scopes: scopes, BackendAccess: notes},
			"kiosk":       {AllowClientlessTokens: true, Issuer: a, Scopes: scopes, BackendAccess: notes},
			"open":        {Scopes: scopes, BackendAccess: notes},
			"open-any":    {AllowClientlessTokens: true, Scopes: scopes, BackendAccess: notes},
			// Stored by an older release: a client but no issuer, now that
			// two are trusted.
			"legacy": {ClientID: "legacy-client", Scopes: scopes, BackendAccess: notes},
		}
	}})
	a := h.idp
	fromA := func(extra map[string]any) string { return mintUser(t, a, "alice", nil, extra) }
	fromB := func(extra map[string]any) string { return mintUser(t, b, "alice", []string{"mcp-super-admins"}, extra) }

	tests := []struct {
		name   string
		token  string
		agent  string // X-Agent-ID; "" sends none
		status int
		inBody string
	}{
		{"A's client, its agent", fromA(map[string]any{"cid": "claude-client"}), "claude-code", 200, ""},
		{"A's client, no header, found by client", fromA(map[string]any{"cid": "claude-client"}), "", 200, ""},
		{"Azure v1 appid proves the client", fromA(map[string]any{"appid": "claude-client"}), "claude-code", 200, ""},
		{"Azure v1 appid of another client", fromA(map[string]any{"appid": "cursor-client"}), "claude-code", 403, "bound to another OAuth client"},
		{"another client of A", fromA(map[string]any{"cid": "cursor-client"}), "claude-code", 403, "bound to another OAuth client"},

		{"no client, client-bound agent", fromA(nil), "claude-code", 403, "the token proves none (cid, azp, client_id or appid)"},
		{"no client, agent without client or permission", fromA(nil), "open", 403, "agents.open.allow_clientless_tokens"},
		{"no client, no header", fromA(nil), "", 403, "missing X-Agent-ID"},
		{"no client, agent taking clientless tokens of A", fromA(nil), "kiosk", 200, ""},
		{"no client, agent taking clientless tokens of any issuer", fromA(nil), "open-any", 200, ""},
		{"a client, agent without client", fromA(map[string]any{"cid": "cursor-client"}), "open", 200, ""},

		{"B naming A's client", fromB(map[string]any{"cid": "claude-client"}), "claude-code", 403, "agents.claude-code.issuer"},
		{"B naming A's client, no header", fromB(map[string]any{"cid": "claude-client"}), "", 403, "missing X-Agent-ID"},
		{"B without client, A's clientless agent", fromB(nil), "kiosk", 403, "agents.kiosk.issuer"},
		{"B without client, any issuer's clientless agent", fromB(nil), "open-any", 200, ""},
		{"B's own client and agent", fromB(map[string]any{"cid": "b-client"}), "b-bot", 200, ""},
		{"A naming B's client", fromA(map[string]any{"cid": "b-client"}), "b-bot", 403, "agents.b-bot.issuer"},

		{"client without issuer among two issuers", fromA(map[string]any{"cid": "legacy-client"}), "legacy", 403, "agents.legacy.issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(rawRequest{path: "/notes", token: tt.token, agent: tt.agent, body: initBody})
			body := string(readAll(t, resp))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(body, tt.inBody) {
				t.Errorf("body %s does not say %q", body, tt.inBody)
			}
		})
	}
}

// signTyped signs claims with the IdP's own key under the header members
// given, for token shapes testidp never mints (crit, other typ values).
func signTyped(t *testing.T, idp *testidp.Server, header, claims map[string]any) string {
	t.Helper()
	key := idp.SigningKey()
	kid, _ := key.KeyID()
	h := map[string]any{"alg": "RS256", "kid": kid}
	for k, v := range header {
		h[k] = v
	}
	hb, _ := json.Marshal(h)
	pb, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	input := enc(hb) + "." + enc(pb)
	var raw rsa.PrivateKey
	if err := jwk.Export(key, &raw); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, &raw, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc(sig)
}

// TestTokenRefusalsNameTheFault: tokens the IdP really signed but that are
// not access tokens of a user are refused with a 401 whose description
// names the claim or header at fault.
func TestTokenRefusalsNameTheFault(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	claims := func(sub any) map[string]any {
		now := time.Now()
		return map[string]any{"iss": h.idp.Issuer(), "aud": "api://mcpgw", "sub": sub, "cid": "claude-client",
			"scp": []string{"mcp:read"}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	}
	tests := []struct {
		name   string
		token  string
		status int
		inDesc string
	}{
		{"access token", signTyped(t, h.idp, map[string]any{"typ": "at+jwt"}, claims("alice")), 200, ""},
		{"empty sub", h.token("", []string{"mcp:read"}, nil, "claude-client"), 401, "sub"},
		{"null sub", signTyped(t, h.idp, map[string]any{"typ": "JWT"}, claims(nil)), 401, "sub"},
		{"ID-JAG", signTyped(t, h.idp, map[string]any{"typ": "oauth-id-jag+jwt"}, claims("alice")), 401, "typ"},
		{"logout token", signTyped(t, h.idp, map[string]any{"typ": "logout+jwt"}, claims("alice")), 401, "typ"},
		{"unknown critical header", signTyped(t, h.idp, map[string]any{"typ": "JWT", "crit": []string{"urn:x"}, "urn:x": 1}, claims("alice")), 401, "crit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(rawRequest{path: "/notes", token: tt.token, agent: "claude-code", body: initBody})
			body := readAll(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status == 401 {
				if chal := resp.Header.Get("WWW-Authenticate"); !strings.Contains(chal, `error="invalid_token"`) || !strings.Contains(chal, tt.inDesc) {
					t.Errorf("WWW-Authenticate %q does not name %q", chal, tt.inDesc)
				}
			}
		})
	}
}

// TestHeaderLimit: Fiber's read buffer and the verifier agree on
// server.max_header_bytes. A token with 150 groups (about 6.5 KB) passes the
// default 32 KiB; a larger header gets 431 naming the key and the limit.
func TestHeaderLimit(t *testing.T) {
	groups := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("okta-group-%03d-engineering", i)
		}
		return out
	}
	tests := []struct {
		name   string
		limit  int // server.max_header_bytes; 0: the default
		groups int
		status int
		inBody string
	}{
		{"150 groups, default limit", 0, 150, 200, ""},
		{"600 groups, default limit", 0, 600, 200, ""},
		{"2000 groups, over the default limit", 0, 2000, 431, "server.max_header_bytes (32768 bytes)"},
		{"150 groups, 8 KiB limit", 8192, 150, 200, ""},
		{"300 groups, over an 8 KiB limit", 8192, 300, 431, "server.max_header_bytes (8192 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{mutate: func(c *config.Config) { c.Server.MaxHeaderBytes = tt.limit }})
			tok := h.token("alice", []string{"mcp:read"}, groups(tt.groups), "claude-client")
			resp := h.do(rawRequest{path: "/notes", token: tok, agent: "claude-code", body: initBody})
			body := string(readAll(t, resp))
			if resp.StatusCode != tt.status {
				t.Fatalf("token of %d bytes: status %d, want %d: %s", len(tok), resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(body, tt.inBody) {
				t.Errorf("body %s does not name %q", body, tt.inBody)
			}
		})
	}
}

// TestIssuerScopedRolesAndAudit: with a partner issuer trusted and the
// shipped policy told that the partner's groups are its own
// (roles.issuer_groups), a partner token carrying "mcp-super-admins" is no
// super-admin: not on the admin API, not on tools. Every record names the
// issuer, so two users called alice are not one.
func TestIssuerScopedRolesAndAudit(t *testing.T) {
	b := startIdP(t)
	w := newAdminWorld(t, func(c *config.Config) {
		a := c.Identity.Issuers[0].Issuer
		c.Identity.Issuers = append(c.Identity.Issuers, config.Issuer{Issuer: b.Issuer(), Audiences: []string{testAudience}})
		for name, ag := range c.Agents {
			ag.Issuer = a
			c.Agents[name] = ag
		}
		c.Agents["partner-bot"] = config.Agent{ClientID: "partner-client", Issuer: b.Issuer(),
			Scopes: []string{"mcp:read", "mcp:write"}, BackendAccess: []string{"notes"}}
		c.Policy.Bundle = policyWithIssuerGroups(t, map[string]any{b.Issuer(): map[string]any{"partner-staff": "viewer"}})
	})
	partnerRoot := mintUser(t, b, "alice", []string{"mcp-super-admins"}, map[string]any{"cid": "partner-client"})
	partnerStaff := mintUser(t, b, "alice", []string{"partner-staff"}, map[string]any{"cid": "partner-client"})
	homeRoot := mintUser(t, w.idp, "alice", []string{"mcp-super-admins"}, map[string]any{"cid": "claude-client"})

	t.Run("admin API", func(t *testing.T) {
		tests := []struct {
			name   string
			token  string
			status int
		}{
			{"home super-admin", w.root, http.StatusOK},
			{"partner token in the super-admin group", partnerRoot, http.StatusForbidden},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if status, _, body := w.api(http.MethodGet, "/admin/v1/agents", tt.token, ""); status != tt.status {
					t.Fatalf("status %d, want %d: %s", status, tt.status, body)
				}
			})
		}
	})

	t.Run("admin API validates agents' issuers", func(t *testing.T) {
		tests := []struct {
			name, body string
			status     int
			inBody     string
		}{
			{"client without issuer", `{"client_id":"c9","backend_access":["notes"]}`, http.StatusBadRequest, "agents.new-bot.issuer: required with client_id"},
			{"untrusted issuer", `{"client_id":"c9","issuer":"https://evil.example.com"}`, http.StatusBadRequest, `agents.new-bot.issuer: \"https://evil.example.com\" is not one of identity.issuers`},
			{"clientless tokens with a client", `{"client_id":"c9","issuer":"` + b.Issuer() + `","allow_clientless_tokens":true}`, http.StatusBadRequest, "agents.new-bot.allow_clientless_tokens"},
			{"partner's client", `{"client_id":"c9","issuer":"` + b.Issuer() + `","backend_access":["notes"]}`, http.StatusCreated, `"issuer":"` + b.Issuer() + `"`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, _, body := w.api(http.MethodPut, "/admin/v1/agents/new-bot", w.root, tt.body)
				if status != tt.status || !strings.Contains(string(body), tt.inBody) {
					t.Fatalf("status %d, want %d with %q: %s", status, tt.status, tt.inBody, body)
				}
			})
		}
	})

	t.Run("tools", func(t *testing.T) {
		add := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}`
		echo := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`
		tests := []struct {
			name, token, agent, body string
			denied                   string // "" = allowed
		}{
			{"home super-admin adds", homeRoot, "claude-code", add, ""},
			{"partner in the super-admin group cannot add", partnerRoot, "partner-bot", add, "requires role"},
			{"partner in the super-admin group cannot even echo", partnerRoot, "partner-bot", echo, "requires role viewer"},
			{"partner staff echo as viewers", partnerStaff, "partner-bot", echo, ""},
			{"partner staff cannot add", partnerStaff, "partner-bot", add, "requires role admin"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				sid, err := mcpSession(w.url, "/notes", tt.token, tt.agent)
				if err != nil {
					t.Fatal(err)
				}
				status, _, reply, err := mcpPost(w.url, "/notes", tt.token, tt.agent, sid, tt.body)
				if err != nil || status != http.StatusOK {
					t.Fatalf("call: %d %v %s", status, err, reply)
				}
				if tt.denied == "" {
					if strings.Contains(reply, `"error"`) {
						t.Fatalf("refused: %s", reply)
					}
					return
				}
				if !strings.Contains(reply, "-32003") || !strings.Contains(reply, tt.denied) {
					t.Fatalf("reply %s is not a denial saying %q", reply, tt.denied)
				}
			})
		}
	})

	t.Run("audit names the issuer", func(t *testing.T) {
		var recs []audit.Record
		testutil.Eventually(t, 5*time.Second, "decisions of both alices stored", func() bool {
			recs, _ = w.auditPage(w.root, "kind=decision&subject=alice&limit=1000")
			seen := map[string]bool{}
			for _, r := range recs {
				seen[r.Issuer] = true
			}
			return seen[w.idp.Issuer()] && seen[b.Issuer()]
		})
		// Records of MCP calls tell the two alices apart by agent; admin
		// API records (no agent) are checked by the condition above.
		for _, r := range recs {
			want := map[string]string{"partner-bot": b.Issuer(), "claude-code": w.idp.Issuer()}[r.Agent]
			if r.Agent != "" && r.Issuer != want {
				t.Errorf("record %s (%s via %s) names issuer %q, want %q", r.ID, r.Method, r.Agent, r.Issuer, want)
			}
		}
	})
}

// policyWithIssuerGroups is a copy of the shipped policies whose data gives
// roles.issuer_groups the entries given.
func policyWithIssuerGroups(t *testing.T, issuerGroups map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../policies")); err != nil {
		t.Fatal(err)
	}
	dataFile := filepath.Join(dir, "data.json")
	b, err := os.ReadFile(dataFile)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(b, &data); err != nil {
		t.Fatal(err)
	}
	data["mcpgw"].(map[string]any)["roles"].(map[string]any)["issuer_groups"] = issuerGroups
	if b, err = json.Marshal(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dataFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The multi-issuer records above are decisions; a refusal before the
// policy names the issuer too.
func TestRefusalRecordNamesTheIssuer(t *testing.T) {
	records := make(chan audit.Record, 8)
	h := newHarness(t, harnessOptions{audit: func(_ context.Context, r audit.Record) { records <- r }})
	tok := h.token("alice", []string{"mcp:read"}, nil, "claude-client")
	resp := h.do(rawRequest{path: "/notes/%2e%2e/x", token: tok, agent: "claude-code", body: initBody})
	readAll(t, resp)
	select {
	case r := <-records:
		if r.Issuer != h.idp.Issuer() || r.Subject != "alice" {
			t.Fatalf("refusal record = %+v, want one naming issuer %s", r, h.idp.Issuer())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no refusal record")
	}
}
