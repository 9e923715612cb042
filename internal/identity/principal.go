// Package identity verifies bearer JWTs against cached JWKS (jwx/v3) and
// turns them into a Principal. Verified claims are cached so a repeated token
// costs a hash lookup, not a signature check.
package identity

import "time"

// Principal is who is calling, from a verified token.
type Principal struct {
	// Subject is never empty: a token without sub is refused.
	Subject  string
	Issuer   string
	Audience []string
	// ClientID is the OAuth client the token was issued to (cid, azp,
	// client_id or Azure AD v1's appid); "" when the token proves none. For
	// an agent_audiences issuer a token naming no client but exactly one
	// aud (an Okta org server's ID token) is issued to that aud.
	ClientID string
	// Scopes come from "scp" (array) or "scope" (space-separated string).
	Scopes    []string
	Groups    []string
	Claims    map[string]any
	ExpiresAt time.Time
	// Via is set on tokens the gateway's own authorization server issued
	// (internal/oauthserver): its issuer. Issuer is then the IdP the person
	// logged in at, whose namespace Subject belongs to.
	Via string
	// Agent is the agent such a token was bound to when its client
	// registered; it wins over any X-Agent-ID.
	Agent string
	// byAgentAudience marks a token of an agent_audiences issuer whose aud
	// matched no configured audience: it stands only while its aud or
	// client is an agent's client_id, which the admin API may change.
	byAgentAudience bool
}
