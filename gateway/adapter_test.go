package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
)

// The Okta MCP adapter's clients name their agent in X-MCP-Agent; mcpgw
// takes it as X-Agent-ID, never two headers naming different agents.
func TestAgentHeaderAlias(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.token("alice", []string{"mcp:read", "mcp:write"}, nil, "claude-client")
	tests := []struct {
		name    string
		headers [][2]string
		status  int
		inBody  string
	}{
		{"X-MCP-Agent alone", [][2]string{{"X-MCP-Agent", "claude-code"}}, 200, ""},
		{"both, agreeing", [][2]string{{"X-Agent-ID", "claude-code"}, {"X-MCP-Agent", "claude-code"}}, 200, ""},
		{"both, disagreeing", [][2]string{{"X-Agent-ID", "claude-code"}, {"X-MCP-Agent", "cursor"}}, 400,
			`X-Agent-ID and X-MCP-Agent name different agents (\"claude-code\" and \"cursor\"); send one of them`},
		{"X-Agent-ID twice, disagreeing", [][2]string{{"X-Agent-ID", "claude-code"}, {"X-Agent-ID", "cursor"}}, 400,
			"X-Agent-ID is sent twice with different agents; send it once"},
		{"unknown agent in X-MCP-Agent", [][2]string{{"X-MCP-Agent", "copilot"}}, 403, `unknown agent \"copilot\" in X-MCP-Agent header`},
		{"X-MCP-Agent naming an agent of another client", [][2]string{{"X-MCP-Agent", "cursor"}}, 403, "bound to another OAuth client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, h.url+"/notes", strings.NewReader(initBody))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Authorization", "Bearer "+tok)
			for _, kv := range tt.headers {
				req.Header.Add(kv[0], kv[1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := string(readAll(t, resp))
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.inBody) {
				t.Fatalf("status %d (want %d), body %s (want %q)", resp.StatusCode, tt.status, body, tt.inBody)
			}
		})
	}
}

// OKTA_DOMAIN alone: the org authorization server's tokens carry no API
// audience and are taken when their cid (or an ID token's aud) is an
// agent's client_id; without an agent header, that agent is the one.
func TestOktaOrgServerAtTheGateway(t *testing.T) {
	h := newHarness(t, harnessOptions{mutate: func(c *config.Config) {
		c.Identity.Issuers[0].Audiences = nil
		c.Identity.Issuers[0].AgentAudiences = true
	}})
	mint := func(claims map[string]any) string {
		t.Helper()
		claims["sub"], claims["scp"] = "alice", []string{"mcp:read", "mcp:write"}
		tok, err := h.idp.Mint(claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	orgAccess := mint(map[string]any{"cid": "claude-client", "aud": h.idp.Issuer()})
	tests := []struct {
		name   string
		token  string
		agent  string
		status int
		inBody string
	}{
		{"access token, its agent named", orgAccess, "claude-code", 200, ""},
		{"access token, agent found by cid", orgAccess, "", 200, ""},
		{"ID token, agent found by aud", mint(map[string]any{"aud": "claude-client"}), "", 200, ""},
		{"token of a client no agent has", mint(map[string]any{"cid": "copilot-client", "aud": h.idp.Issuer()}), "", 401,
			"neither its aud nor its client is the client_id of an agent of this issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(rawRequest{path: "/notes", token: tt.token, agent: tt.agent, body: initBody})
			body := string(readAll(t, resp))
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.inBody) {
				t.Fatalf("status %d (want %d), body %s (want %q)", resp.StatusCode, tt.status, body, tt.inBody)
			}
		})
	}

	// The rule follows the agents: once claude-code's client is gone, its
	// tokens (already verified and cached) are refused.
	agents := map[string]config.Agent{"cursor": h.cfg.Agents["cursor"]}
	if err := h.gw.SetTopology(h.cfg.Backends, agents); err != nil {
		t.Fatal(err)
	}
	if resp := h.do(rawRequest{path: "/notes", token: orgAccess, body: initBody}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token of a removed agent's client: status %d", resp.StatusCode)
	}
}

// A start refuses what would only fail at a call: every problem named.
func TestCheckFindsWhatCallsWouldHitFirst(t *testing.T) {
	pemKey, _ := testPEMKey(t)
	cfg := &config.Config{
		Identity: config.Identity{Issuers: []config.Issuer{{Issuer: "https://idp.example.com", Audiences: []string{"api://mcpgw"}}}},
		Backends: map[string]config.Backend{
			"hr": {URL: "https://hr.example.com/mcp", AuthMethod: config.AuthOktaCrossApp,
				AuthConfig: map[string]any{"target_authorization_server": "https://hr-as.example.com"}},
			"wiki": {URL: "https://wiki.example.com/mcp", AuthMethod: config.AuthPreSharedKey, AuthConfig: map[string]any{"api_key": "k"}},
		},
		Agents: map[string]config.Agent{
			"good":       {ClientID: "c1", PrivateKey: pemKey, BackendAccess: []string{"hr"}},
			"bad-key":    {ClientID: "c2", PrivateKey: `{"kty":"RSA","n":"not a key"}`, BackendAccess: []string{"wiki"}},
			"pub-key":    {ClientID: "c3", PrivateKey: `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`},
			"keyless":    {ClientID: "c4", BackendAccess: []string{"hr"}},
			"clientless": {PrivateKey: pemKey, BackendAccess: []string{"hr"}},
		},
	}
	var got []string
	for _, e := range Check(cfg) {
		got = append(got, e.Error())
	}
	msg := strings.Join(got, "\n")
	for _, want := range []string{
		"agents.bad-key.private_key: neither a JWK nor a PEM private key",
		"agents.pub-key.private_key: not a private key",
		"agents.keyless.private_key: required: the agent may reach backends.hr, whose okta-cross-app exchange the agent signs with it (private_key_jwt)",
		"agents.clientless.client_id: required: the agent may reach backends.hr, whose okta-cross-app exchange is made as the agent's OAuth client",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "agents.good") || len(got) != 4 {
		t.Errorf("want exactly the four problems, got:\n%s", msg)
	}
}
