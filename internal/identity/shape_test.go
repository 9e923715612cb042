package identity

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

// TestTokenShape covers what a token must look like besides its signature
// and time claims: a subject, no critical header extensions, an access-token
// typ. Every token here is signed with the IdP's real key.
func TestTokenShape(t *testing.T) {
	idp := startIdP(t, testidp.Options{Audience: "api://mcpgw"})
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})
	claims := func(sub any) map[string]any {
		c := validClaims(idp)
		c["sub"] = sub
		return c
	}
	withoutSub := validClaims(idp)
	delete(withoutSub, "sub")

	tests := []struct {
		name   string
		header map[string]any
		claims map[string]any
		reason string // "" = valid
		// inDesc must appear in the error description (the field at fault).
		inDesc string
	}{
		{name: "typ JWT", header: map[string]any{"typ": "JWT"}, claims: claims("alice")},
		{name: "typ jwt lower case", header: map[string]any{"typ": "jwt"}, claims: claims("alice")},
		{name: "typ at+jwt", header: map[string]any{"typ": "at+jwt"}, claims: claims("alice")},
		{name: "typ application/at+jwt", header: map[string]any{"typ": "application/at+jwt"}, claims: claims("alice")},
		{name: "typ AT+JWT", header: map[string]any{"typ": "AT+JWT"}, claims: claims("alice")},
		{name: "no typ", header: nil, claims: claims("alice")},

		{name: "sub null", header: map[string]any{"typ": "JWT"}, claims: claims(nil), reason: ReasonMissingClaim, inDesc: "sub"},
		{name: "sub empty", header: map[string]any{"typ": "JWT"}, claims: claims(""), reason: ReasonMissingClaim, inDesc: "sub"},
		{name: "sub absent", header: map[string]any{"typ": "JWT"}, claims: withoutSub, reason: ReasonMissingClaim, inDesc: "sub"},
		{name: "sub a number", header: map[string]any{"typ": "JWT"}, claims: claims(7), reason: ReasonClaimType, inDesc: "sub"},

		{name: "crit naming an unknown extension", header: map[string]any{"typ": "JWT", "crit": []string{"urn:example:policy"}, "urn:example:policy": "strict"},
			claims: claims("alice"), reason: ReasonHeader, inDesc: "crit"},
		{name: "crit naming exp", header: map[string]any{"typ": "JWT", "crit": []string{"exp"}, "exp": 1}, claims: claims("alice"), reason: ReasonHeader, inDesc: "crit"},
		{name: "crit b64", header: map[string]any{"typ": "JWT", "crit": []string{"b64"}, "b64": true}, claims: claims("alice"), reason: ReasonHeader, inDesc: "crit"},

		{name: "ID-JAG", header: map[string]any{"typ": "oauth-id-jag+jwt"}, claims: claims("alice"), reason: ReasonTokenType, inDesc: "token_types"},
		{name: "logout token", header: map[string]any{"typ": "logout+jwt"}, claims: claims("alice"), reason: ReasonTokenType, inDesc: "typ"},
		{name: "logout token, full media type", header: map[string]any{"typ": "application/logout+jwt"}, claims: claims("alice"), reason: ReasonTokenType},
		{name: "security event token", header: map[string]any{"typ": "secevent+jwt"}, claims: claims("alice"), reason: ReasonTokenType},
		{name: "JWT with a media type parameter", header: map[string]any{"typ": "JWT; v=1"}, claims: claims("alice"), reason: ReasonTokenType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signRaw(t, idp, tt.header, tt.claims)
			p, err := v.Verify(t.Context(), tok)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if p.Subject != "alice" {
					t.Errorf("Subject = %q", p.Subject)
				}
				return
			}
			if p != nil {
				t.Fatalf("accepted: %+v", p)
			}
			verr := asError(t, err, tt.reason)
			if !strings.Contains(verr.Description, tt.inDesc) {
				t.Errorf("Description %q does not name %q", verr.Description, tt.inDesc)
			}
		})
	}
}

