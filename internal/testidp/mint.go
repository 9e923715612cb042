package testidp

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Mint signs claims with the current key (RS256, kid set, typ JWT). It
// fills iss, aud (the server's Audience), iat, nbf, exp (now+TokenTTL) and
// jti unless claims sets them: caller values win, so tests can mint expired
// or wrong-issuer tokens. A nil value removes the claim (a token without
// exp, say). time.Time values of exp, nbf and iat become NumericDate.
func (s *Server) Mint(claims map[string]any) (string, error) {
	return s.sign(s.withDefaults(claims))
}

// MintUser mints a user access token shaped like Okta's: sub, scp (array)
// and groups, plus extra. Of cid and client_id, whichever extra sets is
// copied to the other, so a token carries the client both ways.
func (s *Server) MintUser(sub string, scopes, groups []string, extra map[string]any) (string, error) {
	claims := map[string]any{"sub": sub}
	if scopes != nil {
		claims["scp"] = scopes
	}
	if groups != nil {
		claims["groups"] = groups
	}
	for k, v := range extra {
		claims[k] = v
	}
	cid, hasCID := claims["cid"]
	clientID, hasClientID := claims["client_id"]
	switch {
	case hasCID && !hasClientID:
		claims["client_id"] = cid
	case hasClientID && !hasCID:
		claims["cid"] = clientID
	}
	return s.Mint(claims)
}

func (s *Server) withDefaults(claims map[string]any) map[string]any {
	now := time.Now()
	out := map[string]any{
		"iss": s.issuer,
		"aud": s.opts.Audience,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(s.opts.TokenTTL).Unix(),
		"jti": newJTI(),
	}
	for k, v := range claims {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	for _, k := range []string{"exp", "nbf", "iat"} {
		if t, ok := out[k].(time.Time); ok {
			out[k] = t.Unix()
		}
	}
	return out
}

// sign serialises claims as a compact JWS with the current key.
func (s *Server) sign(claims map[string]any) (string, error) {
	return s.signTyped(claims, "JWT")
}

// signTyped is sign with the given typ header (ID-JAGs use oauth-id-jag+jwt).
func (s *Server) signTyped(claims map[string]any, typ string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("testidp: marshal claims: %w", err)
	}
	key := s.keys.signingKey()
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, kidOf(key)); err != nil {
		return "", fmt.Errorf("testidp: set kid: %w", err)
	}
	if err := hdr.Set(jws.TypeKey, typ); err != nil {
		return "", fmt.Errorf("testidp: set typ: %w", err)
	}
	signed, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("testidp: sign: %w", err)
	}
	return string(signed), nil
}

// newJTI is 128 random bits as base32 text.
func newJTI() string { return rand.Text() }
