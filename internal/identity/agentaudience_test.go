package identity

import (
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

// Okta's two kinds of authorization server, each played by a testidp: the
// org server (OKTA_DOMAIN alone), whose tokens carry no API audience and are
// accepted by the Okta MCP adapter's rule (aud or cid is an agent's
// client_id), and a custom server (OKTA_ISSUER), whose tokens must carry a
// configured audience.
func TestOktaOrgAndCustomServers(t *testing.T) {
	org := startIdP(t, testidp.Options{Audience: "https://org.example.okta.com"})
	custom := startIdP(t, testidp.Options{Audience: "api://default"})
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{
		{Issuer: org.Issuer(), AgentAudiences: true},
		{Issuer: custom.Issuer(), Audiences: []string{"api://default"}},
	}})
	v.SetAgentClients(map[string][]string{org.Issuer(): {"0oa-cursor", "0oa-claude"}})

	tests := []struct {
		name       string
		token      string
		wantClient string
		wantErr    string
	}{
		{name: "org access token: cid is an agent's client",
			token: mint(t, org, map[string]any{"sub": "alice", "cid": "0oa-cursor"}), wantClient: "0oa-cursor"},
		{name: "org ID token: aud is an agent's client",
			token: mint(t, org, map[string]any{"sub": "alice", "aud": "0oa-claude"}), wantClient: "0oa-claude"},
		{name: "org token of another client",
			token:   mint(t, org, map[string]any{"sub": "alice", "cid": "0oa-unknown"}),
			wantErr: "token audience is not accepted: neither its aud nor its client is the client_id of an agent of this issuer (identity.issuers[].agent_audiences)"},
		{name: "org ID token for another client",
			token:   mint(t, org, map[string]any{"sub": "alice", "aud": "0oa-unknown"}),
			wantErr: "neither its aud nor its client is the client_id of an agent"},
		{name: "custom server token with its audience",
			token: mint(t, custom, map[string]any{"sub": "alice", "cid": "0oa-anything"}), wantClient: "0oa-anything"},
		{name: "custom server token naming an agent's client only as aud",
			token: mint(t, custom, map[string]any{"sub": "alice", "aud": "0oa-cursor"}), wantErr: "token audience is not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(t.Context(), tt.token)
			if tt.wantErr != "" {
				if e := asError(t, err, ReasonAudience); !strings.Contains(e.Description, tt.wantErr) {
					t.Fatalf("description %q, want %q", e.Description, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.ClientID != tt.wantClient {
				t.Errorf("ClientID = %q, want %q", p.ClientID, tt.wantClient)
			}
		})
	}

	// The rule follows the agents: a token already verified (and cached)
	// stops passing once its agent is gone.
	tok := mint(t, org, map[string]any{"sub": "bob", "cid": "0oa-cursor"})
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("before removal: %v", err)
	}
	v.SetAgentClients(map[string][]string{org.Issuer(): {"0oa-claude"}})
	if _, err := v.Verify(t.Context(), tok); err == nil {
		t.Fatal("cached token of a removed agent's client still accepted")
	}
}

func TestAgentAudiencesNeedNoAudience(t *testing.T) {
	if _, err := NewVerifier(t.Context(), config.Identity{Issuers: []config.Issuer{{Issuer: "https://org.example.com"}}}); err == nil {
		t.Fatal("an issuer without audiences and without agent_audiences was accepted")
	}
	newVerifier(t, config.Identity{Issuers: []config.Issuer{{Issuer: "https://org.example.com", AgentAudiences: true}}})
}
