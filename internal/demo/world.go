package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

// World is everything the demo puts around the gateway: the company's IdP,
// the HR system's own authorization server (Okta Cross App Access), the HR
// backend that accepts only tokens from that server, and a notes backend.
type World struct {
	IdP        *testidp.Server
	ResourceAS *testidp.Server
	Employees  *Backend
	Notes      *Backend
	// AgentClientID and AgentKeyJWK are the claude-code agent's OAuth
	// client and private key (JWK JSON, as the Okta adapter stores it).
	AgentClientID string
	AgentKeyJWK   string
	// HR* configure the employees backend's okta-cross-app credential.
	HRResource, HRClientID, HRClientSecret string

	closers []func()
}

// WorldOptions tune StartWorld.
type WorldOptions struct {
	// Audience of user tokens (default api://mcpgw).
	Audience string
	TokenTTL time.Duration
}

// StartWorld starts the demo's servers on free loopback ports.
func StartWorld(ctx context.Context, o WorldOptions) (w *World, err error) {
	if o.Audience == "" {
		o.Audience = "api://mcpgw"
	}
	w = &World{AgentClientID: "demo-claude", HRClientID: "mcpgw-hr"}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	// alice (password alice) can sign in at the IdP's login form, for the
	// browser login of the gateway's OAuth facade; her subject, email and
	// groups are those of the demo's minted alice token.
	alice := testidp.User{Username: "alice", Password: "alice", Email: "alice@example.com", Groups: []string{"mcp-viewers"}}
	if w.IdP, err = testidp.Start(ctx, testidp.Options{Audience: o.Audience, TokenTTL: o.TokenTTL, Users: []testidp.User{alice}}); err != nil {
		return nil, fmt.Errorf("start demo IdP: %w", err)
	}
	w.closers = append(w.closers, func() { _ = w.IdP.Close() })
	if w.ResourceAS, err = testidp.Start(ctx, testidp.Options{ResourceAS: &testidp.ResourceASOptions{TrustedIssuer: w.IdP.Issuer()}}); err != nil {
		return nil, fmt.Errorf("start demo HR authorization server: %w", err)
	}
	w.closers = append(w.closers, func() { _ = w.ResourceAS.Close() })

	agentKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	private, err := jwk.Import(agentKey)
	if err != nil {
		return nil, err
	}
	if err := jwk.AssignKeyID(private); err != nil {
		return nil, err
	}
	js, err := json.Marshal(private)
	if err != nil {
		return nil, err
	}
	w.AgentKeyJWK = string(js)
	public, err := private.PublicKey()
	if err != nil {
		return nil, err
	}
	if err := w.IdP.RegisterClient(testidp.Client{ID: w.AgentClientID, PublicKey: public,
		ResourceClientIDs: map[string]string{w.ResourceAS.Issuer(): w.HRClientID}}); err != nil {
		return nil, err
	}
	w.HRClientSecret = rand.Text()
	if err := w.ResourceAS.RegisterClient(testidp.Client{ID: w.HRClientID, Secret: w.HRClientSecret, Scopes: []string{"hr:read", "hr:write"}}); err != nil {
		return nil, err
	}

	// The HR backend trusts only its own authorization server: the user's
	// token is refused there, the exchanged one accepted.
	w.HRResource = "https://hr.demo.example/mcp"
	hrTokens, err := identity.NewVerifier(ctx, config.Identity{Issuers: []config.Issuer{{Issuer: w.ResourceAS.Issuer(), Audiences: []string{w.HRResource}}}})
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, hrTokens.Close)
	if w.Employees, err = StartEmployees(Options{Stateless: true, Wrap: RequireBearer(hrTokens, w.HRResource)}); err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() { _ = w.Employees.Close() })
	if w.Notes, err = StartNotes(Options{}); err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() { _ = w.Notes.Close() })
	return w, nil
}

// EmployeesAuthConfig is the okta-cross-app auth_config of the employees backend.
func (w *World) EmployeesAuthConfig() map[string]any {
	return map[string]any{
		"target_authorization_server": w.ResourceAS.Issuer(),
		"target_audience":             w.HRResource,
		"target_client_id":            w.HRClientID,
		"target_client_secret":        w.HRClientSecret,
		"idp_token_endpoint":          w.IdP.TokenEndpoint(),
		"scopes":                      []any{"hr:read"},
	}
}

// Close stops every server, newest first.
func (w *World) Close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	w.closers = nil
}
