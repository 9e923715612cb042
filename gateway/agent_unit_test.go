package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
)

// unitCtx is a Fiber context for a request with the given headers (each
// value added, so a name may repeat), without a server; released by the
// test.
func unitCtx(t *testing.T, method, target string, headers [][2]string) *fiber.Ctx {
	t.Helper()
	app := fiber.New()
	fctx := &fasthttp.RequestCtx{}
	fctx.Request.Header.SetMethod(method)
	fctx.Request.SetRequestURI(target)
	for _, h := range headers {
		fctx.Request.Header.Add(h[0], h[1])
	}
	c := app.AcquireCtx(fctx)
	t.Cleanup(func() { app.ReleaseCtx(c) })
	return c
}

const (
	unitIssuerA = "https://a.example.com"
	unitIssuerB = "https://b.example.com"
)

// unitAgents is the agent table of the agent-resolution tests: issuer A's
// agents, issuer B's, clientless ones, a pre-validation leftover, two
// agents sharing a client, a disabled agent and one with an agent_id.
func unitAgents() map[string]config.Agent {
	notes := []string{"notes"}
	off := false
	return map[string]config.Agent{
		"claude-code": {ClientID: "claude-client", Issuer: unitIssuerA, BackendAccess: notes},
		"cursor":      {ClientID: "cursor-client", Issuer: unitIssuerA, BackendAccess: notes},
		"b-bot":       {ClientID: "b-client", Issuer: unitIssuerB, BackendAccess: notes},
		"kiosk":       {AllowClientlessTokens: true, Issuer: unitIssuerA, BackendAccess: notes},
		"open":        {BackendAccess: notes},
		"open-any":    {AllowClientlessTokens: true, BackendAccess: notes},
		// Stored by an older release: a client but no issuer, while two
		// issuers are trusted.
		"legacy":  {ClientID: "legacy-client", BackendAccess: notes},
		"twin-1":  {ClientID: "shared-client", Issuer: unitIssuerA, BackendAccess: notes},
		"twin-2":  {ClientID: "shared-client", Issuer: unitIssuerA, BackendAccess: notes},
		"off":     {ClientID: "off-client", Issuer: unitIssuerA, BackendAccess: notes, Enabled: &off},
		"keyed":   {AgentID: "by-id", ClientID: "keyed-client", Issuer: unitIssuerA, BackendAccess: notes},
		"nowhere": {ClientID: "nowhere-client", Issuer: unitIssuerA},
	}
}

func unitBackends() map[string]config.Backend {
	off := false
	return map[string]config.Backend{
		"notes":  {URL: "http://127.0.0.1:9/mcp", AuthMethod: "none", Paths: []string{"/notes"}},
		"closed": {URL: "http://127.0.0.1:9/mcp", AuthMethod: "none", Paths: []string{"/closed"}, Enabled: &off},
	}
}