// TestIssuerTokenTypes: token_types is per issuer. One issuer insists on
// RFC 9068 at+jwt; the other keeps the default.
func TestIssuerTokenTypes(t *testing.T) {
	strict := startIdP(t, testidp.Options{Audience: "api://mcpgw"})
	lax := startIdP(t, testidp.Options{Audience: "api://mcpgw"})
	strictCfg := issuerOf(strict)
	strictCfg.TokenTypes = []string{"application/AT+JWT"}
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{strictCfg, issuerOf(lax)}})

	tests := []struct {
		name string
		idp  *testidp.Server
		typ  any // nil: no typ header
		ok   bool
	}{
		{name: "strict: at+jwt", idp: strict, typ: "at+jwt", ok: true},
		{name: "strict: JWT", idp: strict, typ: "JWT"},
		{name: "strict: no typ", idp: strict},
		{name: "lax: JWT", idp: lax, typ: "JWT", ok: true},
		{name: "lax: no typ", idp: lax, ok: true},
		{name: "lax: ID-JAG", idp: lax, typ: "oauth-id-jag+jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header map[string]any
			if tt.typ != nil {
				header = map[string]any{"typ": tt.typ}
			}
			claims := validClaims(tt.idp)
			claims["sub"] = "alice"
			_, err := v.Verify(t.Context(), signRaw(t, tt.idp, header, claims))
			if tt.ok {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			asError(t, err, ReasonTokenType)
		})
	}

	t.Run("invalid token_types entry", func(t *testing.T) {
		bad := issuerOf(strict)
		bad.TokenTypes = []string{"at+jwt; q=1"}
		_, err := NewVerifier(t.Context(), config.Identity{Issuers: []config.Issuer{bad}})
		if err == nil || !strings.Contains(err.Error(), "identity.issuers[0].token_types[0]") {
			t.Fatalf("NewVerifier = %v, want an error naming identity.issuers[0].token_types[0]", err)
		}
	})
}

// TestClientClaims: the client a token proves, from each IdP's claim name,
// and a token whose claims disagree about it.
func TestClientClaims(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}})
	tests := []struct {
		name       string
		claims     map[string]any
		wantClient string
		reason     string
	}{
		{name: "Azure AD v1 appid", claims: map[string]any{"appid": "11111111-aaaa"}, wantClient: "11111111-aaaa"},
		{name: "appid agreeing with azp", claims: map[string]any{"azp": "c1", "appid": "c1"}, wantClient: "c1"},
		{name: "none", claims: map[string]any{}, wantClient: ""},
		{name: "cid and azp disagree", claims: map[string]any{"cid": "c1", "azp": "c2"}, reason: ReasonClaimType},
		{name: "client_id and appid disagree", claims: map[string]any{"client_id": "c1", "appid": "c2"}, reason: ReasonClaimType},
		{name: "appid not a string", claims: map[string]any{"appid": 5}, reason: ReasonClaimType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := map[string]any{"sub": "alice"}
			for k, val := range tt.claims {
				claims[k] = val
			}
			p, err := v.Verify(t.Context(), mint(t, idp, claims))
			if tt.reason != "" {
				asError(t, err, tt.reason)
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
}

// TestMaxTokenBytes: the verifier's limit is the gateway's header limit. A
// token with 150 groups (about 6.5 KB) fits the default; a limit set lower
// refuses a longer token with an error naming the limit and its key.
func TestMaxTokenBytes(t *testing.T) {
	idp := startIdP(t, testidp.Options{})
	groups := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("okta-group-%03d-engineering", i)
		}
		return out
	}
	big := mint(t, idp, map[string]any{"sub": "alice", "groups": groups(150)})
	huge := mint(t, idp, map[string]any{"sub": "alice", "groups": groups(400)})
	if len(big) < 6000 || len(big) > 8192 || len(huge) <= 8192 {
		t.Fatalf("token sizes %d and %d do not straddle 8192", len(big), len(huge))
	}
	tests := []struct {
		name   string
		opts   []Option
		token  string
		reason string
	}{
		{name: "150 groups, default limit", token: big},
		{name: "400 groups, default limit", token: huge},
		{name: "150 groups, 8 KiB limit", opts: []Option{WithMaxTokenBytes(8192)}, token: big},
		{name: "400 groups, 8 KiB limit", opts: []Option{WithMaxTokenBytes(8192)}, token: huge, reason: ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, config.Identity{Issuers: []config.Issuer{issuerOf(idp)}}, tt.opts...)
			p, err := v.Verify(t.Context(), tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(p.Groups) < 150 {
					t.Errorf("%d groups", len(p.Groups))
				}
				return
			}
			verr := asError(t, err, tt.reason)
			if !strings.Contains(verr.Description, "8192") || !strings.Contains(verr.Description, "server.max_header_bytes") {
				t.Errorf("Description %q does not name the limit and server.max_header_bytes", verr.Description)
			}
		})
	}
	if _, err := NewVerifier(t.Context(), config.Identity{Issuers: []config.Issuer{issuerOf(idp)}}, WithMaxTokenBytes(0)); err == nil {
		t.Error("a zero token limit was accepted")
	}
}