// TestAgentForUnit: which agent a token may act as, by header or by its
// client, and why not. A wrong answer here is an agent acting with another
// agent's grants, so every refusal is named.
func TestAgentForUnit(t *testing.T) {
	two := unitTopology(t, unitBackends(), unitAgents(), unitIssuerA, unitIssuerB)
	p := func(iss, cid string) *identity.Principal {
		return &identity.Principal{Subject: "alice", Issuer: iss, ClientID: cid}
	}
	for _, tc := range []struct {
		name   string
		id     string
		p      *identity.Principal
		want   string // the agent's id, or "" with err
		errHas string
	}{
		{"header and its client", "claude-code", p(unitIssuerA, "claude-client"), "claude-code", ""},
		{"header, client of another issuer", "claude-code", p(unitIssuerB, "claude-client"), "", "bound to another issuer"},
		{"header, another agent's client", "claude-code", p(unitIssuerA, "cursor-client"), "", "another OAuth client"},
		{"header, clientless token for a client-bound agent", "claude-code", p(unitIssuerA, ""), "", "the token proves none"},
		{"issuer B's agent from B", "b-bot", p(unitIssuerB, "b-client"), "b-bot", ""},
		{"issuer B's agent from A with B's client", "b-bot", p(unitIssuerA, "b-client"), "", "bound to another issuer"},
		{"clientless agent of A", "kiosk", p(unitIssuerA, ""), "kiosk", ""},
		{"clientless agent of A from B", "kiosk", p(unitIssuerB, ""), "", "bound to another issuer"},
		{"clientless agent, token with a client", "kiosk", p(unitIssuerA, "anything"), "kiosk", ""},
		{"no client, clientless token not allowed", "open", p(unitIssuerA, ""), "", "does not take such tokens (agents.open.allow_clientless_tokens)"},
		{"no client, any issuer's client token", "open", p(unitIssuerB, "x"), "open", ""},
		{"clientless, any issuer", "open-any", p(unitIssuerB, ""), "open-any", ""},
		{"client but no issuer among several: fail closed", "legacy", p(unitIssuerA, "legacy-client"), "", "names no issuer while several are trusted"},
		{"unknown agent", "nope", p(unitIssuerA, "claude-client"), "", `unknown agent "nope" in X-Agent-ID header`},
		{"agent_id, not the map key, is the header's value", "keyed", p(unitIssuerA, "keyed-client"), "", `unknown agent "keyed"`},
		{"agent_id", "by-id", p(unitIssuerA, "keyed-client"), "by-id", ""},
		// agentFor resolves; the enabled flag is agentWithin's check.
		{"disabled agent resolves", "off", p(unitIssuerA, "off-client"), "off", ""},
		// No header: the token's client's one agent.
		{"no header, the client's one agent", "", p(unitIssuerA, "claude-client"), "claude-code", ""},
		{"no header, clientless token", "", p(unitIssuerA, ""), "", "the token proves no OAuth client"},
		{"no header, client of two agents", "", p(unitIssuerA, "shared-client"), "", "registered for 2 agents"},
		{"no header, the client named by another issuer", "", p(unitIssuerB, "claude-client"), "", "registered for 0 agents"},
		{"no header, unknown client", "", p(unitIssuerA, "stranger"), "", "registered for 0 agents"},
		{"no header, the legacy agent's client", "", p(unitIssuerA, "legacy-client"), "", "registered for 0 agents"},
		// Tokens of the gateway's authorization server: the agent bound at
		// registration wins over the header.
		{"facade token names its agent", "", &identity.Principal{Subject: "alice", Issuer: unitIssuerA, Via: "https://gw.example.com", Agent: "claude-code", ClientID: "dyn-1"}, "claude-code", ""},
		{"facade token, header names another agent", "cursor", &identity.Principal{Subject: "alice", Issuer: unitIssuerA, Via: "https://gw.example.com", Agent: "claude-code", ClientID: "dyn-1"}, "claude-code", ""},
		{"facade token, its agent removed", "claude-code", &identity.Principal{Subject: "alice", Issuer: unitIssuerA, Via: "https://gw.example.com", Agent: "gone"}, "", `the token's agent "gone" no longer exists`},
		{"facade token, no agent", "claude-code", &identity.Principal{Subject: "alice", Issuer: unitIssuerA, Via: "https://gw.example.com"}, "", `the token's agent "" no longer exists`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := two.agentFor(tc.id, headerAgentID, tc.p)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("agentFor(%q) = %q, %v; want an error naming %q", tc.id, a.ID(), err, tc.errHas)
				}
				return
			}
			if err != nil || a.ID() != tc.want {
				t.Fatalf("agentFor(%q) = %q, %v; want %q", tc.id, a.ID(), err, tc.want)
			}
		})
	}

	// One trusted issuer: an agent with a client but no issuer belongs to
	// it, and a token naming its client from elsewhere is refused (the
	// verifier would not pass one, but the boundary does not rely on it).
	one := unitTopology(t, unitBackends(), map[string]config.Agent{
		"solo": {ClientID: "solo-client", BackendAccess: []string{"notes"}},
	}, unitIssuerA)
	if a, err := one.agentFor("solo", headerAgentID, p(unitIssuerA, "solo-client")); err != nil || a.ID() != "solo" {
		t.Errorf("one issuer, its agent: %q, %v", a.ID(), err)
	}
	if _, err := one.agentFor("solo", headerAgentID, p(unitIssuerB, "solo-client")); err == nil || !strings.Contains(err.Error(), "another issuer") {
		t.Errorf("one issuer, another issuer's token: %v", err)
	}
	if _, err := one.agentFor("", "", p(unitIssuerB, "solo-client")); err == nil {
		t.Error("one issuer, no header, another issuer's token: resolved")
	}
	// The header named in the refusal is the one that was sent.
	if _, err := one.agentFor("x", headerMCPAgent, p(unitIssuerA, "")); err == nil || !strings.Contains(err.Error(), "in X-MCP-Agent header") {
		t.Errorf("unknown agent from X-MCP-Agent: %v", err)
	}
}

// TestAgentHeaderUnit: X-Agent-ID or X-MCP-Agent, each once, agreeing when
// both are sent; a request naming two agents is refused whatever the order.
func TestAgentHeaderUnit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		headers    [][2]string
		id, header string
		errHas     string
	}{
		{"none", nil, "", "", ""},
		{"X-Agent-ID", [][2]string{{"X-Agent-ID", "cursor"}}, "cursor", headerAgentID, ""},
		{"X-MCP-Agent", [][2]string{{"X-MCP-Agent", "cursor"}}, "cursor", headerMCPAgent, ""},
		{"lower-case name", [][2]string{{"x-agent-id", "cursor"}}, "cursor", headerAgentID, ""},
		{"both agreeing", [][2]string{{"X-MCP-Agent", "cursor"}, {"X-Agent-ID", "cursor"}}, "cursor", headerAgentID, ""},
		{"repeated, agreeing", [][2]string{{"X-Agent-ID", "cursor"}, {"X-Agent-ID", "cursor"}}, "cursor", headerAgentID, ""},
		{"both, different", [][2]string{{"X-Agent-ID", "cursor"}, {"X-MCP-Agent", "claude-code"}}, "", "", `X-Agent-ID and X-MCP-Agent name different agents ("cursor" and "claude-code")`},
		{"both, different, other order", [][2]string{{"X-MCP-Agent", "claude-code"}, {"X-Agent-ID", "cursor"}}, "", "", `X-Agent-ID and X-MCP-Agent name different agents ("cursor" and "claude-code")`},
		{"X-Agent-ID repeated, different", [][2]string{{"X-Agent-ID", "cursor"}, {"X-Agent-ID", "claude-code"}}, "", "", "X-Agent-ID is sent twice with different agents"},
		{"X-MCP-Agent repeated, different", [][2]string{{"X-MCP-Agent", "cursor"}, {"X-MCP-Agent", "claude-code"}}, "", "", "X-MCP-Agent is sent twice with different agents"},
		{"case differs: two agents", [][2]string{{"X-Agent-ID", "cursor"}, {"X-MCP-Agent", "Cursor"}}, "", "", "name different agents"},
		{"empty and set", [][2]string{{"X-Agent-ID", ""}, {"X-MCP-Agent", "cursor"}}, "", "", "name different agents"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := unitCtx(t, http.MethodPost, "/notes", tc.headers)
			id, header, err := agentHeader(c)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) || id != "" || header != "" {
					t.Fatalf("agentHeader = %q, %q, %v; want an error naming %q", id, header, err, tc.errHas)
				}
				return
			}
			if err != nil || id != tc.id || header != tc.header {
				t.Fatalf("agentHeader = %q, %q, %v; want %q from %q", id, header, err, tc.id, tc.header)
			}
		})
	}
}

// TestAgentWithinUnit: after resolution, the hard boundary before policy:
// a disabled agent, a disabled backend, a backend outside backend_access,
// and a header naming two agents, each refused in its own form.
func TestAgentWithinUnit(t *testing.T) {
	topo := unitTopology(t, unitBackends(), unitAgents(), unitIssuerA, unitIssuerB)
	g := &Gateway{}
	for _, tc := range []struct {
		name     string
		headers  [][2]string
		backend  string
		cid      string
		status   int
		form     rejectForm
		code     string
		msgHas   string
		recAgent string
	}{
		{"allowed", [][2]string{{"X-Agent-ID", "claude-code"}}, "notes", "claude-client", 0, 0, "", "", "claude-code"},
		{"disabled agent", [][2]string{{"X-Agent-ID", "off"}}, "notes", "off-client", 403, formOAuth, "access_denied", `agent "off" is disabled`, "off"},
		{"disabled backend", [][2]string{{"X-Agent-ID", "claude-code"}}, "closed", "claude-client", 403, formScope, "insufficient_scope", "backend closed is disabled", "claude-code"},
		{"no backend_access", [][2]string{{"X-Agent-ID", "nowhere"}}, "notes", "nowhere-client", 403, formScope, "insufficient_scope", `agent "nowhere" has no access to backend notes (backend_access)`, "nowhere"},
		{"binding refused", [][2]string{{"X-Agent-ID", "cursor"}}, "notes", "claude-client", 403, formOAuth, "access_denied", "another OAuth client", "cursor"},
		{"two agents named", [][2]string{{"X-Agent-ID", "cursor"}, {"X-MCP-Agent", "claude-code"}}, "notes", "claude-client", 400, formOAuth, "invalid_request", "name different agents", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := unitCtx(t, http.MethodPost, "/"+tc.backend, tc.headers)
			rec := &requestRecord{}
			_, rej := g.agentWithin(c, rec, topo, topo.backends[tc.backend], &identity.Principal{Subject: "alice", Issuer: unitIssuerA, ClientID: tc.cid})
			if rec.agent != tc.recAgent {
				t.Errorf("the request log names agent %q, want %q", rec.agent, tc.recAgent)
			}
			if tc.status == 0 {
				if rej != nil {
					t.Fatalf("refused: %+v", rej)
				}
				return
			}
			if rej == nil || rej.status != tc.status || rej.form != tc.form || rej.code != tc.code || !strings.Contains(rej.msg, tc.msgHas) {
				t.Fatalf("rejection = %+v; want %d form %d %s naming %q", rej, tc.status, tc.form, tc.code, tc.msgHas)
			}
		})
	}
}
